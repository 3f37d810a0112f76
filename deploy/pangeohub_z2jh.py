"""pangeohub's Kubernetes defaults, loaded by the Zero to JupyterHub chart's hub.

The hub image (deploy/Dockerfile) puts this file in
/usr/local/etc/jupyterhub/jupyterhub_config.d/. The chart's hub configuration runs it after
the values' ``hub.config`` and before ``hub.extraConfig``, in a namespace where ``c`` is the
configuration (and ``get_config`` is the chart's values lookup, not traitlets'). It only
sets defaults, keeping whatever the values set; it checks nothing: ``pangeohub.configure(c)``
in the values' last ``hub.extraConfig`` entry registers pangeohub's services, roles and
hooks and runs the start-up checks on the final configuration.
"""

from pangeohub.servers import NamedServerGate

# The chart selects plain KubeSpawner; use pangeohub's subclass unless the values chose one.
if c.JupyterHub.spawner_class in ("kubespawner.KubeSpawner", "kubespawner", "kubernetes"):  # noqa: F821
    c.JupyterHub.spawner_class = "pangeo-kubernetes"  # noqa: F821
# Named servers are the values' choice: the chart always sets allow_named_servers (from
# hub.allowNamedServers, false by default), so a default here would never apply.
# The named-server limit and name rule, per group (c.PangeoPolicy).
c.JupyterHub.setdefault("named_server_limit_per_user", NamedServerGate())  # noqa: F821
# What the user image (deploy/user-image/) provides, at the paths it provides it.
c.ScratchEnvironment.setdefault("credential_command", "pangeohub-scratch-credentials")  # noqa: F821
c.ScratchEnvironment.setdefault("client_config_dir", "/etc/pangeohub/scratch-client")  # noqa: F821
