"""Secrets and state: generated once into the state directory (0600), reused, never printed."""

import os

from jupyterhub.crypto import CryptKeeper

from pangeohub.state import StateDirectory

c = get_config()  # noqa: F821

state = StateDirectory.from_env()
c.JupyterHub.cookie_secret = bytes.fromhex(state.secret("cookie_secret"))
c.ConfigurableHTTPProxy.auth_token = state.secret("proxy_auth_token")
# The hub reads the CryptKeeper singleton directly, so set its keys there.
CryptKeeper.instance().keys = [bytes.fromhex(state.secret("crypt_key"))]
c.JupyterHub.db_url = os.environ.get("PANGEOHUB_DB_URL") or state.sqlite_url
c.JupyterHub.pid_file = str(state.path / "jupyterhub.pid")
c.ConfigurableHTTPProxy.pid_file = str(state.path / "proxy.pid")
c.JupyterHub.cookie_secret_file = str(state.path / "jupyterhub_cookie_secret")
