"""models stage: the calcification segmenter (ResEnc U-Net), the landmark localiser (DST) and model folders.

A user's trained nnU-Net v2 model can stand in for the segmenter (`NnUNetSegmenter`, ``--model nnunet:PATH``).

Model folders hold ``model.safetensors`` + ``config.json`` + ``MODEL_CARD.md``; pickle weights are refused.
"""

from .localiser import LandmarkLocaliser
from .nnunet_adapter import NnUNetSegmenter, is_nnunet_spec
from .postprocess import calcium_mask
from .registry import (default_model_dir, find_models, load_model, load_state, resolve_model, save_model,
                       sha256_file)
from .segmenter import CalcificationSegmenter

__all__ = ["CalcificationSegmenter", "LandmarkLocaliser", "NnUNetSegmenter", "calcium_mask", "default_model_dir",
           "find_models", "is_nnunet_spec", "load_model", "load_state", "resolve_model", "save_model", "sha256_file"]
