"""Reading CT into `CTVolume` (DICOM folder, NIfTI, NRRD, MHA) and writing images."""

from .volume import CTVolume, Grid, array_to_sitk, grid_from_sitk

__all__ = ["CTVolume", "Grid", "array_to_sitk", "grid_from_sitk"]
