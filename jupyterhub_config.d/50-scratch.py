"""Scratch: a prefix per user; on one machine, a directory per user in the state directory.

For a bucket, set in your admin file (docs/scratch.md), e.g.:

    c.ScratchService.backend = "s3"
    c.S3ScratchBackend.bucket = "my-hub-scratch"
    c.S3ScratchBackend.role_arn = "arn:aws:iam::123456789012:role/my-hub-scratch-user"
"""

c = get_config()  # noqa: F821

c.ScratchService.backend = "local"
c.ScratchBackend.expiry_days = 7
