"""Copied into every environment's site-packages (``_pangeohub_user_site.py``, run by a
``.pth`` file at each start of its Python): the person's user site (``pip install
--user``) is on the path even when it did not exist yet when Python started.

Python adds ``~/.local/lib/pythonX.Y/site-packages`` only if it exists at start-up, so a
package installed with ``--user`` into a new user site is not found by the kernel (or the
Dask workers) that installed it. In a server or a worker of an environment (the hub sets
``PANGEO_ENVIRONMENT``, workers get ``PYTHONUSERBASE``) the directory is made, as the
person, and put before the environment's packages, as it is in the pangeo-notebook image
(a virtual environment otherwise puts its own packages first). Standard library only: it
runs before anything else.
"""

import os
import site
import sys


def _add_user_site() -> None:
    if not (os.environ.get("PANGEO_ENVIRONMENT") or os.environ.get("PYTHONUSERBASE")):
        return
    enabled = site.ENABLE_USER_SITE
    if enabled is None:  # a virtual environment's .pth files run before Python decides
        enabled = site.check_enableusersite()
    if not enabled:
        return
    user_site = site.getusersitepackages()
    try:
        os.makedirs(user_site, exist_ok=True)
    except OSError:
        return
    if user_site not in sys.path:  # (Python itself then adds it, and runs its .pth files)
        ours = [i for i, p in enumerate(sys.path) if p.startswith(sys.prefix + os.sep)]
        sys.path.insert(ours[0] if ours else len(sys.path), user_site)


_add_user_site()
