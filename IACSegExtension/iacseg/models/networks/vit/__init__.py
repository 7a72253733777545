"""3D Vision Transformers for CT cubes: the ViTiac encoder (`ViTEncoder`, configurations `VIT_CONFIGS`), its
masked-autoencoder pre-training (`MAE3D`) and MAE residual maps (`residual_maps`, GRCSF's input)."""

from .encoder import (PATCH_SIZES, VIT_CONFIGS, EncoderOutput, ViTConfig, ViTEncoder, build_vit_encoder,
                      sincos_position_embedding_3d, token_grid, tokens_to_volume, vit_config, volume_to_tokens)
from .mae import (MAE3D, MAEDecoder, MAEOutput, build_mae, encoder_state, masked_cube_loss, patchify,
                  random_masking, residual_maps, unpatchify)

__all__ = ["PATCH_SIZES", "VIT_CONFIGS", "EncoderOutput", "ViTConfig", "ViTEncoder", "build_vit_encoder",
           "sincos_position_embedding_3d", "token_grid", "tokens_to_volume", "vit_config", "volume_to_tokens",
           "MAE3D", "MAEDecoder", "MAEOutput", "build_mae", "encoder_state", "masked_cube_loss", "patchify",
           "random_masking", "residual_maps", "unpatchify"]
