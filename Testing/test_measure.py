"""Measures: volumes equal the label map, Agatston-style and mass scores, 26-connected lesions, risk groups."""

from __future__ import annotations

import numpy as np
import pytest

from iacseg.core.contracts import SEGMENT_IDS, SEGMENTS
from iacseg.core.errors import InputError
from iacseg.core.grid import Grid
from iacseg.measure import density_weight, measure_case, risk_group


def _case(shape=(10, 20, 20), spacing=(0.5, 0.5, 3.0)):
    grid = Grid(shape, spacing, (0.0, 0.0, 0.0))
    return grid, np.zeros(shape, np.uint8), np.zeros(shape, np.float32)


def test_agatston_of_a_two_slice_square_at_350_hu() -> None:
    grid, labels, hu = _case()
    labels[2:4, 5:11, 5:11] = SEGMENT_IDS["L_petrous"]  # 3 × 3 mm square on two 3 mm slices
    hu[2:4, 5:11, 5:11] = 350.0
    m = measure_case(labels, hu, grid)
    # 9 mm² × weight 3 × 2 slices × (3 mm / 3 mm)
    assert m["segments"]["L_petrous"]["agatston"] == pytest.approx(54.0)
    assert m["total"]["agatston"] == pytest.approx(54.0)
    assert m["segments"]["L_petrous"]["peak_hu"] == 350.0


def test_agatston_normalises_slice_spacing_and_uses_the_peak() -> None:
    grid, labels, hu = _case(spacing=(0.5, 0.5, 1.5))
    labels[2, 5:11, 5:11] = 1
    hu[2, 5:11, 5:11] = 150.0
    hu[2, 7, 7] = 420.0  # peak ≥ 400 → weight 4
    assert measure_case(labels, hu, grid)["total"]["agatston"] == pytest.approx(9.0 * 4 * 1.5 / 3.0)


def test_lesions_below_one_square_millimetre_do_not_score() -> None:
    grid, labels, hu = _case()
    labels[2, 5:7, 5:7] = 1  # 4 pixels × 0.25 mm² = 1.0 mm² → counts
    labels[5, 5:7, 5] = 1  # 2 pixels = 0.5 mm² → does not
    hu[labels > 0] = 250.0
    m = measure_case(labels, hu, grid)
    assert m["total"]["agatston"] == pytest.approx(1.0 * 2 * 1.0)
    assert m["total"]["volume_mm3"] == 6 * 0.75  # but its volume still counts


def test_density_weights() -> None:
    assert density_weight(np.array([129.9, 130, 199, 200, 299, 300, 399, 400, 1500])).tolist() == \
        [0, 1, 1, 2, 2, 3, 3, 4, 4]


def test_volumes_equal_the_label_map_exactly_and_add_up() -> None:
    rng = np.random.default_rng(3)
    grid, _, _ = _case(shape=(12, 16, 16), spacing=(0.43, 0.43, 0.625))
    labels = (rng.integers(0, 9, grid.shape) * (rng.random(grid.shape) > 0.8)).astype(np.uint8)
    hu = rng.uniform(130, 900, grid.shape).astype(np.float32)
    m = measure_case(labels, hu, grid)
    for value, name in SEGMENTS.items():
        assert m["segments"][name]["volume_mm3"] == np.count_nonzero(labels == value) * grid.voxel_volume_mm3
    assert m["total"]["volume_mm3"] == np.count_nonzero(labels) * grid.voxel_volume_mm3
    assert sum(s["agatston"] for s in m["segments"].values()) == pytest.approx(m["total"]["agatston"])
    assert sum(s["mass_mg"] for s in m["segments"].values()) == pytest.approx(m["total"]["mass_mg"])


def test_mass_score_uses_calibration() -> None:
    grid, labels, hu = _case()
    labels[1, 1, 1:5] = 1  # 4 voxels × 0.75 mm³ = 3 mm³
    hu[1, 1, 1:5] = [200, 300, 400, 500]  # mean 350 HU
    assert measure_case(labels, hu, grid)["total"]["mass_mg"] == pytest.approx(3.0 * 350 * 0.001)
    assert measure_case(labels, hu, grid, mass_calibration=0.002)["total"]["mass_mg"] == pytest.approx(2.1)


def test_lesions_join_diagonally_and_straddlers_count_in_each_segment() -> None:
    grid, labels, hu = _case()
    labels[1, 1, 1] = 1
    labels[2, 2, 2] = 2  # corner (26-) neighbour of the first: one lesion across two segments
    labels[6, 10, 10] = 5  # a separate lesion
    hu[labels > 0] = 300.0
    hu[2, 2, 2] = 500.0
    m = measure_case(labels, hu, grid)
    assert m["total"]["lesion_count"] == 2
    assert m["segments"]["L_cervical"]["lesion_count"] == 1
    assert m["segments"]["L_petrous"]["lesion_count"] == 1
    assert m["segments"]["R_cervical"]["lesion_count"] == 1
    first = m["lesions"][0]
    assert first["segments"] == ["L_cervical", "L_petrous"] and first["voxel_count"] == 2
    assert first["segment"] == "L_cervical"  # tie → lower label
    assert first["peak_hu"] == 500.0 and first["mean_hu"] == 400.0
    assert first["volume_mm3"] == 2 * 0.75
    assert first["centroid_lps_mm"] == pytest.approx([0.75, 0.75, 4.5])  # mean of (0.5,0.5,3) and (1,1,6)


def test_empty_case() -> None:
    grid, labels, hu = _case()
    m = measure_case(labels, hu, grid)
    assert m["total"]["volume_mm3"] == 0.0 and m["total"]["lesion_count"] == 0 and m["lesions"] == []
    assert m["risk_group"]["group"] == "none" and m["total"]["peak_hu"] is None


@pytest.mark.parametrize("volume, group", [(0.0, "none"), (0.01, "low"), (29.99, "low"), (30.0, "moderate"),
                                           (99.99, "moderate"), (100.0, "high"), (5000.0, "high")])
def test_risk_group_boundaries(volume: float, group: str) -> None:
    assert risk_group(volume)["group"] == group


def test_risk_group_custom_cut_points() -> None:
    assert risk_group(12.0, (5.0, 10.0))["group"] == "high"
    assert risk_group(12.0, {"low": 0, "mid": 10, "top": 50})["group"] == "mid"
    with pytest.raises(InputError):
        risk_group(12.0, (50.0, 10.0))
