"""MIT-BIH Arrhythmia Database: records with beat annotations, PVC/APB segments, rhythm windows.

`read_record` reads one WFDB record (`.hea` + signal file + `.atr`) and keeps only the beat
annotations. Two data sets are built from it:

- `build_segments`: the segment data set of the attention-segmenter paper. Whole consecutive
  beats are packed into segments of at most ``max_samples`` samples, each labelled "PVC" or
  "APB", with a per-sample mask over the abnormal beats.
- `rhythm_windows`: fixed windows resampled to another rate (the study's: no rate is assumed),
  with the beat annotations and an abnormal-beat mask carried over, so that a model trained on
  a rhythm data set (CinC 2017) can be scored against annotated beats.

Beat symbols and their groups are data, in ``mitdb_beats.json`` next to this module.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from importlib import resources
from pathlib import Path
from types import MappingProxyType

import numpy as np
import wfdb
from scipy.signal import resample_poly

from data_io.errors import RecordError
from data_io.records import Quarantined

ANNOTATION_EXTENSION = "atr"
NORMAL_GROUP = "normal"
BEATS_FILE = "mitdb_beats.json"


@dataclass(frozen=True)
class BeatGroups:
    """Beat symbols by group, as listed in ``mitdb_beats.json``.

    Attributes:
        group_of: beat symbol -> group ("normal", "supraventricular", "ventricular", "other").
        segment_labels: abnormal group -> segment label ("APB", "PVC").
    """

    group_of: Mapping[str, str]
    segment_labels: Mapping[str, str]

    def is_beat(self, symbol: str) -> bool:
        return symbol in self.group_of

    def abnormal_flags(self, symbols: Sequence[str]) -> np.ndarray:
        """True where a beat is not in the normal group, shape (n_beats,)."""
        return np.array([self.group_of[s] != NORMAL_GROUP for s in symbols], dtype=bool)


def load_beat_groups() -> BeatGroups:
    """Load ``mitdb_beats.json``, checking that no symbol sits in two groups."""
    table = json.loads(resources.files(__package__).joinpath(BEATS_FILE).read_text("utf-8"))
    group_of: dict[str, str] = {}
    for group, symbols in table["groups"].items():
        for symbol in symbols:
            if symbol in group_of:
                raise ValueError(
                    f"{BEATS_FILE}: symbol {symbol!r} is in both {group_of[symbol]!r} and {group!r}"
                )
            group_of[symbol] = group
    unknown = set(table["segment_labels"]) - set(table["groups"])
    if NORMAL_GROUP not in table["groups"] or unknown:
        raise ValueError(f"{BEATS_FILE}: needs a {NORMAL_GROUP!r} group; unknown groups {unknown}")
    return BeatGroups(
        group_of=MappingProxyType(group_of),
        segment_labels=MappingProxyType(dict(table["segment_labels"])),
    )


@dataclass(frozen=True)
class MitbihRecord:
    """One record: all leads in millivolts and its beat annotations.

    Attributes:
        record: record name, e.g. ``"100"``.
        signals: float32 millivolts, shape (n_samples, n_leads); invalid samples are NaN.
        lead_names: lead per column, e.g. ``("MLII", "V5")``.
        fs_hz: sampling rate.
        beat_samples: R-peak sample of each beat, ascending, int64, shape (n_beats,).
        beat_symbols: annotation symbol of each beat (non-beat annotations are dropped).
    """

    record: str
    signals: np.ndarray
    lead_names: tuple[str, ...]
    fs_hz: float
    beat_samples: np.ndarray
    beat_symbols: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.signals.ndim != 2 or self.signals.shape[1] != len(self.lead_names):
            raise ValueError(
                f"{self.record}: signals of shape {self.signals.shape} do not match "
                f"{len(self.lead_names)} lead names"
            )
        if self.beat_samples.shape != (len(self.beat_symbols),):
            raise ValueError(f"{self.record}: beat samples and symbols differ in length")

    @property
    def n_samples(self) -> int:
        return int(self.signals.shape[0])

    def lead(self, name: str) -> np.ndarray:
        """One lead by name, shape (n_samples,)."""
        if name not in self.lead_names:
            raise KeyError(f"record {self.record} has no lead {name!r}; leads: {self.lead_names}")
        return self.signals[:, self.lead_names.index(name)]


def list_records(directory: str | Path) -> list[str]:
    """Record names in ``directory``: its RECORDS file if present, else the `.hea` stems."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: MIT-BIH directory not found")
    listing = directory / "RECORDS"
    if listing.is_file():
        return [line.strip() for line in listing.read_text().splitlines() if line.strip()]
    return sorted(path.stem for path in directory.glob("*.hea"))


