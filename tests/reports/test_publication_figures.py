"""Publication figures: methods as aligned bands, the excerpt around the decisive region."""

from __future__ import annotations

import numpy as np
import pytest

from reports.galleries import GalleryItem
from reports.publication_figures import decisive_window, method_maps, publication_figure

FS_HZ = 100.0
N = 3000  # 30 s


def item() -> GalleryItem:
    cam = np.zeros((4, N))
    cam[2, 2000:2050] = 3.0  # true class O peaks at 20 s
    occlusion = np.zeros((1, N))
    occlusion[0, 2010:2030] = 0.5
    occlusion[0, 100] = -9.0  # negative evidence is not relevance
    shift = np.ones((1, N))
    return GalleryItem(
        record_id="S00007", classes=("N", "A", "O", "~"), y_true=2, y_pred=2,
        probabilities=np.array([0.05, 0.05, 0.88, 0.02]), fs_hz=FS_HZ,
        signal=np.sin(np.arange(N) / 10.0)[None],
        maps={"map/cam": cam, "map/occlusion": occlusion,
              "map/decision_over_time": np.zeros((4, N)), "shift/mask": shift},
        scalars={"shift/target_probability_before": 0.1, "shift/target_reached": 0.0})


def test_scored_methods_only_scaled_to_their_maximum():
    maps = method_maps(item())
    # The decision over time is not a relevance map; the shift did not reach Normal.
    assert set(maps) == {"cam", "occlusion"}
    assert all(m.max() == pytest.approx(1.0) and m.min() >= 0 for m in maps.values())


def test_the_excerpt_is_centred_on_the_decisive_region_and_stays_inside():
    maps = method_maps(item())
    start, end = decisive_window(maps, fs_hz=FS_HZ, n=N)
    assert end - start == pytest.approx(5.0) and start < 20.1 < end
    late = {"m": np.r_[np.zeros(N - 1), 1.0]}
    assert decisive_window(late, fs_hz=FS_HZ, n=N) == pytest.approx((25.0, 30.0))


def test_figure_has_one_band_per_method_shaded_beats_and_probabilities():
    mask = np.zeros(N, np.uint8)
    mask[1990:2060] = 1
    mask[500:540] = 1
    fig = publication_figure(item(), mask=mask)
    heatmaps = [t for t in fig.data if t.type == "heatmap"]
    assert len(heatmaps) == 2 * 2  # two methods, whole record and excerpt
    assert len(fig.layout.shapes) == 2 * 2  # two abnormal spans in both columns
    assert "p(O) 0.88" in fig.layout.title.text and "true O, predicted O" in fig.layout.title.text
    assert fig.layout.width == 900
