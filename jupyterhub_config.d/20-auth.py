"""Sign-in: local users with groups from configuration (GitHub teams in production)."""

c = get_config()  # noqa: F821

c.JupyterHub.authenticator_class = "pangeo-local"
c.Authenticator.enable_auth_state = True
# A sample community: one admin and two users in different teams.
c.LocalGroupsAuthenticator.users = {
    "ada": {"admin": True, "groups": ["pangeo-data:hub-admins"]},
    "grace": {"groups": ["pangeo-data:climate"]},
    "katherine": {"groups": ["pangeo-data:oceans"]},
}
