"""The midsagittal plane: the published centroid rule, refined by left–right symmetry.

1. **Initial plane** (Hou et al., Algorithm 1): skull by threshold → one component → per-slice hole filling
   → centroid; normal = the grid's row direction (ImageOrientationPatient row cosines = the i axis). Unlike
   the paper's "largest component", the skull is the bone component that encloses brain-density tissue
   (`head.analyse_head`), so a head rest bigger than the skull does not pull the centroid away.
2. **Symmetry refinement**: on the ≈2.5 mm coarse copy, a feature image (soft tissue 0.3, bone up to 1.0,
   zero outside the head) is reflected about candidate planes (yaw about z, roll about y, offset along the
   normal); the plane whose reflection best matches the image (normalised correlation) wins. A coarse grid
   over ±12° / ±8 mm is followed by four finer local grids; all candidates of a grid are evaluated at once
   with ``grid_sample`` on the torch device.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from ..core.plane import MidsagittalPlane
from ..io.volume import CTVolume
from ..core.grid import Grid
from ..core.device import resolve_device
from .head import CoarseHead, analyse_head

MAX_SAMPLES = 16_000
BATCH = 64
#: (yaw/roll step °, offset step mm, steps each side, sample points) of the successive search grids.
SEARCH_STAGES = ((3.0, 4.0, (4, 4, 2), 5_000), (1.0, 1.5, (2, 2, 2), 10_000), (0.5, 0.75, (2, 2, 2), 16_000),
                 (0.25, 0.4, (2, 2, 2), 16_000), (0.12, 0.2, (2, 2, 2), 16_000))


def plane_normal(yaw_deg: float, roll_deg: float) -> np.ndarray:
    """Unit normal with ``atan2(n_y, n_x) = yaw`` and ``atan2(n_z, n_x) = roll`` (LPS, pointing left)."""
    n = np.array([1.0, math.tan(math.radians(yaw_deg)), math.tan(math.radians(roll_deg))])
    return n / np.linalg.norm(n)


def _row_direction(grid: Grid) -> np.ndarray:
    """The grid's i axis (DICOM row direction) as a unit vector pointing to the patient's left (+x)."""
    n = grid.direction_matrix[:, 0].astype(np.float64)
    if abs(n[0]) < math.cos(math.radians(45)):
        n = np.array([1.0, 0.0, 0.0])  # not an axial-like grid: the row direction is not left-right
    return n if n[0] > 0 else -n


def _initial_plane(head: CoarseHead, full_grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """Centroid (LPS mm) of the filled skull and the row-direction normal."""
    region = head.skull_filled if head.skull_filled.any() else head.head
    if not region.any():
        region = np.ones(head.grid.shape, bool)
    centre_kji = np.argwhere(region).mean(axis=0)
    return head.grid.index_to_world(centre_kji[::-1]), _row_direction(full_grid)


def centroid_plane(vol: CTVolume, device: "str | torch.device | None" = None, *,
                   skull_choice: str = "enclosing", head: CoarseHead | None = None) -> MidsagittalPlane:
    """The published deterministic plane (centroid + row direction), without symmetry refinement.

    ``skull_choice="largest"`` is the paper's rule verbatim (largest bright component); the default picks the
    component enclosing brain tissue.
    """
    head = head if head is not None else analyse_head(vol, device, skull_choice=skull_choice)
    point, normal = _initial_plane(head, vol.grid)
    return MidsagittalPlane(tuple(float(v) for v in point), tuple(float(v) for v in normal),
                            method=f"centroid({head.skull_choice})")


def _feature_image(head: CoarseHead) -> np.ndarray:
    """Soft tissue ≈0.3, bone up to 1.0, zero outside the (slightly grown) head; lightly smoothed."""
    hu = head.mean_hu
    f = 0.3 * np.clip((hu + 300.0) / 300.0, 0, 1) + 0.7 * np.clip(hu / 1000.0, 0, 1)
    f = f * ndimage.binary_dilation(head.head, iterations=2)
    return ndimage.gaussian_filter(f.astype(np.float32), 0.7)


class _SymmetryScorer:
    """Normalised correlation between the feature image and its reflection about candidate planes."""

    def __init__(self, feature: np.ndarray, grid: Grid, sample_mask: np.ndarray, device: torch.device):
        self.device = device
        self.image = torch.as_tensor(feature, device=device)[None, None]
        kji = np.argwhere(sample_mask)
        if len(kji) > MAX_SAMPLES:
            kji = kji[np.random.default_rng(0).choice(len(kji), MAX_SAMPLES, replace=False)]
        self.points = torch.as_tensor(grid.kji_to_world(kji), dtype=torch.float32, device=device)
        self.values = torch.as_tensor(feature[tuple(kji.T)], dtype=torch.float32, device=device)
        m = grid.direction_matrix * np.asarray(grid.spacing)[None, :]
        self.world_to_index = torch.as_tensor(np.linalg.inv(m), dtype=torch.float32, device=device)
        self.origin = torch.as_tensor(grid.origin, dtype=torch.float32, device=device)
        self.size = torch.as_tensor([grid.shape[2], grid.shape[1], grid.shape[0]], dtype=torch.float32,
                                    device=device)

    def score(self, normals: np.ndarray, points: np.ndarray, samples: int = MAX_SAMPLES) -> np.ndarray:
        """NCC for each plane ``(normals[b], points[b])`` (LPS) over the first ``samples`` points; ``(B,)``."""
        world, values = self.points[:samples], self.values[:samples]
        values = (values - values.mean()) / values.std(unbiased=False).clamp_min(1e-6)
        out = []
        for b0 in range(0, len(normals), BATCH):
            n = torch.as_tensor(normals[b0:b0 + BATCH], dtype=torch.float32, device=self.device)
            q = torch.as_tensor(points[b0:b0 + BATCH], dtype=torch.float32, device=self.device)
            dist = (world[None] - q[:, None]) @ n[:, :, None]                   # (B, N, 1)
            mirrored = world[None] - 2.0 * dist * n[:, None, :]                 # (B, N, 3)
            index = (mirrored - self.origin) @ self.world_to_index.T            # (i, j, k)
            coords = index * (2.0 / (self.size - 1).clamp_min(1)) - 1.0
            sampled = F.grid_sample(self.image.expand(len(n), -1, -1, -1, -1), coords[:, :, None, None, :],
                                    mode="bilinear", padding_mode="zeros", align_corners=True)[:, 0, :, 0, 0]
            sampled = sampled - sampled.mean(dim=1, keepdim=True)
            ncc = (sampled * values[None]).mean(dim=1) / sampled.std(dim=1, unbiased=False).clamp_min(1e-6)
            out.append(ncc.cpu().numpy())
        return np.concatenate(out)


def _search(scorer: _SymmetryScorer, centre: np.ndarray, start: tuple[float, float, float]
            ) -> tuple[tuple[float, float, float], float]:
    """Coarse-to-fine grid search over (yaw °, roll °, offset mm); returns the best and its NCC."""
    best = start
    best_score = -math.inf
    for angle_step, offset_step, (ny, nr, no), samples in SEARCH_STAGES:
        yaws = best[0] + angle_step * np.arange(-ny, ny + 1)
        rolls = best[1] + angle_step * np.arange(-nr, nr + 1)
        offsets = best[2] + offset_step * np.arange(-no, no + 1)
        cand = np.array(np.meshgrid(yaws, rolls, offsets, indexing="ij")).reshape(3, -1).T
        normals = np.stack([plane_normal(y, r) for y, r, _ in cand])
        points = centre[None] + cand[:, 2:3] * normals
        scores = scorer.score(normals, points, samples)
        top = int(np.argmax(scores))
        best, best_score = tuple(float(v) for v in cand[top]), float(scores[top])
    return best, best_score


def midsagittal_plane(vol: CTVolume, device: "str | torch.device | None" = None,
                      head: CoarseHead | None = None) -> MidsagittalPlane:
    """The plane between the hemispheres of ``vol`` (axial LPS grid), normal pointing to the patient's left.

    ``details`` holds the initial (centroid) plane, the symmetry scores (normalised correlation, 1 = perfect
    mirror image) before and after refinement, the skull choice and the coarse voxel size used. ``head``: the
    coarse head analysis of ``vol`` when already made (`head.analyse_head`).
    """
    dev = resolve_device(device)
    head = head if head is not None else analyse_head(vol, dev)
    centre, normal0 = _initial_plane(head, vol.grid)
    yaw0 = math.degrees(math.atan2(normal0[1], normal0[0]))
    roll0 = math.degrees(math.atan2(normal0[2], normal0[0]))
    details: dict = {"initial_plane": {"point_lps_mm": [float(v) for v in centre],
                                       "normal_lps": [float(v) for v in normal0]},
                     "skull_choice": head.skull_choice,
                     "coarse_spacing_mm": [float(v) for v in head.grid.spacing]}
    if not head.head.any():
        details["warning"] = "no head found; the plane is the volume's centre with the row direction"
        return MidsagittalPlane(tuple(float(v) for v in centre), tuple(float(v) for v in normal0),
                                "centroid", details)
    feature = _feature_image(head)
    edges = ndimage.gaussian_gradient_magnitude(feature, 1.0) > 0.02  # uniform brain and air carry no signal
    scorer = _SymmetryScorer(feature, head.grid, ndimage.binary_dilation(head.head, iterations=2) & edges, dev)
    initial_score = float(scorer.score(normal0[None], centre[None])[0])
    (yaw, roll, offset), score = _search(scorer, centre, (yaw0, roll0, 0.0))
    normal = plane_normal(yaw, roll)
    point = centre + offset * normal
    details.update({"initial_symmetry_score": initial_score, "symmetry_score": score, "yaw_deg": yaw,
                    "roll_deg": roll, "offset_from_centroid_mm": offset})
    if score < 0.5:
        details["warning"] = f"weak left-right symmetry (score {score:.2f}); check the hemisphere split"
    return MidsagittalPlane(tuple(float(v) for v in point), tuple(float(v) for v in normal),
                            "centroid+symmetry", details)
