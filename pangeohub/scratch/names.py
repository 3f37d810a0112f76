"""Names in storage paths: user names, buckets and prefixes, checked or safely escaped.

A user's prefix segment is the JupyterHub name itself when it is plainly safe
(lower-case letters, digits, ``.``, ``_``, ``-``; no ``..`` or ``---``; at most 63
characters). Any other name (``/``, ``..``, unicode, very long, ...) becomes its safe
characters plus ``---`` and a hash of the full name: still readable, never a path
trick, and never equal to another user's segment (plain names cannot contain ``---``).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

_PLAIN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
_UNSAFE = re.compile(r"[^a-z0-9._-]+")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_PREFIX_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
MAX_NAME = 1024


class UnsafeName(ValueError):
    """A name that cannot be used for a scratch prefix (message is user-facing)."""


def user_segment(name: str) -> str:
    """The path segment of ``name``'s scratch prefix (never contains ``/`` or ``..``)."""
    if not isinstance(name, str) or not name:
        raise UnsafeName("An empty user name has no scratch prefix.")
    if len(name) > MAX_NAME:
        raise UnsafeName(f"User names longer than {MAX_NAME} characters have no scratch prefix.")
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in name):
        raise UnsafeName("User names with control characters have no scratch prefix.")
    if _PLAIN.match(name) and ".." not in name and "---" not in name:
        return name
    readable = _UNSAFE.sub("-", name.lower())
    readable = re.sub(r"\.{2,}", ".", readable)
    readable = re.sub(r"-{2,}", "-", readable).strip(".-_")[:40].rstrip(".-_")
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:12]
    return f"{readable}---{digest}" if readable else f"u---{digest}"


def check_bucket(bucket: str) -> str:
    """``bucket`` if it is a valid S3/GCS bucket name, else :class:`ValueError`."""
    if not _BUCKET.match(bucket or "") or ".." in bucket:
        raise ValueError(
            f"Bucket name {bucket!r} is not valid: use 3-63 lower-case letters, digits, '.' or '-'."
        )
    return bucket


def check_prefix(prefix: str) -> str:
    """``prefix`` without surrounding ``/`` if every part is safe, else :class:`ValueError`."""
    parts = [p for p in (prefix or "").strip("/").split("/") if p]
    for part in parts:
        if not _PREFIX_PART.match(part) or ".." in part:
            raise ValueError(
                f"Scratch prefix {prefix!r} is not valid: use '/'-separated parts of letters, "
                "digits, '.', '_' or '-' (no '..')."
            )
    return "/".join(parts)
