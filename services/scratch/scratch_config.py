"""Scratch storage settings, read by the scratch service and by the hub's spawner hook.

The default (for `make run`) is a directory per user on this machine. For a bucket, set
$PANGEOHUB_SCRATCH_CONFIG to a file like the examples in docs/scratch.md, e.g.:

    c.ScratchService.backend = "s3"
    c.S3ScratchBackend.bucket = "my-hub-scratch"
    c.S3ScratchBackend.role_arn = "arn:aws:iam::123456789012:role/my-hub-scratch-user"
"""

import os
from pathlib import Path

c = get_config()  # noqa: F821

c.ScratchService.backend = "local"
c.ScratchBackend.expiry_days = 7

override = os.environ.get("PANGEOHUB_SCRATCH_CONFIG")
if override:
    if not Path(override).is_file():
        raise SystemExit(f"PANGEOHUB_SCRATCH_CONFIG={override} is not a file; fix or unset it.")
    load_subconfig(str(Path(override).resolve()))  # noqa: F821
