"""The networks (torch): ResEnc U-Net, the Depth-Sequence Transformer, GRCSF, the ViT family; `BUILDERS` maps each
architecture name of a model folder's ``config.json`` (`iacseg.models.folders.ARCHITECTURES`) to its builder."""

from __future__ import annotations

from typing import Any, Callable

from torch import nn

from .dst import build_dst
from .grcsf import build_grcsf
from .unet import build_unet, build_unet_encoder
from .vit.mae import build_mae
from .vit.segmenter_net import build_vit_segmenter

BUILDERS: dict[str, Callable[[dict[str, Any]], nn.Module]] = {
    "ResEncUNet": build_unet, "DepthSequenceTransformer": build_dst, "ResEncUNetEncoder": build_unet_encoder,
    "MAE3D": build_mae, "ViTSegmenter": build_vit_segmenter, "GRCSF": build_grcsf}
