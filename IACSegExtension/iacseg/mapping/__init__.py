"""mapping stage: calcification mask × midsagittal plane × landmark planes → 8 ICA segment labels."""

from .segments import check_landmark_order, relabel, segment_labels, voxel_segment_labels
from .sparse import flat_nonzero, nonzero_kji

__all__ = ["check_landmark_order", "flat_nonzero", "nonzero_kji", "relabel", "segment_labels",
           "voxel_segment_labels"]
