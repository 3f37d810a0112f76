"""A launched environment named as an image (``uv-env:<path>``).

The hub reports a launched server's image to Dask Gateway, whose workers then run on that
environment's Python. Dask Gateway's process reads it here, without the hub's handlers or
database, which the rest of :mod:`pangeohub.binder` needs.
"""

from __future__ import annotations

import os
from pathlib import Path

from .seal import trusted_target

IMAGE_PREFIX = "uv-env:"  # a launched environment as an "image" (what Dask workers run)
META = "pangeohub-binder.json"  # what a finished environment says of itself


def python_of_image(image: str) -> str | None:
    """The Python of a launched environment named by ``image``, if it is a finished one."""
    if not isinstance(image, str) or not image.startswith(IMAGE_PREFIX):
        return None
    path = Path(image[len(IMAGE_PREFIX) :])
    python = path / "env" / "bin" / "python"
    if not path.is_absolute() or not trusted_target(str(python), {0, os.geteuid()}):
        return None  # only a sealed environment: no one but root (or the hub) changes it
    if not (path / META).is_file() or not python.exists():
        return None
    return str(python)
