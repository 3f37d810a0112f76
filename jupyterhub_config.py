"""pangeohub's hub configuration.

Loads jupyterhub_config.d/*.py in name order, then the admin's override file named
by $PANGEOHUB_CONFIG (if set), so an admin can change anything without editing the
bundle. Run: jupyterhub -f jupyterhub_config.py
"""

import os
from pathlib import Path

here = Path(__file__).resolve().parent
for part in sorted((here / "jupyterhub_config.d").glob("*.py")):
    load_subconfig(str(part))  # noqa: F821 (provided by traitlets)

override = os.environ.get("PANGEOHUB_CONFIG")
if override:
    if not Path(override).is_file():
        raise SystemExit(f"PANGEOHUB_CONFIG={override} is not a file; fix the path or unset it.")
    load_subconfig(str(Path(override).resolve()))  # noqa: F821

# Wire what depends on final settings; refuse a configuration pangeohub cannot honour.
from pangeohub.startup import finalize_configuration  # noqa: E402

finalize_configuration(c)  # noqa: F821
