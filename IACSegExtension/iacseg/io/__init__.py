"""Reading CT into `CTVolume` (DICOM folder, NIfTI, NRRD, MHA) and writing images."""

from .dicom_write import write_ct_series
from .read import read_ct
from .volume import CTVolume, Grid, array_to_sitk, grid_from_sitk

__all__ = ["CTVolume", "Grid", "array_to_sitk", "grid_from_sitk", "read_ct", "write_ct_series"]
