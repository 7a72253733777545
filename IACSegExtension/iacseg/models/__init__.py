"""models stage: model folders and the networks that run on a CT.

* `folders` — torch-free: the model-folder format, the search path, ``config.json`` checks, listing (the Slicer
  module uses it too); `defaults` — torch-free: which model is used when none is named (promoted or shipped);
  `output_folder` — where a new model folder may be written.
* `networks` — the architectures (ResEnc U-Net, DST, GRCSF, ViT family); `loading` — the one check of a folder
  before use, building and loading networks (safetensors only, never pickle), saving; `promote`.
* inference — `segmenter` (`CalcificationSegmenter`), `localiser` (`LandmarkLocaliser`) with `landmark_decode`,
  `nnunet_adapter` (a user's nnU-Net v2 model as the segmenter), `sliding`, `inputs`, `postprocess`.

Nothing is imported here, so ``import iacseg.models.folders`` does not load torch.
"""
