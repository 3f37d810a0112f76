"""pangeohub on Zero to JupyterHub.

The hub image (deploy/Dockerfile) puts this file in /usr/local/etc/jupyterhub/jupyterhub_config.d/,
which the chart's hub loads after the values' ``hub.config`` and before ``hub.extraConfig``.
It makes pangeohub's spawner and named-server rules the defaults; everything else (profiles,
limits, the authenticator) comes from ``hub.config`` in the values file.
"""

from pangeohub.policy import PangeoPolicy
from pangeohub.servers import NamedServerGate

c = get_config()  # noqa: F821

# The chart sets KubeSpawner; use pangeohub's subclass unless the values chose another.
if c.JupyterHub.spawner_class in ("kubespawner.KubeSpawner", "kubespawner", "kubernetes"):
    c.JupyterHub.spawner_class = "pangeohub.spawner.kubernetes.PangeoKubeSpawner"
if "allow_named_servers" not in c.JupyterHub:
    c.JupyterHub.allow_named_servers = True
# The named-server limit and name rule, per group (c.PangeoPolicy).
c.JupyterHub.named_server_limit_per_user = NamedServerGate()

# Refuse at start-up what pangeohub cannot honour (the log says why).
for section in ("KubeSpawner", "PangeoKubeSpawner"):
    template = c[section].get("pvc_name_template", "claim-{user_server}")
    if "{user_server}" not in template:
        raise SystemExit(
            f"pangeohub configuration error: {section}.pvc_name_template is {template!r}; "
            "it must contain {user_server} so that each server has its own disk "
            "(singleuser.storage.dynamic.pvcNameTemplate in the values)."
        )
try:
    PangeoPolicy(config=c).all_profiles()
except ValueError as error:
    raise SystemExit(f"pangeohub configuration error: {error}") from None
