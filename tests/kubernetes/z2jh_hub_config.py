"""The hub's configuration file in the Zero to JupyterHub end-to-end test.

It plays the chart's own ``jupyterhub_config.py`` (see :mod:`tests.kubernetes.z2jh_chart`):
everything else comes from the values files, the hub image's config.d and extraConfig.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.kubernetes.z2jh_chart import apply_from_environment  # noqa: E402

apply_from_environment(c)  # noqa: F821 (provided by traitlets)
