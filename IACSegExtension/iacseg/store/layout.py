"""Where things live in a corrections store, and the ids that name them (see docs/STORE.md, "On-disk layout").

Every path inside a store is built here from a checked case id or reader slug, and checked again after
``resolve()`` to lie inside ``STORE/cases`` — so no id, symlink or ``..`` can lead a write outside the store.
Subject keys and splits are salted hashes: a patient key never appears in the store in the clear.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from pathlib import Path
from typing import Mapping

from ..core.errors import InputError

STORE_FORMAT = "iacseg-corrections-store"
STORE_FORMAT_VERSION = 1
STORE_FILE = "store.json"
LEDGER_FILE = "ledger.jsonl"
LOCK_FILE = ".lock"
CASES_DIR = "cases"
CASE_FILE = "case.json"
IMAGE_FILE = "image.nii.gz"
ORIGINAL_DIR = "original"
CORRECTIONS_DIR = "corrections"
EDITS_FILE = "edits.jsonl"
CORRECTION_FILE = "correction.json"
#: Prefix of the temporary folders a save fills before renaming them into place (never a valid id).
PARTIAL_PREFIX = ".partial-"

DEFAULT_SPLIT: dict[str, float] = {"train": 0.7, "val": 0.15, "test": 0.15}
SPLITS: tuple[str, ...] = ("train", "val", "test")

_CASE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_VERSION_DIR = re.compile(r"v(\d{3,})")
_SLUG_BAD = re.compile(r"[^A-Za-z0-9_-]")
MAX_SLUG = 40
MAX_READER = 200


def check_case_id(case_id: str) -> str:
    """``case_id`` unchanged when it is a valid case id (1–64 of ``A-Z a-z 0-9 _ -``, starting with a letter
    or digit); otherwise `InputError`. Refuses ``..``, ``a/b``, absolute paths, ``.x`` and the empty string."""
    if not isinstance(case_id, str) or _CASE_ID.fullmatch(case_id) is None:
        raise InputError(f"case id {case_id!r} is not allowed; use 1-64 letters, digits, '_' or '-', starting "
                         "with a letter or digit (no '/', '.', or spaces)")
    return case_id


def check_reader(reader: str) -> str:
    """The reader's name with surrounding spaces removed; `InputError` when empty, too long or not text."""
    name = reader.strip() if isinstance(reader, str) else ""
    if not name:
        raise InputError("a reader name is needed (e.g. 'Dr A'); it is recorded with every edit", parameter="reader")
    if len(name) > MAX_READER or any(ord(c) < 32 for c in name):
        raise InputError(f"reader name {name[:40]!r}… is too long or has control characters; use a short name",
                         parameter="reader")
    return name


def reader_slug(name: str) -> str:
    """Folder name for a reader: ``[^A-Za-z0-9_-]`` → ``_``, lowercased, at most 40 characters.

    `InputError` for an empty name. The ledger and ``correction.json`` keep the full name.
    """
    slug = _SLUG_BAD.sub("_", check_reader(name)).lower()[:MAX_SLUG]
    if not slug.strip("_"):
        raise InputError(f"reader name {name!r} has no letter or digit; use a name such as 'Dr A'")
    return slug


def new_case_id() -> str:
    """An opaque random case id, ``"c"`` + 11 hex digits (never derived from patient data)."""
    return "c" + secrets.token_hex(6)[:11]


def version_dir_name(version: int) -> str:
    """``v001``, ``v002``, … for correction ``version`` (1-based)."""
    return f"v{int(version):03d}"


def parse_version_dir(name: str) -> int | None:
    """The version number of a ``v###`` folder name, else ``None``."""
    m = _VERSION_DIR.fullmatch(name)
    return int(m.group(1)) if m else None


def _inside(path: Path, parent: Path) -> bool:
    try:
        path.relative_to(parent)
        return True
    except ValueError:
        return False


def cases_root(root: Path) -> Path:
    """``STORE/cases``."""
    return Path(root) / CASES_DIR


def case_dir(root: Path, case_id: str) -> Path:
    """``STORE/cases/<case_id>`` for a checked id; `InputError` if it resolves outside ``STORE/cases``
    (for instance a case folder that is a symbolic link to elsewhere)."""
    base = cases_root(root)
    path = base / check_case_id(case_id)
    if base.is_symlink():
        raise InputError(f"{base} is a symbolic link; the store's cases folder must be a real folder inside it")
    if not _inside(path.resolve(), base.resolve()) or path.resolve() == base.resolve():
        raise InputError(f"case {case_id!r} resolves outside the store's cases folder (a symbolic link?); "
                         "remove the link and add the case again")
    if path.is_symlink():
        raise InputError(f"case folder {path} is a symbolic link; the store only holds real folders")
    return path


def reader_dir(root: Path, case_id: str, slug: str) -> Path:
    """``STORE/cases/<id>/corrections/<slug>`` (checked to stay inside the case folder)."""
    base = case_dir(root, case_id)
    if _SLUG_BAD.search(slug) or not slug or len(slug) > MAX_SLUG:
        raise InputError(f"reader folder {slug!r} is not a valid reader slug")
    path = base / CORRECTIONS_DIR / slug
    if not _inside(path.resolve(), base.resolve()) or path.is_symlink():
        raise InputError(f"the corrections folder of case {case_id!r} resolves outside the case (a symbolic link?)")
    return path


def correction_dir(root: Path, case_id: str, slug: str, version: int) -> Path:
    """``STORE/cases/<id>/corrections/<slug>/v###`` (checked to stay inside the case folder)."""
    base = case_dir(root, case_id)
    path = reader_dir(root, case_id, slug) / version_dir_name(version)
    if not _inside(path.resolve(), base.resolve()):
        raise InputError(f"correction folder of case {case_id!r} resolves outside the case (a symbolic link?)")
    return path


def relative(root: Path, path: Path) -> str:
    """``path`` relative to the store root, with '/' separators (the form the ledger records)."""
    return Path(path).relative_to(root).as_posix()


def _sha_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def subject_hash(salt: str, key: str) -> str:
    """The stored subject of a patient key (a DICOM PatientID, a ``--subject`` key or a case id):
    ``sha256(salt + key)[:16]`` — the key itself is never stored."""
    return _sha_hex(salt + str(key))[:16]


def check_split(split: Mapping[str, float] | None) -> dict[str, float]:
    """Split fractions ``{"train", "val", "test"}`` (non-negative, summing to 1); `InputError` otherwise."""
    fractions = dict(DEFAULT_SPLIT if split is None else split)
    if set(fractions) != set(SPLITS) or any(not 0.0 <= float(v) <= 1.0 for v in fractions.values()) \
            or abs(sum(float(v) for v in fractions.values()) - 1.0) > 1e-6:
        raise InputError(f"split {fractions} must give train, val and test fractions between 0 and 1 summing to 1")
    return {k: float(fractions[k]) for k in SPLITS}


def split_of_subject(salt: str, subject: str, fractions: Mapping[str, float]) -> str:
    """``"train"``, ``"val"`` or ``"test"`` for a stored subject: ``u = sha256(salt + ":split:" + subject)``'s
    first 8 hex digits / 2³²; fixed forever (adding cases never moves one)."""
    u = int(_sha_hex(salt + ":split:" + subject)[:8], 16) / 2 ** 32
    if u < fractions["train"]:
        return "train"
    if u < fractions["train"] + fractions["val"]:
        return "val"
    return "test"
