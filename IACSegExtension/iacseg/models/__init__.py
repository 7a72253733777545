"""models stage: the calcification segmenter (ResEnc U-Net), the landmark localiser (DST) and model folders.

Model folders hold ``model.safetensors`` + ``config.json`` + ``MODEL_CARD.md``; pickle weights are refused.
"""

from .localiser import LandmarkLocaliser
from .postprocess import calcium_mask
from .registry import (default_model_dir, find_models, load_model, load_state, resolve_model, save_model,
                       sha256_file)
from .segmenter import CalcificationSegmenter

__all__ = ["CalcificationSegmenter", "LandmarkLocaliser", "calcium_mask", "default_model_dir", "find_models",
           "load_model", "load_state", "resolve_model", "save_model", "sha256_file"]
