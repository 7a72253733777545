"""Preprocessing (torch, on the chosen device): orientation to axial LPS, resampling, intensity windows,
head and skull masks, the midsagittal plane, the landmark prior, the ICA region of interest and where an
ICA can be within it."""

from .corridor import outside_ica_corridor
from .head import analyse_head, head_mask, skull_mask
from .hemisphere import centroid_plane, midsagittal_plane
from .landmark_prior import LandmarkPrior, landmark_prior
from .intensity import DEFAULT_WINDOWS, intensity_channels
from .orient import axial_grid_covering, resample_box, resample_to_grid, to_axial_lps
from .roi import ICARegion, ica_region, ica_region_box, roi_box_mm, skull_base_z

__all__ = [
    "to_axial_lps", "resample_to_grid", "resample_box", "axial_grid_covering", "head_mask",
    "skull_mask", "analyse_head", "midsagittal_plane", "centroid_plane", "ica_region", "ica_region_box", "ICARegion",
    "roi_box_mm", "skull_base_z", "outside_ica_corridor", "LandmarkPrior", "landmark_prior", "intensity_channels", "DEFAULT_WINDOWS",
]
