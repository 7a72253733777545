"""Inference paths: gated sliding window, the calcium rule, the segmenter's ROI handling, landmark conventions."""

import math

import numpy as np
import pytest
import torch

from iacseg.core.anatomy import LANDMARK_AP_MM, LANDMARK_LATERAL_MM
from iacseg.core.plane import MidsagittalPlane
from iacseg.core.contracts import LANDMARKS
from iacseg.io.volume import CTVolume
from iacseg.core.grid import Grid
from iacseg.models.networks.dst import DepthSequenceTransformer
from iacseg.models.localiser import LandmarkLocaliser, landmark_target_slice, slice_to_plane_z
from iacseg.models.postprocess import calcium_mask
from iacseg.models.loading import save_model
from iacseg.models.segmenter import CalcificationSegmenter
from iacseg.models.sliding import sliding_window_proba, window_starts
from iacseg.models.networks.unet import ResEncUNet


class CountingNet(torch.nn.Module):
    """Logit = a local mean of channel 1 (so windows matter), counting the windows it sees."""

    def __init__(self):
        super().__init__()
        self.windows = 0

    def forward(self, x):
        self.windows += x.shape[0]
        return torch.nn.functional.avg_pool3d(x[:, 1:2] * 10 - 3, 3, stride=1, padding=1)


def test_window_starts_cover_the_region_with_overlap():
    assert window_starts(10, 16, 0.5) == [0]
    starts = window_starts(100, 32, 0.25)
    assert starts[0] == 0 and starts[-1] == 68
    assert all(b - a <= 24 for a, b in zip(starts, starts[1:]))


def test_gating_skips_windows_without_candidates_and_changes_nothing_at_candidates():
    torch.manual_seed(0)
    hu = torch.full((16, 64, 64), 40.0)
    hu[4:7, 5:9, 5:9] = 600.0  # one bright spot in a corner
    image = torch.stack([(hu.clamp(-100, 300) + 100) / 400, hu.clamp(0, 1600) / 1600])
    net_all, net_gated = CountingNet(), CountingNet()
    full, s_full = sliding_window_proba(image, net_all, (16, 32, 32), overlap=0.5, batch=3)
    gated, s_gated = sliding_window_proba(image, net_gated, (16, 32, 32), overlap=0.5, gate=hu >= 130, batch=3)
    assert s_full == {"windows": 9, "run": 9} and net_all.windows == 9
    assert s_gated["run"] == net_gated.windows == 1
    cand = hu >= 130
    assert torch.allclose(full[cand], gated[cand])
    assert float(gated[:, 40:, 40:].abs().max()) == 0.0  # never computed → 0


def test_calcium_mask_applies_threshold_130_hu_and_drops_single_voxels():
    prob = np.zeros((5, 6, 6), np.float32)
    hu = np.full_like(prob, 400.0)
    prob[1, 1, 1] = 0.9                       # isolated single voxel → removed
    prob[3, 3, 3] = prob[4, 4, 4] = 0.9       # diagonal pair (26-connected) → kept
    prob[1, 4, 4] = prob[1, 4, 5] = 0.9
    hu[1, 4, 5] = 100.0                       # below 130 HU → the pair shrinks to a single voxel → removed
    prob[0, 0, 0] = 0.3                       # below threshold
    m = calcium_mask(prob, hu, threshold=0.5)
    assert sorted(map(tuple, np.argwhere(m))) == [(3, 3, 3), (4, 4, 4)]


def axial_volume(hu, spacing=(0.5, 0.5, 2.0), origin=(-10.0, -12.0, -30.0)):
    return CTVolume(hu.astype(np.float32), Grid(hu.shape, spacing, origin))


def test_segmenter_probability_is_zero_outside_the_roi_and_on_the_ct_grid(tmp_path):
    torch.manual_seed(0)
    net = ResEncUNet(2, (4, 8), ((1, 1, 1), (1, 2, 2)), (1, 1))
    cfg = {"name": "toy", "version": "0", "kind": "segmenter",
           "architecture": {"name": "ResEncUNet", "params": net.config},
           "input": {"patch_size_kji": [8, 16, 16], "context_margin_kji": [1, 4, 4]}}
    folder = save_model(tmp_path / "seg", net, cfg, "toy")
    seg = CalcificationSegmenter.load(folder)
    hu = np.full((12, 40, 40), 30.0)
    hu[5:7, 18:22, 18:22] = 700.0
    vol = axial_volume(hu)
    roi = (slice(2, 10), slice(10, 30), slice(12, 32))
    prob = seg.predict_proba(vol, roi)
    assert prob.shape == hu.shape and prob.dtype == np.float32
    outside = np.ones(hu.shape, bool)
    outside[roi] = False
    assert prob[outside].max() == 0.0
    assert prob[5:7, 18:22, 18:22].min() > 0.0
    assert seg.threshold == 0.5 and len(seg.sha256) == 64
    assert seg.predict_proba(axial_volume(np.full((12, 40, 40), 30.0)), roi).max() == 0.0  # nothing ≥ 130 HU


def test_slice_convention_round_trips():
    z0, sk = -30.0, 2.5
    assert landmark_target_slice(-30.0, z0, sk) == 0          # plane exactly on slice 0's centre
    assert landmark_target_slice(-29.0, z0, sk) == 1          # first slice above the plane
    k = landmark_target_slice(-21.3, z0, sk)
    z = slice_to_plane_z(k, z0, sk)
    assert z0 + (k - 1) * sk < z < z0 + k * sk and math.ceil((z - z0) / sk) == k


def test_localiser_places_six_landmarks_by_the_slice_convention(tmp_path):
    torch.manual_seed(0)
    net = DepthSequenceTransformer(2, (4, 8), dim=16, depth=1, heads=2, max_slices=20)
    cfg = {"name": "toy-dst", "version": "0", "kind": "landmarks",
           "architecture": {"name": "DepthSequenceTransformer", "params": net.config},
           "input": {"fov_mm": 32.0, "size": 16}}
    folder = save_model(tmp_path / "dst", net, cfg, "toy")
    loc = LandmarkLocaliser.load(folder)
    rng = np.random.default_rng(0)
    vol = axial_volume(rng.normal(0, 100, (30, 48, 48)))  # more slices than the model's 20
    plane = MidsagittalPlane((2.0, 0.0, 0.0), (1.0, 0.0, 0.0))
    lms = loc.predict(vol, plane)
    assert list(lms) == list(LANDMARKS)
    for name, lm in lms.items():
        k = lm.slice
        assert 0 <= k < 30 and k == int(k)
        assert lm.z_mm == pytest.approx(-30.0 + (k - 0.5) * 2.0)
        side, kind = name.split("_", 1)  # shown where the landmark lies: lateral and in front of the plane point
        lateral = LANDMARK_LATERAL_MM[kind] if side == "L" else -LANDMARK_LATERAL_MM[kind]
        assert lm.position[:2] == pytest.approx((2.0 + lateral, LANDMARK_AP_MM[kind]))
        assert lm.position[2] == lm.z_mm and 0 < lm.confidence <= 1
        assert abs(lm.extra["expected_slice"] - k) < 30
