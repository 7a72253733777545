"""`CalcificationSegmenter`: a trained ResEnc U-Net applied to the ICA region of an axial LPS CT.

The network runs on the CT's own grid (no resampling, so the ≥ 130 HU rule and the truth share voxels),
on HU intensity windows stored in the model config, by gated sliding windows over the region of interest.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from ..core.contracts import CALCIUM_HU
from ..io.volume import CTVolume
from ..core.progress import Progress, no_progress
from ..core.threshold import model_threshold
from .inputs import window_channels
from .loaded import LoadedModel
from .sliding import sliding_window_proba

#: Input preparation of new segmenters (stored in their config; a loaded model uses its own).
DEFAULT_SEGMENTER_INPUT: dict[str, Any] = {
    "windows_hu": [[-100.0, 300.0], [0.0, 1600.0]],
    "patch_size_kji": [48, 96, 96],
    "context_margin_kji": [2, 8, 8],
    "overlap": 0.2,
    "gate_min_hu": CALCIUM_HU,
    "grid": "native axial LPS grid of the CT (no resampling); slices 0.5–5 mm seen in training",
}


def expand_box(box: Sequence[slice], margin: Sequence[int], shape: Sequence[int]) -> tuple[slice, slice, slice]:
    """``box`` (k, j, i slices) grown by ``margin`` voxels per side, clipped to ``shape``."""
    out = []
    for s, m, n in zip(box, margin, shape):
        start, stop, _ = s.indices(n)
        out.append(slice(max(0, start - m), min(n, stop + m)))
    return (out[0], out[1], out[2])


def segmenter_input(hu: torch.Tensor, input_cfg: dict[str, Any]) -> torch.Tensor:
    """HU ``[D, H, W]`` → network input ``[C, D, H, W]`` (the same function is used in training)."""
    return window_channels(hu.float(), input_cfg["windows_hu"])


class CalcificationSegmenter(LoadedModel):
    """Calcification probability on an axial LPS CT, from a model folder (see `iacseg.models.folders`)."""

    kind = "segmenter"
    default_input = DEFAULT_SEGMENTER_INPUT

    @property
    def threshold(self) -> float:
        """Calibrated probability threshold (chosen on development data to minimise the volume difference)."""
        return model_threshold(self.config)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        out = self.module(x.to(self.device))
        return out[0] if isinstance(out, (list, tuple)) else out

    def predict_proba(self, vol: CTVolume, roi: tuple[slice, slice, slice] | None = None,
                      progress: Progress = no_progress) -> np.ndarray:
        """Float32 ``[k, j, i]`` calcification probability on ``vol.grid`` (axial LPS), 0 outside ``roi``.

        ``roi`` is a box of index slices (k, j, i) — the ICA region; None means the whole volume."""
        shape = vol.hu.shape
        roi = roi or (slice(0, shape[0]), slice(0, shape[1]), slice(0, shape[2]))
        roi = expand_box(roi, (0, 0, 0), shape)
        crop = expand_box(roi, self.input_cfg["context_margin_kji"], shape)
        out = np.zeros(shape, dtype=np.float32)
        if any(s.stop <= s.start for s in roi):
            return out
        hu = torch.from_numpy(np.ascontiguousarray(vol.hu[crop], dtype=np.float32)).to(self.device)
        gate = hu >= float(self.input_cfg["gate_min_hu"])
        if not bool(gate.any()):
            progress("segment", 1.0, "no voxel above the calcium threshold in the region")
            return out
        divisor = getattr(self.module, "divisor", (1, 1, 1))
        with torch.inference_mode():
            prob, stats = sliding_window_proba(
                segmenter_input(hu, self.input_cfg), self._logits, self.input_cfg["patch_size_kji"],
                overlap=float(self.input_cfg["overlap"]), gate=gate, batch=int(self.input_cfg.get("batch", 2)),
                divisor=divisor, pad_value=0.0, progress=progress)
        self.last_stats = stats
        full = prob.cpu().numpy()
        inner = tuple(slice(r.start - c.start, r.stop - c.start) for r, c in zip(roi, crop))
        out[roi] = full[inner]
        return out