def read_records(
    *, directory: str | Path, records: Sequence[str] | None = None
) -> tuple[list[MitbihRecord], list[Quarantined]]:
    """Read several records, quarantining those that are missing or unreadable.

    Args:
        directory: folder holding the WFDB files.
        records: names to read; all of `list_records` when None.

    Returns:
        The records read, and one `Quarantined` (reason naming the file) per record left out.
    """
    names = list_records(directory) if records is None else list(records)
    loaded: list[MitbihRecord] = []
    quarantined: list[Quarantined] = []
    for name in names:
        try:
            loaded.append(read_record(directory=directory, record=name))
        except (FileNotFoundError, ValueError) as exc:  # RecordError is a ValueError
            quarantined.append(Quarantined(record=name, reason=str(exc)))
    return loaded, quarantined


def read_record(
    *, directory: str | Path, record: str, beat_groups: BeatGroups | None = None
) -> MitbihRecord:
    """Read ``directory/record`` (`.hea`, its signal files and `.atr`) with wfdb.

    wfdb copes with comment lines before the record line and blank lines between signal
    lines (MIT-BIH headers have both); anything it cannot parse is re-raised naming the file.

    Raises:
        FileNotFoundError: the header, a signal file it names or the `.atr` file is missing.
        RecordError: (a ValueError) a file cannot be parsed, the signal is shorter than the
            header declares, a lead is not in millivolts or a beat lies outside the signal.
    """
    groups = beat_groups or load_beat_groups()
    base = Path(directory) / record
    header = _read_header(base)
    signals = _read_signals(base, header)
    samples, symbols = _read_beats(base, groups, n_samples=signals.shape[0])
    return MitbihRecord(
        record=record,
        signals=signals,
        lead_names=tuple(header.sig_name),
        fs_hz=float(header.fs),
        beat_samples=samples,
        beat_symbols=symbols,
    )


def _require(path: Path, what: str) -> None:
    if not path.is_file():
        # No ``filename`` attribute: it would replace this message with "[Errno None] ...".
        raise FileNotFoundError(f"{path}: {what} not found")


def _read_header(base: Path) -> wfdb.Record:
    hea = base.with_name(f"{base.name}.hea")
    _require(hea, "WFDB header file")
    try:
        header = wfdb.rdheader(str(base))
    except Exception as exc:  # wfdb raises HeaderSyntaxError, IndexError, bare ValueErrors
        raise RecordError(f"{hea}: cannot parse WFDB header ({type(exc).__name__}: {exc})") from exc
    units = [unit or "mV" for unit in header.units or []]
    if any(unit != "mV" for unit in units):
        raise RecordError(f"{hea}: leads {header.sig_name} are in {units}, expected mV")
    return header


def _read_signals(base: Path, header: wfdb.Record) -> np.ndarray:
    files = [base.with_name(name) for name in dict.fromkeys(header.file_name)]
    for path in files:
        _require(path, f"signal file named by {base.name}.hea")
    try:
        # return_res=32: float32 millivolts straight from wfdb, no float64 copy.
        signals = wfdb.rdrecord(str(base), return_res=32).p_signal
    except Exception as exc:  # a short file surfaces as a numpy broadcast ValueError
        raise RecordError(
            f"{', '.join(map(str, files))}: cannot read signal, truncated or damaged? "
            f"({type(exc).__name__}: {exc})"
        ) from exc
    if signals is None or signals.shape[0] != header.sig_len:
        n_read = 0 if signals is None else signals.shape[0]
        raise RecordError(
            f"{', '.join(map(str, files))}: {n_read} samples read, {base.name}.hea declares "
            f"{header.sig_len} (truncated file?)"
        )
    return np.asarray(signals, dtype=np.float32)


