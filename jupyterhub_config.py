"""pangeohub's hub configuration (one machine).

Loads jupyterhub_config.d/*.py in name order (the one-machine defaults), then the admin's
file named by $PANGEOHUB_CONFIG (if set), then pangeohub's one entry point, which wires
every part on the merged configuration and refuses what it cannot honour.
Run: jupyterhub -f jupyterhub_config.py
"""

import os
from pathlib import Path

import pangeohub

here = Path(__file__).resolve().parent
for part in sorted((here / "jupyterhub_config.d").glob("*.py")):
    load_subconfig(str(part))  # noqa: F821 (provided by traitlets)

override = os.environ.get("PANGEOHUB_CONFIG")
if override:
    if not Path(override).is_file():
        raise SystemExit(f"PANGEOHUB_CONFIG={override} is not a file; fix the path or unset it.")
    load_subconfig(str(Path(override).resolve()))  # noqa: F821

pangeohub.configure(c)  # noqa: F821
