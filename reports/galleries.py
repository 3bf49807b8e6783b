"""Explanation galleries: one figure per selected record of each explained trial.

The study writes, for the best trial(s), a fixed stratified selection of validation records
(`explanations.npz`: signals, lengths, the model family's own maps, occlusion and the shift
perturbation towards Normal) next to every record's probabilities (`predictions.parquet`).
`gallery_items` turns the two files into plain per-record data (testable without drawing);
`gallery_figure` draws one item like the seed papers' figures: the ECG against time in
seconds on top and one panel per map below it, on a shared time axis cut at the record's real
length (the zero padding is never drawn).

Which panel a map gets, and in which order, is said by the explanation method specs
(`study.explanation_specs`: each map's archive keys, matched in full, and its ``panel`` kind,
one of `PANEL_KINDS`). Keys no spec covers are **shown generically** (a line per channel for
up to `GENERIC_MAX_LINES` channels, a heatmap otherwise) and named in the section notes, so a
new map is visible before it gets a spec; the kind ``none`` skips a key on purpose (the spec
says why).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots
from scipy.special import softmax

from reports.artifact import Figure, Section, Sources
from reports.naming import slug
from reports.study_data import ReportError, StudyData
from study.explanation_specs import SpecError, map_specs, method_specs

MAP_PREFIXES = ("map/", "shift/")
"""Prefixes of the per-record arrays that are drawn (other keys are the record data)."""

PROBABILITY_PREFIX = "p_"
GENERIC_MAX_LINES = 4
"""An unregistered map with at most this many channels is drawn as lines, else a heatmap."""
HEATMAP_MAX_UNITS = 64
"""Recurrent-state heatmaps keep the units with the largest variance over the record."""
HEATMAP_MAX_COLUMNS = 400
"""Heatmaps are block-averaged over time to at most this many columns (lighter HTML)."""

ECG_ROW_WEIGHT = 1.4
PANEL_HEIGHT_PX = 110
MAX_FIGURE_HEIGHT_PX = 1500
"""Tall galleries (ConvLSTM: 11 panels) shrink their rows to stay within one screenful or two."""
HEADER_PX = 120
FOOTER_PX = 60
SPACING_PX = 30
ECG_COLOUR = "#1f1f1f"
CONTEXT_COLOUR = "rgba(120,120,120,0.55)"
OVERLAY_COLOUR = "#d62728"
MAP_COLOUR = "#1f77b4"
COLOUR_AXIS = "coloraxis"
"""Placeholder colour axis of panel traces; `gallery_figure` gives each row its own."""


@dataclass(frozen=True)
class GalleryItem:
    """One gallery record: its ECG, every map and its labels, cut to the real samples.

    Attributes:
        record_id: the record's id.
        classes: class names in model-output order.
        y_true: index of the reference class.
        y_pred: index of the predicted class.
        probabilities: (K,) predicted probabilities.
        fs_hz: sampling rate of the signal and maps.
        signal: (leads, n) normalised ECG, n = the record's real length.
        maps: per npz key (``map/...``, ``shift/...``) a (channels, n) array.
        scalars: per npz key a per-record number (e.g. ``shift/target_probability_after``).
    """

    record_id: str
    classes: tuple[str, ...]
    y_true: int
    y_pred: int
    probabilities: np.ndarray
    fs_hz: float
    signal: np.ndarray
    maps: dict[str, np.ndarray] = field(default_factory=dict)
    scalars: dict[str, float] = field(default_factory=dict)

    @property
    def length(self) -> int:
        """Real samples of the record."""
        return int(self.signal.shape[-1])

    @property
    def duration_s(self) -> float:
        return self.length / self.fs_hz

    @property
    def confidence(self) -> float:
        """Probability of the predicted class."""
        return float(self.probabilities[self.y_pred])

    @property
    def correct(self) -> bool:
        return self.y_true == self.y_pred

    def time_s(self) -> np.ndarray:
        """(n,) sample times in seconds from the record start."""
        return (np.arange(self.length) / self.fs_hz).astype(np.float32)


@dataclass(frozen=True)
class Panel:
    """One subplot row: its traces, title and optional colour axis (a layout dict)."""

    title: str
    traces: list[go.BaseTraceType]
    y_title: str = ""
    colour_axis: dict | None = None
    y_range: tuple[float, float] | None = None


PanelBuilder = Callable[..., "Panel | None"]
"""``builder(item, key) -> Panel | None`` (None: not drawn on purpose)."""


# ---- data ---------------------------------------------------------------------------------------


def read_explanations(path: str | Path, *, keys: list[str] | None = None,
                      patterns: list[str] | None = None) -> dict[str, np.ndarray]:
    """The arrays of an `explanations.npz`: all of them, or only those of ``keys`` that are
    present, or those whose keys match one of ``patterns`` in full (regular expressions)."""
    try:
        with np.load(Path(path), allow_pickle=False) as archive:
            wanted = [k for k in archive.files
                      if (keys is None and patterns is None) or k in (keys or ())
                      or any(re.fullmatch(p, k) for p in patterns or ())]
            # Studies store per-sample arrays as float16 (study.explain.artifacts.write_npz).
            return {k: _widened(archive[k]) for k in wanted}
    except (OSError, ValueError) as exc:
        raise ReportError(f"cannot read {path}: {exc}") from exc


def _widened(value: np.ndarray) -> np.ndarray:
    return value.astype(np.float32) if value.dtype == np.float16 else value


def gallery_items(npz_path: str | Path, predictions_path: str | Path) -> list[GalleryItem]:
    """Per selected record its signal, maps, labels and confidence, in the npz order.

    Args:
        npz_path: the trial's `explanations.npz`.
        predictions_path: the trial's `predictions.parquet` (gives the prediction and the
            probabilities of every record).

    Raises:
        ReportError: a file is unreadable or a gallery record has no prediction.
    """
    arrays = read_explanations(npz_path)
    classes = tuple(str(c) for c in arrays["classes"])
    predictions = _predictions_by_record(predictions_path, classes=classes)
    record_ids = [str(r) for r in arrays["record_ids"]]
    missing = sorted(set(record_ids) - set(predictions.index))
    if missing:
        raise ReportError(f"{predictions_path} has no prediction for gallery records {missing}")
    map_keys = [k for k in arrays if k.startswith(MAP_PREFIXES)]
    fs_hz = float(arrays["fs_hz"])
    items = []
    for b, record in enumerate(record_ids):
        n = int(arrays["lengths"][b])
        row = predictions.loc[record]
        items.append(GalleryItem(
            record_id=record,
            classes=classes,
            y_true=int(arrays["y_true"][b]),
            y_pred=int(row["y_pred"]),
            probabilities=row[[PROBABILITY_PREFIX + c for c in classes]].to_numpy(float),
            fs_hz=fs_hz,
            signal=arrays["signal"][b, :, :n],
            # (B, C, T) -> (C, n): only the real samples; (B,) -> one number per record.
            maps={k: arrays[k][b, :, :n] for k in map_keys if arrays[k].ndim == 3},
            scalars={k: float(arrays[k][b]) for k in map_keys if arrays[k].ndim == 1},
        ))
    return items


def _predictions_by_record(path: str | Path, *, classes: tuple[str, ...]) -> pd.DataFrame:
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types on damaged files
        raise ReportError(f"cannot read {path}: {exc}") from exc
    needed = ["record", "y_pred", *(PROBABILITY_PREFIX + c for c in classes)]
    absent = [c for c in needed if c not in frame.columns]
    if absent:
        raise ReportError(f"{path} lacks columns {absent}")
    frame = frame.assign(record=frame["record"].astype(str))
    return frame.drop_duplicates("record").set_index("record")


def figure_title(item: GalleryItem) -> str:
    """Record id, true and predicted class and the confidence, e.g.
    ``S00005: true A, predicted N (45%), misclassified``."""
    verdict = "correct" if item.correct else "misclassified"
    return (f"{item.record_id}: true {item.classes[item.y_true]}, predicted "
            f"{item.classes[item.y_pred]} ({item.confidence:.0%}), {verdict}")


# ---- panel builders -----------------------------------------------------------------------------


def _line(item: GalleryItem, values: np.ndarray, *, name: str, colour: str = MAP_COLOUR,
          fill: bool = False, legend: bool = False) -> go.Scatter:
    return go.Scatter(x=item.time_s(), y=values.astype(np.float32), name=name, mode="lines",
                      line={"color": colour, "width": 1}, showlegend=legend,
                      fill="tozeroy" if fill else None)


def _context(item: GalleryItem) -> go.Scatter:
    """The ECG in grey, drawn under an overlay."""
    return _line(item, item.signal[0], name="ECG", colour=CONTEXT_COLOUR)


def _cam_panel(item: GalleryItem, key: str, *, title: str) -> Panel:
    """The ECG coloured by the CAM of the predicted class (red = evidence for it)."""
    cam = item.maps[key][item.y_pred]
    label = item.classes[item.y_pred]
    traces = [
        _context(item),
        go.Scatter(x=item.time_s(), y=item.signal[0].astype(np.float32), mode="markers",
                   name=f"CAM {label}", showlegend=False,
                   marker={"color": cam.astype(np.float32), "size": 3, "coloraxis": COLOUR_AXIS}),
    ]
    return Panel(title=f"CAM of the predicted class {label} ({title})", traces=traces,
                 y_title="ECG", colour_axis=_colour_axis(cam, title="CAM"))


def _gates_panel(item: GalleryItem, key: str, *, title: str) -> Panel:
    gates = item.maps[key]
    traces = [_line(item, g, name=f"gate {i + 1}", colour=_palette(i), legend=True)
              for i, g in enumerate(gates)]
    return Panel(title=f"{title} ({len(gates)}, upsampled to the input)",
                 traces=traces, y_title="weight")


def _attention_panel(item: GalleryItem, key: str, *, title: str) -> Panel:
    return Panel(title=title, y_title="attention",
                 traces=[_line(item, item.maps[key][0], name="attention", fill=True)])


def _attended_panel(item: GalleryItem, key: str, *, title: str) -> Panel:
    traces = [_context(item), _line(item, item.maps[key][0], name="after attention",
                                    colour=OVERLAY_COLOUR)]
    return Panel(title=f"{title} (grey: input)", traces=traces, y_title="ECG")


def _decision_panel(item: GalleryItem, key: str, *, title: str) -> Panel:
    probabilities = softmax(item.maps[key], axis=0)  # (K, n) logits -> softmax over classes
    traces = [_line(item, p, name=f"p({c})", colour=_palette(k), legend=True)
              for k, (c, p) in enumerate(zip(item.classes, probabilities, strict=True))]
    return Panel(title=title, traces=traces, y_title="probability", y_range=(0.0, 1.0))


def _shift_caption(item: GalleryItem, key: str) -> str:
    stem = key.rsplit("/", 1)[0]
    before = item.scalars.get(f"{stem}/target_probability_before", math.nan)
    after = item.scalars.get(f"{stem}/target_probability_after", math.nan)
    reached = item.scalars.get(f"{stem}/target_reached")
    verdict = ("" if reached is None else
               "; target reached" if reached else "; target not reached: not scored")
    return f"p({_shift_target(item, key)}) {before:.2f} -> {after:.2f}{verdict}"


def _shift_target(item: GalleryItem, key: str) -> str:
    """The class the shift perturbation aimed at (the data set's normal class; files written
    before it was recorded aimed at class 0)."""
    stem = key.rsplit("/", 1)[0]
    return item.classes[int(item.scalars.get(f"{stem}/target_class", 0))]


def _shift_was_run(item: GalleryItem, key: str) -> bool:
    """The study shifts only records not predicted Normal; the others have NaN probabilities."""
    stem = key.rsplit("/", 1)[0]
    return math.isfinite(item.scalars.get(f"{stem}/target_probability_before", 0.0))


def _shift_mask_panel(item: GalleryItem, key: str, *, title: str) -> Panel | None:
    if not _shift_was_run(item, key):
        return None
    return Panel(title=f"{title} towards {_shift_target(item, key)}: mask "
                       f"({_shift_caption(item, key)})",
                 traces=[_line(item, item.maps[key][0], name="shift mask", fill=True)],
                 y_title="|change|")


def _shifted_signal_panel(item: GalleryItem, key: str, *, title: str) -> Panel | None:
    if not _shift_was_run(item, key):
        return None
    traces = [_context(item), _line(item, item.maps[key][0], name="shifted signal",
                                    colour=OVERLAY_COLOUR)]
    return Panel(title=f"{title} (grey: input; {_shift_caption(item, key)})",
                 traces=traces, y_title="ECG")


def _occlusion_panel(item: GalleryItem, key: str, *, title: str) -> Panel:
    label = item.classes[item.y_pred]
    return Panel(title=f"{title} of the predicted class {label} when blanked (> 0: evidence)",
                 traces=[_line(item, item.maps[key][0], name="occlusion", fill=True)],
                 y_title="drop")


def _signed_line_panel(item: GalleryItem, key: str, *, title: str) -> Panel:
    return Panel(title=title, traces=[_line(item, item.maps[key][0], name=title, fill=True)])


def _state_panel(item: GalleryItem, key: str, *, title: str = "") -> Panel:
    """Units x time heatmap of a recurrent state or gate, with a colour bar."""
    states = item.maps[key]
    units = _top_variance_units(states, HEATMAP_MAX_UNITS)
    x, z = _block_mean(states[units], fs_hz=item.fs_hz, columns=HEATMAP_MAX_COLUMNS)
    kept = "" if len(units) == len(states) else f", {len(units)} of {len(states)} units"
    name = key.rsplit("/", 1)[-1].replace("_", " ")
    heatmap = go.Heatmap(x=x.astype(np.float32), y=units, z=z.astype(np.float32),
                         coloraxis=COLOUR_AXIS, name=name)
    return Panel(title=f"{name} (units x time{kept})", traces=[heatmap], y_title="unit",
                 colour_axis=_colour_axis(z, title=name.split(" ", 1)[-1]))


def _generic_panel(item: GalleryItem, key: str, *, title: str = "") -> Panel:
    """A map without a registered panel: lines for few channels, a heatmap for many."""
    values = item.maps[key]
    if len(values) > GENERIC_MAX_LINES:
        return _state_panel(item, key)
    traces = [_line(item, v, name=f"{key}[{c}]", colour=_palette(c))
              for c, v in enumerate(values)]
    return Panel(title=f"{key} (no dedicated panel)", traces=traces)


def _no_panel(item: GalleryItem, key: str, *, title: str) -> None:
    """Not drawn on purpose (the map's spec says why)."""
    return None


PANEL_KINDS: Mapping[str, PanelBuilder] = MappingProxyType({
    "cam": _cam_panel,
    "gates": _gates_panel,
    "attention": _attention_panel,
    "attended_signal": _attended_panel,
    "decision": _decision_panel,
    "shift_mask": _shift_mask_panel,
    "shifted_signal": _shifted_signal_panel,
    "occlusion": _occlusion_panel,
    "line": _signed_line_panel,
    "states": _state_panel,
    "none": _no_panel,
})
"""A map spec's ``panel`` -> its builder ``builder(item, key, *, title)``."""


def panel_builder(key: str) -> tuple[PanelBuilder, bool]:
    """The builder of archive key ``key`` (its map spec's panel, with the spec's title) and
    whether a spec covers it (False: `_generic_panel`).

    Raises:
        SpecError: the spec names a panel kind not in `PANEL_KINDS` (the message names the
            spec file).
    """
    for method in method_specs().values():
        for spec in method.maps:
            if spec.matches(key):
                if spec.panel not in PANEL_KINDS:
                    raise SpecError(f"{method.path}: map {spec.name!r}: panel {spec.panel!r} "
                                    f"is not one of {sorted(PANEL_KINDS)}")
                return functools.partial(PANEL_KINDS[spec.panel], title=spec.title), True
    return _generic_panel, False


def unregistered_keys(item: GalleryItem) -> list[str]:
    """Map keys of ``item`` no map spec covers (drawn by the generic panel)."""
    return [k for k in item.maps if not panel_builder(k)[1]]


def _panel_order(key: str) -> int:
    specs = list(map_specs().values())
    return next((i for i, spec in enumerate(specs) if spec.matches(key)), len(specs))


# ---- rendering ----------------------------------------------------------------------------------


def gallery_panels(item: GalleryItem) -> list[Panel]:
    """The panels of ``item`` below the ECG, in registry order (then unregistered keys)."""
    keys = sorted(item.maps, key=_panel_order)  # stable: file order within a pattern
    panels = []
    for key in keys:
        panel = panel_builder(key)[0](item, key)
        if panel is not None:
            panels.append(panel)
    return panels


def gallery_figure(item: GalleryItem) -> go.Figure:
    """The ECG (seconds) with every map of ``item`` below it on a shared time axis."""
    ecg = Panel(title="ECG (normalised)", y_title="ECG",
                traces=[_line(item, item.signal[0], name="ECG", colour=ECG_COLOUR)])
    panels = [ecg, *gallery_panels(item)]
    weights = [ECG_ROW_WEIGHT] + [1.0] * (len(panels) - 1)
    height = min(MAX_FIGURE_HEIGHT_PX, int(HEADER_PX + FOOTER_PX + PANEL_HEIGHT_PX * sum(weights)
                                           + SPACING_PX * (len(panels) - 1)))
    fig = make_subplots(rows=len(panels), cols=1, shared_xaxes=True,
                        row_heights=weights, vertical_spacing=SPACING_PX / height,
                        subplot_titles=[p.title for p in panels])
    for row, panel in enumerate(panels, start=1):
        # Builders colour with the placeholder `COLOUR_AXIS`; each row gets its own axis so
        # that its colour bar sits beside it.
        axis = f"coloraxis{row}"
        for trace in panel.traces:
            _retarget_colour_axis(trace, axis)
            fig.add_trace(trace, row=row, col=1)
        if panel.colour_axis is not None:
            domain = fig.get_subplot(row, 1).yaxis.domain
            fig.layout[axis] = {**panel.colour_axis, "colorbar": {
                **panel.colour_axis.get("colorbar", {}), "y": (domain[0] + domain[1]) / 2,
                "len": domain[1] - domain[0], "thickness": 10, "x": 1.01,
                "yanchor": "middle"}}
        fig.update_yaxes(title_text=panel.y_title, range=panel.y_range, row=row, col=1)
    fig.update_xaxes(range=[0.0, item.duration_s])
    fig.update_xaxes(title_text="time (s)", row=len(panels), col=1)
    fig.update_annotations(font_size=11)
    fig.update_layout(title=figure_title(item), height=height, template="plotly_white",
                      margin={"t": HEADER_PX - 20, "b": FOOTER_PX, "l": 60, "r": 90},
                      legend={"orientation": "h", "y": 1.0, "yanchor": "bottom", "x": 0.0,
                              "font_size": 10})
    return fig


def _retarget_colour_axis(trace: go.BaseTraceType, axis: str) -> None:
    if getattr(trace, "coloraxis", None):
        trace.coloraxis = axis
    marker = getattr(trace, "marker", None)
    if marker is not None and marker.coloraxis:
        marker.coloraxis = axis


def _colour_axis(values: np.ndarray, *, title: str) -> dict:
    """Diverging around zero for signed values, sequential otherwise."""
    finite = values[np.isfinite(values)]
    signed = finite.size > 0 and finite.min() < 0 < finite.max()
    scale = {True: {"colorscale": "RdBu_r", "cmid": 0.0},
             False: {"colorscale": "Viridis"}}[bool(signed)]
    return {**scale, "colorbar": {"title": {"text": title, "side": "right"}}}


def _top_variance_units(states: np.ndarray, limit: int) -> np.ndarray:
    """Indices (ascending) of the ``limit`` units varying most over time."""
    if len(states) <= limit:
        return np.arange(len(states))
    return np.sort(np.argsort(-states.var(axis=1), kind="stable")[:limit])


def _block_mean(values: np.ndarray, *, fs_hz: float, columns: int) -> tuple[np.ndarray, np.ndarray]:
    """Average (C, n) over time blocks so at most ``columns`` remain; block centres in s."""
    n = values.shape[-1]
    block = max(1, math.ceil(n / columns))
    starts = np.arange(0, n, block)
    sums = np.add.reduceat(values, starts, axis=-1)
    counts = np.diff(np.append(starts, n))
    return (starts + (counts - 1) / 2) / fs_hz, sums / counts


def _palette(i: int) -> str:
    colours = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
               "#7f7f7f", "#bcbd22", "#17becf")
    return colours[i % len(colours)]


