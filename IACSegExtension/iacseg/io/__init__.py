"""Reading CT into `CTVolume` (DICOM folder, NIfTI, NRRD, MHA) and writing images."""

from .dicom_write import write_ct_series
from .read import read_ct
from .volume import CTVolume, array_to_sitk, grid_from_sitk

__all__ = ["CTVolume", "array_to_sitk", "grid_from_sitk", "read_ct", "write_ct_series"]
