"""Batch segmentation of a cohort: `run_batch` (streamed, models loaded once), ``summary.csv`` (`summary`),
reading ahead and writing behind (`stream`), and sharding over ``torchrun`` ranks (`ranks`)."""

from .run import parse_shard, run_batch
from .summary import SUMMARY_FILE

__all__ = ["SUMMARY_FILE", "parse_shard", "run_batch"]