def _read_beats(
    base: Path, groups: BeatGroups, *, n_samples: int
) -> tuple[np.ndarray, tuple[str, ...]]:
    atr = base.with_name(f"{base.name}.{ANNOTATION_EXTENSION}")
    _require(atr, "beat annotation file")
    try:
        annotation = wfdb.rdann(str(base), ANNOTATION_EXTENSION)
    except Exception as exc:  # damaged files surface as reshape ValueErrors, IndexErrors
        raise RecordError(f"{atr}: cannot read annotations ({type(exc).__name__}: {exc})") from exc
    all_symbols = annotation.symbol or []
    keep = np.array([groups.is_beat(s) for s in all_symbols], dtype=bool).reshape(-1)
    samples = np.asarray(annotation.sample, dtype=np.int64).reshape(-1)[keep]
    order = np.argsort(samples, kind="stable")
    samples = samples[order]
    symbols = tuple(np.asarray(all_symbols, dtype=object)[keep][order].tolist())
    outside = (samples < 0) | (samples >= n_samples)
    if outside.any():
        raise RecordError(
            f"{atr}: {int(outside.sum())} beat(s) outside the signal's {n_samples} samples, "
            f"first at sample {int(samples[outside][0])} (annotations of another record?)"
        )
    return samples, symbols


def beat_boundaries(beat_samples: np.ndarray, *, n_samples: int) -> np.ndarray:
    """Edges of the beats: beat i spans samples ``[b[i], b[i + 1])``.

    Inner edges are the midpoints between neighbouring R peaks, so consecutive beats tile the
    signal. The first and last beats have one neighbour only; their outer edge lies as far
    from their R peak as the inner one (mirrored), clipped to the record. A lone beat spans the
    whole record.

    Args:
        beat_samples: ascending R-peak samples, shape (n_beats,).
        n_samples: record length, to clip the outer edges.

    Returns:
        int64 edges, shape (n_beats + 1,) (just ``[0]`` when there are no beats).
    """
    peaks = np.asarray(beat_samples, dtype=np.int64)
    if peaks.size < 2:
        return np.array([0, n_samples][: peaks.size + 1], dtype=np.int64)
    mids = (peaks[:-1] + peaks[1:]) // 2
    first = 2 * peaks[0] - mids[0]
    last = 2 * peaks[-1] - mids[-1]
    edges = np.concatenate([[first], mids, [last]])
    return np.clip(edges, 0, n_samples)


def span_mask(edges: np.ndarray, flags: np.ndarray, *, n_samples: int) -> np.ndarray:
    """Per-sample uint8 mask, 1 over the spans of the flagged beats, shape (n_samples,).

    Args:
        edges: beat edges from `beat_boundaries`, shape (n_beats + 1,), ascending.
        flags: which beats to mark, shape (n_beats,).
        n_samples: mask length; spans beyond it are cut.
    """
    mask = np.zeros(n_samples, dtype=np.uint8)
    if flags.size:
        covered = np.repeat(flags.astype(np.uint8), np.diff(edges))
        stop = min(int(edges[-1]), n_samples)
        mask[int(edges[0]) : stop] = covered[: stop - int(edges[0])]
    return mask


@dataclass(frozen=True)
class BeatSegments:
    """PVC/APB segments of one record, zero-padded to a common length.

    Attributes:
        record: record name.
        lead: lead the signals come from.
        fs_hz: sampling rate (the record's).
        signals: float32 millivolts, zero after ``lengths``, shape (n_segments, max_samples).
        lengths: samples of real signal per segment, int64, shape (n_segments,).
        labels: "PVC" or "APB" per segment.
        masks: uint8, 1 over the abnormal beats' spans, shape (n_segments, max_samples).
        start_samples: first sample of each segment in the record, int64, shape (n_segments,).
        beat_positions: R peaks relative to the segment start, one int64 array per segment.
        beat_symbols: beat symbols per segment, aligned with ``beat_positions``.
    """

    record: str
    lead: str
    fs_hz: float
    signals: np.ndarray
    lengths: np.ndarray
    labels: tuple[str, ...]
    masks: np.ndarray
    start_samples: np.ndarray
    beat_positions: tuple[np.ndarray, ...]
    beat_symbols: tuple[tuple[str, ...], ...]

    def __len__(self) -> int:
        return len(self.labels)