# ---- section ------------------------------------------------------------------------------------


def galleries_section(study: StudyData) -> Section:
    """One figure per gallery record of every trial with explanations and predictions.

    Figures are named ``gallery_<trial>_<record>`` (both through `reports.naming.slug`).
    """
    figures: list[Figure] = []
    notes: list[str] = []
    generic: set[str] = set()
    explained = {t: a for t, a in study.artifacts.items() if a.explanations is not None}
    for trial_id, artifacts in explained.items():
        if artifacts.predictions is None:
            notes.append(f"Trial {trial_id} has explanations but no predictions.parquet; "
                         "its gallery is left out.")
            continue
        for item in gallery_items(artifacts.explanations, artifacts.predictions):
            generic.update(unregistered_keys(item))
            figures.append(Figure(
                name=f"gallery_{slug(trial_id)}_{slug(item.record_id)}",
                title=f"Trial {trial_id}, {figure_title(item)}",
                figure=gallery_figure(item),
                sources=Sources(study=study.name, trials=(trial_id,)),
            ))
    if not explained:
        notes.append("No trial of this study has explanations.npz (the study writes them for "
                     "its best trials only once it has finished), so there is no gallery.")
    else:
        notes.append(
            "Records are the study's fixed stratified selection from the validation fold: per "
            "class the most confident correct and misclassified records, then the most "
            "uncertain ones. Only real samples are drawn (no padding). CAMs are shown for the "
            "predicted class; the decision over time is the softmax of the per-step logits; "
            f"recurrent states are heatmaps of at most {HEATMAP_MAX_UNITS} units (largest "
            f"variance) averaged into at most {HEATMAP_MAX_COLUMNS} time columns. The study "
            "runs the shift perturbation towards Normal only for records not predicted Normal, "
            "so the others have no shift panels.")
    if generic:
        notes.append("Maps without a dedicated panel, drawn generically: "
                     + ", ".join(sorted(generic)) + ".")
    return Section(title="Explanation galleries", figures=figures, notes=notes)
