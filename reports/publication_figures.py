"""Publication figures of explanations: the whole record and a 5-s excerpt, one row per method.

Each figure has two aligned columns: the full record and a `ZOOM_S` excerpt centred on the
decisive region (where the methods' maps, each scaled to its maximum, agree most). The top
row is the ECG with the ground-truth abnormal beats shaded where known; below it every scored
method (`reports.explanation_scores.scored_methods`) is a colour band of its map (0 to its
maximum over the record), so a reader compares methods at a glance. The title gives the true
and predicted class and the class probabilities. Sized for the full width of a two-column
paper (about 18 cm) when exported as PDF.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from reports.artifact import Figure, Section, Sources
from reports.explanation_scores import find_ground_truth, masks_at_rate, scored_methods
from reports.galleries import GalleryItem, gallery_items, read_explanations
from reports.naming import slug
from reports.study_data import StudyData

ZOOM_S = 5.0
PER_TRIAL = 3
"""Records drawn per trial: those with abnormal beats and a correct prediction first."""
WIDTH_PX = 900
ECG_ROW_PX = 150
BAND_ROW_PX = 34
SHADE = "rgba(214, 39, 40, 0.18)"


def method_maps(item: GalleryItem) -> dict[str, np.ndarray]:
    """Per scored method present in ``item`` its (n,) map scaled to [0, 1] (max 1); methods
    not computed for this record (a shift that was not run) are left out."""
    arrays = {key: value[None] for key, value in item.maps.items()}
    arrays.update({key: np.array([value]) for key, value in item.scalars.items()})
    arrays.update(y_true=np.array([item.y_true]), record_ids=np.array([item.record_id]))
    out = {}
    for name, method in scored_methods().items():
        maps = method.maps(arrays)
        if maps is None or not method.computed(arrays, method.key(arrays))[0]:
            continue
        peak = float(maps[0].max())
        out[name] = maps[0] / peak if peak > 0 else maps[0]
    return out


def decisive_window(maps: dict[str, np.ndarray], *, fs_hz: float, n: int,
                    zoom_s: float = ZOOM_S) -> tuple[float, float]:
    """(start, end) in seconds of the ``zoom_s`` excerpt centred on the peak of the mean
    scaled map (the record's middle where there are no maps), kept inside the record."""
    duration = n / fs_hz
    if not maps:
        centre = duration / 2
    else:
        centre = float(np.argmax(np.mean(list(maps.values()), axis=0))) / fs_hz
    start = min(max(0.0, centre - zoom_s / 2), max(0.0, duration - zoom_s))
    return start, min(duration, start + zoom_s)


def _spans(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) sample spans where ``mask`` is 1."""
    edges = np.diff(np.concatenate([[0], (mask > 0).astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True))


def publication_title(item: GalleryItem) -> str:
    probabilities = ", ".join(f"p({c}) {p:.2f}" for c, p in
                              zip(item.classes, item.probabilities, strict=True))
    return (f"Record {item.record_id}: true {item.classes[item.y_true]}, predicted "
            f"{item.classes[item.y_pred]} ({probabilities})")


def publication_figure(item: GalleryItem, *, mask: np.ndarray | None) -> go.Figure:
    """Full record and zoomed excerpt, ECG with shaded abnormal beats, one band per method."""
    n = item.signal.shape[-1]
    time = np.arange(n) / item.fs_hz
    maps = method_maps(item)
    zoom = decisive_window(maps, fs_hz=item.fs_hz, n=n)
    rows = 1 + len(maps)
    height = 110 + ECG_ROW_PX + BAND_ROW_PX * len(maps)
    fig = make_subplots(rows=rows, cols=2, column_widths=[0.62, 0.38], shared_yaxes=False,
                        horizontal_spacing=0.04, vertical_spacing=6 / height,
                        row_heights=[ECG_ROW_PX] + [BAND_ROW_PX] * len(maps),
                        subplot_titles=["whole record", f"excerpt {zoom[0]:.1f}-{zoom[1]:.1f} s"])
    for col, (start, end) in enumerate(((0.0, n / item.fs_hz), zoom), start=1):
        fig.add_trace(go.Scattergl(x=time, y=item.signal[0], mode="lines", showlegend=False,
                                   line={"color": "#1f1f1f", "width": 0.8 if col == 1 else 1.2},
                                   name="ECG"), row=1, col=col)
        if mask is not None:
            for first, stop in _spans(mask[:n]):
                fig.add_vrect(x0=first / item.fs_hz, x1=stop / item.fs_hz, fillcolor=SHADE,
                              line_width=0, layer="below", row=1, col=col)
        for row, values in enumerate(maps.values(), start=2):
            fig.add_trace(go.Heatmap(z=values[None], x=time, y=[0], coloraxis="coloraxis",
                                     showscale=False), row=row, col=col)
        fig.update_xaxes(range=[start, end], col=col)
    for row, name in enumerate(maps, start=2):
        fig.update_yaxes(showticklabels=False, row=row, col=2)
        fig.update_yaxes(tickvals=[0], ticktext=[name.replace("_", " ")], row=row, col=1)
    fig.update_yaxes(title_text="ECG", row=1, col=1)
    fig.update_xaxes(showticklabels=False)
    fig.update_xaxes(showticklabels=True, title_text="time (s)", row=rows)
    fig.update_layout(
        title={"text": publication_title(item), "font": {"size": 12}},
        width=WIDTH_PX, height=height, template="plotly_white",
        margin={"t": 70, "b": 40, "l": 140, "r": 60},
        coloraxis={"colorscale": "Reds", "cmin": 0.0, "cmax": 1.0,
                   "colorbar": {"title": {"text": "relevance (of max)", "side": "right"},
                                "thickness": 10, "len": 0.5, "y": 0.25}},
        font={"size": 10})
    fig.update_annotations(font_size=11)
    return fig


def _chosen(items: list[GalleryItem], masks: dict[str, np.ndarray | None]) -> list[GalleryItem]:
    """Records with abnormal beats and a correct prediction first, then the rest."""
    def rank(item: GalleryItem) -> tuple[int, int]:
        mask = masks.get(item.record_id)
        return (0 if mask is not None and mask.any() else 1, 0 if item.y_true == item.y_pred else 1)
    return sorted(items, key=rank)[:PER_TRIAL]


def _masks(study: StudyData, path, items: list[GalleryItem]) -> dict[str, np.ndarray | None]:
    """Per gallery record its abnormal-beat mask at the study rate, where known."""
    arrays = read_explanations(path, keys=["record_ids", "mask", "signal", "fs_hz"])
    if "mask" in arrays:
        return dict(zip((str(r) for r in arrays["record_ids"]), arrays["mask"], strict=True))
    truth = find_ground_truth(study.data_dir)
    if truth is None or not items:
        return {}
    ids = [item.record_id for item in items]
    found = masks_at_rate(truth, ids, fs_hz=items[0].fs_hz,
                          n_samples=int(arrays["signal"].shape[-1]))
    return dict(zip(ids, found, strict=True))


def publication_section(study: StudyData) -> Section:
    """Up to `PER_TRIAL` publication figures per trial with explanations."""
    figures = []
    for trial_id, artifacts in sorted(study.artifacts.items()):
        if artifacts.explanations is None or artifacts.predictions is None:
            continue
        items = gallery_items(artifacts.explanations, artifacts.predictions)
        masks = _masks(study, artifacts.explanations, items)
        for item in _chosen(items, masks):
            figures.append(Figure(
                name=f"publication_{slug(trial_id)}_{slug(item.record_id)}",
                title=f"Trial {trial_id}, {publication_title(item)}",
                figure=publication_figure(item, mask=masks.get(item.record_id)),
                sources=Sources(study=study.name, trials=(trial_id,))))
    notes = [
        "Publication figures: left the whole record, right a "
        f"{ZOOM_S:g}-s excerpt around the decisive region (the peak of the methods' mean "
        "map); top row the ECG with ground-truth abnormal beats shaded (where the data set "
        "has them), then one colour band per scored method (each map scaled to its own "
        "maximum). Records with abnormal beats and a correct prediction come first."]
    if not figures:
        notes = ["No trial has explanations and predictions, so there are no publication "
                 "figures."]
    return Section(title="Explanation figures for publication", figures=figures, notes=notes)
