"""Corrections store: readers' corrections kept safely (atomic writes, a file lock, a hash-chained ledger),
de-identified, never overwritten, with fixed patient-level splits for training (see docs/STORE.md)."""

from .cases import STATUSES, CaseInfo
from .store import CorrectionStore
from .verify import VerifyReport

__all__ = ["STATUSES", "CaseInfo", "CorrectionStore", "VerifyReport"]