def build_segments(
    record: MitbihRecord,
    *,
    lead: str = "MLII",
    max_samples: int = 2000,
    beat_groups: BeatGroups | None = None,
) -> BeatSegments:
    """Pack whole beats into segments and keep those with exactly one kind of abnormal beat.

    Beats are walked in order (edges from `beat_boundaries`); a segment takes consecutive whole
    beats until the next one would make it longer than ``max_samples``, and the next segment
    starts with that beat (segments do not overlap). A beat longer than ``max_samples`` on its
    own (a long pause) is skipped. A segment is kept when its beats are only normal +
    ventricular (label "PVC") or only normal + supraventricular (label "APB") with at least one
    abnormal beat. Dropped: all-normal segments, segments with both PVC and APB beats, and
    segments with any other beat type (fusion, paced, unclassifiable), as the labels would be
    ambiguous. Non-beat annotations (noise, flutter waves) are ignored by the reader, so a beat
    may span an unannotated stretch.

    Args:
        record: a record from `read_record`.
        lead: lead name to cut.
        max_samples: segment length after zero padding.
        beat_groups: symbol groups; `load_beat_groups` when None.
    """
    if max_samples < 1:
        raise ValueError(f"max_samples must be positive, got {max_samples}")
    groups = beat_groups or load_beat_groups()
    edges = beat_boundaries(record.beat_samples, n_samples=record.n_samples)
    kept = []
    for first, stop in _pack_beats(edges, max_samples=max_samples):
        label = _segment_label(record.beat_symbols[first:stop], groups)
        if label is not None:
            kept.append((first, stop, label))
    return _assemble_segments(
        record, kept, lead=lead, edges=edges, max_samples=max_samples, groups=groups
    )


def _pack_beats(edges: np.ndarray, *, max_samples: int) -> list[tuple[int, int]]:
    """Greedy runs of beats ``[first, stop)`` whose total span fits in ``max_samples``."""
    runs: list[tuple[int, int]] = []
    n_beats = len(edges) - 1
    first = 0
    while first < n_beats:
        # Largest stop with edges[stop] - edges[first] <= max_samples.
        stop = int(np.searchsorted(edges, edges[first] + max_samples, side="right")) - 1
        stop = min(stop, n_beats)
        if stop <= first:  # this beat alone overflows a segment
            first += 1
            continue
        runs.append((first, stop))
        first = stop
    return runs


def _segment_label(symbols: Sequence[str], groups: BeatGroups) -> str | None:
    """The segment label ("PVC", "APB") of its one abnormal group; None drops the segment."""
    abnormal = {groups.group_of[s] for s in symbols} - {NORMAL_GROUP}
    if len(abnormal) != 1:
        return None
    return groups.segment_labels.get(abnormal.pop())


def _assemble_segments(
    record: MitbihRecord,
    kept: list[tuple[int, int, str]],
    *,
    lead: str,
    edges: np.ndarray,
    max_samples: int,
    groups: BeatGroups,
) -> BeatSegments:
    signal = record.lead(lead)  # (n_samples,)
    flags = groups.abnormal_flags(record.beat_symbols)  # (n_beats,)
    signals = np.zeros((len(kept), max_samples), dtype=np.float32)
    masks = np.zeros((len(kept), max_samples), dtype=np.uint8)
    starts = np.array([edges[first] for first, _, _ in kept], dtype=np.int64)
    lengths = np.array([edges[stop] - edges[first] for first, stop, _ in kept], dtype=np.int64)
    for k, (first, stop, _) in enumerate(kept):
        signals[k, : lengths[k]] = signal[starts[k] : starts[k] + lengths[k]]
        masks[k] = span_mask(
            edges[first : stop + 1] - starts[k], flags[first:stop], n_samples=max_samples
        )
    return BeatSegments(
        record=record.record,
        lead=lead,
        fs_hz=record.fs_hz,
        signals=signals,
        lengths=lengths,
        labels=tuple(label for _, _, label in kept),
        masks=masks,
        start_samples=starts,
        beat_positions=tuple(
            record.beat_samples[f:s] - starts[k] for k, (f, s, _) in enumerate(kept)
        ),
        beat_symbols=tuple(record.beat_symbols[f:s] for f, s, _ in kept),
    )


