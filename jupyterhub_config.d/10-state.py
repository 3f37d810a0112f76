"""Secrets and state: generated once into the state directory (0600), reused, never printed."""

from pangeohub.state import StateDirectory

c = get_config()  # noqa: F821

state = StateDirectory.from_env()
c.JupyterHub.cookie_secret = bytes.fromhex(state.secret("cookie_secret"))
c.ConfigurableHTTPProxy.auth_token = state.secret("proxy_auth_token")
c.CryptKeeper.keys = [bytes.fromhex(state.secret("crypt_key"))]
c.JupyterHub.db_url = state.sqlite_url  # the admin file may set another (PostgreSQL)
c.JupyterHub.pid_file = str(state.path / "jupyterhub.pid")
c.ConfigurableHTTPProxy.pid_file = str(state.path / "proxy.pid")
c.JupyterHub.cookie_secret_file = str(state.path / "jupyterhub_cookie_secret")
