"""`LandmarkLocaliser`: the DST applied to an axial LPS CT → the six landmark planes.

Input preparation (stored in the model config under ``"input"``; training uses the same functions):
a square in-plane view ``fov_mm`` wide resampled to ``size``×``size`` pixels, centred on the midsagittal
plane point and rotated with the plane normal (columns run to the patient's left); **every native slice is
kept** (no z resampling, as the paper insists); HU windows → channels. When there are more slices than the
model's ``max_slices`` (L), the L-slice window centred on the band with the most dense bone (skull base) is used
and indices are offset back.

Slice convention (docs/DESIGN.md, "Contracts"): target k* = ceil((z − z0)/sk), the first slice at/above the plane; a
predicted index k maps back to the plane height z = z0 + (k − 0.5)·sk.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..core.anatomy import landmark_point
from ..core.plane import MidsagittalPlane
from ..core.contracts import LANDMARKS
from ..io.volume import CTVolume
from ..core.landmarks import Landmark
from ..core.progress import Progress, no_progress
from .networks.dst import decode_slices
from .landmark_decode import candidate_range, decode_landmarks, network_log_likelihood
from .inputs import axial_view_indices, sample_axial_view, window_channels
from .loaded import LoadedModel

if TYPE_CHECKING:  # type hints only
    from ..preprocess.landmark_prior import LandmarkPrior

#: The bone prior is never trusted more than this (mm) when decoding: anatomy varies more than its fit says.
PRIOR_MIN_SIGMA_MM = 5.0

DEFAULT_LOCALISER_INPUT: dict[str, Any] = {
    "windows_hu": [[-150.0, 250.0], [100.0, 2100.0]],
    "fov_mm": 160.0,
    "size": 128,
    "dense_bone_hu": 700.0,
    "bone_band_mm": 60.0,
    "slices": "all native slices, ordered inferior → superior; no z resampling",
}


def landmark_target_slice(z_mm: float, z0: float, sk: float) -> int:
    """Target slice k* = ceil((z − z0)/sk): the first slice whose centre is at/above the plane (may be out of range)."""
    return int(math.ceil((z_mm - z0) / sk - 1e-6))


def slice_to_plane_z(k: float, z0: float, sk: float) -> float:
    """Plane height (LPS mm) of a predicted slice index k: z0 + (k − 0.5)·sk."""
    return float(z0 + (k - 0.5) * sk)


def axial_view_hu(vol: CTVolume, plane: MidsagittalPlane, input_cfg: dict[str, Any],
                  device: torch.device | str | None = None) -> torch.Tensor:
    """HU ``[D, size, size]`` of every slice of ``vol`` (axial LPS) in the plane-centred in-plane view."""
    size, fov = int(input_cfg["size"]), float(input_cfg["fov_mm"])
    idx = axial_view_indices(vol.grid, plane.point[:2], plane.normal[:2], fov, size)
    pool = max(1, int((fov / size) / min(vol.grid.spacing[0], vol.grid.spacing[1]) + 1e-6))
    hu = torch.from_numpy(np.ascontiguousarray(vol.hu, dtype=np.float32)).to(device or "cpu")
    return sample_axial_view(hu, idx, pool=pool)


def skull_base_window(view_hu: torch.Tensor, sk: float, max_slices: int, input_cfg: dict[str, Any]) -> int:
    """First slice of the ``max_slices`` window centred on the band (``bone_band_mm``) with most dense bone."""
    D = view_hu.shape[0]
    if D <= max_slices:
        return 0
    dense = (view_hu >= float(input_cfg["dense_bone_hu"])).float().sum(dim=(1, 2)).cpu().numpy()
    band = max(1, int(round(float(input_cfg["bone_band_mm"]) / sk)))
    smooth = np.convolve(dense, np.ones(band) / band, mode="same")
    centre = int(np.argmax(smooth))
    return int(min(max(0, centre - max_slices // 2), D - max_slices))


def localiser_input(vol: CTVolume, plane: MidsagittalPlane, input_cfg: dict[str, Any], max_slices: int,
                    device: torch.device | str | None = None) -> tuple[torch.Tensor, int]:
    """``(HU view [D', size, size], k_offset)`` with D' ≤ max_slices; slice d of the view is CT slice d + k_offset."""
    view = axial_view_hu(vol, plane, input_cfg, device)
    start = skull_base_window(view, vol.grid.spacing[2], max_slices, input_cfg)
    return view[start:start + max_slices], start


class LandmarkLocaliser(LoadedModel):
    """Six landmark planes from a DST model folder (kind "landmarks")."""

    kind = "landmarks"
    default_input = DEFAULT_LOCALISER_INPUT

    def __init__(self, module: torch.nn.Module, config: dict[str, Any], device: torch.device | str | None = None):
        super().__init__(module, config, device)
        self.names: list[str] = list(config.get("landmarks", LANDMARKS))

    def predict(self, vol: CTVolume, plane: MidsagittalPlane, progress: Progress = no_progress,
                prior: "LandmarkPrior | None" = None) -> dict[str, Landmark]:
        """``{name: Landmark}`` for ``vol`` (axial LPS), always in anatomical order on each side.

        The network's six slice distributions are decoded jointly under the anatomy (`landmark_decode`) with the
        bone ``prior`` (`iacseg.preprocess.landmark_prior`) when given. ``Landmark.slice`` = decoded k on
        ``vol.grid`` (may lie outside the scan for a partial scan), ``z_mm`` = z0 + (k − 0.5)·sk, ``position`` =
        where that landmark typically lies in the plane's frame at that height (the network gives heights only;
        `iacseg.core.anatomy.landmark_point`), ``confidence`` = posterior mass within ±1 slice. ``extra``:
        ``expected_slice``, ``network_slice`` / ``network_confidence`` (the network alone: its argmax and its mass
        within ±1 slice of the decoded slice), ``prior_z_mm`` / ``prior_sigma_mm``, ``source`` (network | anatomy |
        prior) and ``in_scan``."""
        progress("landmarks", 0.0, "preparing slices")
        L = int(self.module.max_slices)
        view, offset = localiser_input(vol, plane, self.input_cfg, L, self.device)
        x = window_channels(view, self.input_cfg["windows_hu"])
        progress("landmarks", 0.3, f"{view.shape[0]} slices through the depth-sequence transformer")
        sk = float(vol.grid.spacing[2])
        with torch.inference_mode():
            logits, _ = self.module([x], torch.tensor([sk], device=self.device))
            dec = decode_slices(logits, torch.tensor([view.shape[0]], device=self.device))
        D_view = int(view.shape[0])
        prob = dec["prob"][0, L - D_view:, :].double().cpu().numpy()  # [D', 6] over the view's slices
        progress("landmarks", 0.7, "decoding the six landmarks under the anatomy")
        n_slices = int(vol.grid.shape[0])
        k_first, K = candidate_range(n_slices, sk)
        log_lik = {name: network_log_likelihood(prob[:, c], offset, k_first, K) for c, name in enumerate(self.names)}
        gaussians = bounds = None
        if prior is not None:
            gaussians = {n: (z, max(s, PRIOR_MIN_SIGMA_MM)) for n, (z, s) in prior.as_gaussians().items()}
            bounds = prior.bounds
        _, roll = plane.yaw_roll_deg()
        z0 = float(vol.grid.origin[2])
        result = decode_landmarks(log_lik, k_first, n_slices, z0, sk, roll_deg=roll, prior=gaussians, bounds=bounds)
        out: dict[str, Landmark] = {}
        for c, name in enumerate(self.names):
            r = result.landmarks[name]
            net_k = int(np.argmax(prob[:, c])) + offset
            near = prob[max(0, r.slice - 1 - offset):max(0, r.slice + 2 - offset), c]
            net_conf = float(near.sum()) if r.slice + 1 >= offset else 0.0
            if abs(r.slice - net_k) <= 1:
                source = "network"
            elif prior is not None and (name in prior.z_mm or name in prior.bounds) and net_conf < 0.05:
                source = "prior"
            else:
                source = "anatomy"
            pos = landmark_point(plane, name, r.z_mm)
            extra = {"expected_slice": r.expected_slice, "network_slice": float(net_k),
                     "network_confidence": net_conf, "source": source, "in_scan": r.in_scan}
            if prior is not None and name in prior.z_mm:
                extra.update(prior_z_mm=prior.z_mm[name], prior_sigma_mm=prior.sigma_mm[name])
            out[name] = Landmark(name, r.z_mm, (float(pos[0]), float(pos[1]), float(pos[2])), slice=float(r.slice),
                                 confidence=r.confidence, extra=extra)
        progress("landmarks", 1.0, "landmarks placed")
        return out
