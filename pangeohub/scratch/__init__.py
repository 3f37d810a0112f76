"""Scratch buckets: a prefix per user and short-lived credentials that reach only that prefix.

- :mod:`.names`: user name -> safe prefix segment.
- :mod:`.base`, :mod:`.s3`, :mod:`.gcs`, :mod:`.local`: the storage backends.
- :mod:`.service`: the hub-managed credential service.
- :mod:`.hook`: the spawner environment hook (``PANGEO_SCRATCH`` and client configuration).
- :mod:`.cli`: ``pangeohub-scratch-credentials``, the ``credential_process`` command.
"""

from .base import BackendUnavailable, ScratchBackend, ScratchConfigError, backend_class
from .names import UnsafeName, user_segment

__all__ = [
    "BackendUnavailable",
    "ScratchBackend",
    "ScratchConfigError",
    "UnsafeName",
    "backend_class",
    "user_segment",
]