@dataclass(frozen=True)
class RhythmWindows:
    """Non-overlapping fixed-length windows of one lead at a new sampling rate.

    Attributes:
        record: record name.
        lead: lead the signals come from.
        fs_hz: rate after resampling (the record's rate times the rational up/down factor).
        signals: float32 millivolts, shape (n_windows, window_samples).
        masks: uint8, 1 over the spans of every non-normal beat, shape (n_windows, window_samples).
        start_s: window start in seconds from the record start, shape (n_windows,).
        beat_samples: R peaks at the new rate relative to the window start, one int64 array
            per window.
        beat_symbols: beat symbols per window, aligned with ``beat_samples``.
    """

    record: str
    lead: str
    fs_hz: float
    signals: np.ndarray
    masks: np.ndarray
    start_s: np.ndarray
    beat_samples: tuple[np.ndarray, ...]
    beat_symbols: tuple[tuple[str, ...], ...]

    def __len__(self) -> int:
        return len(self.start_s)


def rhythm_windows(
    record: MitbihRecord,
    *,
    lead: str = "MLII",
    window_s: float,
    target_fs_hz: float,
    beat_groups: BeatGroups | None = None,
) -> RhythmWindows:
    """Cut ``lead`` into ``window_s`` windows resampled to ``target_fs_hz``.

    The whole lead is resampled once with `scipy.signal.resample_poly` (up/down from
    ``Fraction(target / source).limit_denominator()``) before cutting, so that the filter's
    edge effects hit the record's ends only, not every window. R peaks are moved to the new
    rate by rounding (within half a new sample of their time); the mask marks the spans (as in
    `beat_boundaries`, at the new rate) of every non-normal beat. A last, incomplete window is
    dropped.

    Args:
        record: a record from `read_record`.
        lead: lead name to cut.
        window_s: window length in seconds (the caller's input length).
        target_fs_hz: sampling rate of the windows (the caller's study rate).
        beat_groups: symbol groups; `load_beat_groups` when None.
    """
    if window_s <= 0 or target_fs_hz <= 0:
        raise ValueError(f"window_s and target_fs_hz must be positive: {window_s}, {target_fs_hz}")
    groups = beat_groups or load_beat_groups()
    ratio = Fraction(target_fs_hz / record.fs_hz).limit_denominator()
    up, down = ratio.numerator, ratio.denominator
    fs_hz = record.fs_hz * up / down
    window_samples = round(window_s * fs_hz)
    if window_samples < 1:
        raise ValueError(f"a {window_s} s window holds no sample at {fs_hz} Hz")
    resampled = resample_poly(record.lead(lead), up, down).astype(np.float32)  # (n_new,)
    # Only whole windows that the original record covers entirely.
    n_windows = (record.n_samples * up // down) // window_samples
    n_used = n_windows * window_samples
    peaks = np.rint(record.beat_samples * (up / down)).astype(np.int64)
    edges = beat_boundaries(peaks, n_samples=resampled.size)
    mask = span_mask(edges, groups.abnormal_flags(record.beat_symbols), n_samples=resampled.size)
    window_starts = np.arange(n_windows, dtype=np.int64) * window_samples
    cuts = np.searchsorted(peaks, np.append(window_starts, n_used))  # beats per window
    return RhythmWindows(
        record=record.record,
        lead=lead,
        fs_hz=fs_hz,
        signals=resampled[:n_used].reshape(n_windows, window_samples),
        masks=mask[:n_used].reshape(n_windows, window_samples),
        start_s=window_starts / fs_hz,
        beat_samples=tuple(
            peaks[cuts[w] : cuts[w + 1]] - window_starts[w] for w in range(n_windows)
        ),
        beat_symbols=tuple(record.beat_symbols[cuts[w] : cuts[w + 1]] for w in range(n_windows)),
    )
