"""DICOM UIDs: validation, deterministic derivation and path-safe folder names.

Output trees are named by UIDs only, never by patient names or other header text. A UID read
from a file is untrusted text: :func:`safe_uid_name` keeps it only when it is made of digits and
dots (at most 64 characters), otherwise it replaces it by a hash, so no header value can put a
separator, ``..`` or a name into a path.
"""

from __future__ import annotations

import hashlib
import re
from os import PathLike
from pathlib import Path

from pydicom.uid import generate_uid

__all__ = ["MAX_UID_LENGTH", "derived_uid", "is_lenient_uid", "is_valid_uid", "safe_uid_name", "uid_path"]

#: Longest UID the standard allows (PS3.5 9.1).
MAX_UID_LENGTH = 64
#: A UID as the standard writes it: digit components without leading zeros, separated by dots.
_STRICT_UID = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
#: What may name a folder or a DICOMweb resource: digits and dots only (leading zeros tolerated).
_PATH_SAFE_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
#: Project prefix of the UIDs PilletGAN derives (pydicom's root, open to every pydicom user).
_DERIVED_PREFIX = "1.2.826.0.1.3680043.8.498."


def is_valid_uid(uid: object) -> bool:
    """Whether ``uid`` is a UID the standard accepts (digits and dots, no leading zeros, <= 64 chars)."""
    return isinstance(uid, str) and len(uid) <= MAX_UID_LENGTH and _STRICT_UID.match(uid) is not None


def is_lenient_uid(uid: object) -> bool:
    """Whether ``uid`` is digits and dots, at most 64 characters: a UID with leading zeros tolerated, as
    ``dicomweb-client`` requires one before it builds a request, and as folder names may use it."""
    return isinstance(uid, str) and len(uid) <= MAX_UID_LENGTH and _PATH_SAFE_UID.match(uid) is not None


def safe_uid_name(uid: object) -> str:
    """A file-system-safe name for ``uid``: the UID itself when it is digits and dots (<= 64 chars),
    otherwise ``h`` followed by 40 hex digits of its SHA-256 (same input, same name)."""
    text = "" if uid is None else str(uid).strip(" \x00")
    if is_lenient_uid(text):
        return text
    return "h" + hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:40]


def uid_path(root: str | PathLike, *uids: object) -> Path:
    """``root / safe_uid_name(uid1) / safe_uid_name(uid2) / ...``: an output folder named by UIDs only."""
    return Path(root).joinpath(*(safe_uid_name(uid) for uid in uids))


def derived_uid(*parts: str) -> str:
    """A UID determined by ``parts`` (the same parts always give the same UID, different parts differ)."""
    return str(generate_uid(prefix=_DERIVED_PREFIX, entropy_srcs=["PilletGAN", *(str(p) for p in parts)]))
