"""`Phantom`: a generated head CT with its exact truth, the truth document written to ``truth.json`` and the sparse
plaque-only rendering; shared by the classic generator (`generate`) and the randomised families (`randomised`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..core.landmarks import Landmark
from .anatomy import AnatomySpec
from .dicom_stack import Acquisition
from .plaques import BLOOD_HU, Plaque
from .truth import truth_summary

if TYPE_CHECKING:
    from ..io.volume import CTVolume
    from .dicom_stack import DicomStack


@dataclass
class Phantom:
    """A synthetic head CT with exact ground truth (see module `iacseg.phantom`)."""

    ct: "CTVolume"                   # HU float32 on the output grid (tilted: the tilt-corrected grid)
    labels: np.ndarray               # uint8 [k, j, i] 0..8 on ct.grid
    landmarks: dict[str, Landmark]   # the six, true plane heights (world z, LPS mm)
    truth: dict                      # everything written to truth.json
    dicom: "DicomStack | None"       # a tilted acquisition, or (families) one with missing slices
    aux: dict = field(default_factory=dict)   # sparse plaque-only rendering (plaque_only_index/_hu, blood_hu)


def truth_document(seed, im, anat: AnatomySpec, plaques: list[Plaque], acq: Acquisition, labels, excess, pid, hu,
                    landmarks, tilt_deg, blood_hu: float | None = None) -> dict:
    pose = anat.pose
    blood = BLOOD_HU if blood_hu is None else blood_hu
    records, seg_vol = truth_summary(labels, excess, pid, hu, plaques, acq.grid, pose.to_world, blood)
    options = {k: im[k] for k in ("thickness_mm", "spacing_mm", "fov_mm", "matrix", "noise_hu", "head_rest",
                                  "n_plaques", "coverage_mm", "tilt_deg", "padding_value")}
    return {
        "description": "synthetic phantom: analytic head CT with exact ground truth (not patient data)",
        "generator": "iacseg.phantom", "seed": int(seed), "options": options,
        "pose": pose.to_dict(),
        "landmarks": {n: {"z_mm": lm.z_mm, "slice": lm.slice, "position": list(lm.position)}
                      for n, lm in landmarks.items()},
        "landmark_slice_convention": "slice = ceil((z - z0)/dz): first slice whose plane (at the landmark's x, y) "
                                     "is at/above the landmark plane",
        "midsagittal_plane": {"point_lps_mm": [float(v) for v in pose.translation],
                              "normal_lps": [float(v) for v in pose.rotation[:, 0]]},
        "plaques": records, "segment_volumes_mm3": seg_vol, "total_volume_mm3": float(sum(seg_vol.values())),
        "grid": acq.grid.to_dict(), "slice_thickness_mm": im["thickness_mm"], "slice_spacing_mm": im["spacing_mm"],
        "gantry_tilt_deg": float(tilt_deg),
        "tilt_convention": "row=(1,0,0), col=(0,cos t,sin t), IPP_k = IPP_0 + k*dz*(0,0,1); truth on the corrected grid",
        "noise_hu": im["noise_hu"], "head_rest": im["head_rest"],
        "truth_convention": "plaque-only noise-free rendering (partial volume + slice profile) >= 130 HU, "
                            "26-connected single voxels removed; label = side x height vs true landmarks",
    }


def plaque_only(excess: np.ndarray, blood_hu: float) -> dict:
    """Sparse plaque-only (noise-free, kernel-filtered) rendering: flat indices and HU where excess > 1 HU."""
    flat = np.flatnonzero(excess.reshape(-1) > 1.0)
    return {"plaque_only_index": flat, "plaque_only_hu": (blood_hu + excess.reshape(-1)[flat]).astype(np.float32),
            "blood_hu": float(blood_hu)}
