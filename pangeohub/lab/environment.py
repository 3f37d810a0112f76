"""What every server's environment gets for the Lab's extensions."""

from __future__ import annotations

import os

from ..gateway.hub import GatewayService
from ..parts import hub_part
from .shared import SHARED_DIR_ENV, SharedData

# On every server's JUPYTER_PATH (the local spawner's; the user image copies it): JupyterLab
# finds pangeohub's labextension (the top bar's "where am I") under its labextensions/.
LAB_DATA_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "jupyter-data")


def lab_environment(spawner) -> dict[str, str]:
    """The Dask extension's Clusters panel makes Gateway clusters (dask-labextension-gateway
    reads ``labextension.use_gateway``), and the shared directory's path is announced."""
    env = {}
    if hub_part(GatewayService, spawner).enabled:
        env["DASK_LABEXTENSION__USE_GATEWAY"] = "True"
    shared = hub_part(SharedData, spawner)
    if shared.enabled:
        kubernetes = hasattr(spawner, "kube_profile_list")
        if not kubernetes:
            env[SHARED_DIR_ENV] = shared.path
        elif shared.kubernetes_volume:
            env[SHARED_DIR_ENV] = shared.mount_path
    return env
