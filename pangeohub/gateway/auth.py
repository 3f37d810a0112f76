"""dask-gateway's JupyterHub authenticator, answering 401 (not 500) for a refused token.

Workaround, too, for ``get_token``: an ``Authorization`` header without a space (e.g.
``jupyterhub`` alone) raises ValueError there, a 500; here it is no token, a 401.

Workaround for dask-gateway-server (2026.3, ``auth.JupyterHubAuthenticator.authenticate``):
when the hub answers 403 for a token (as it does for someone who lost access at a
refresh, ``auth_refresh_strict``), the gateway turns that into a 500 "Permission
failure verifying user's JupyterHub API token". That person's request is refused
either way; this makes it the 401 it is. No upstream issue was found to name; remove
this class once upstream maps the hub's 403 to 401.
"""

from __future__ import annotations

from aiohttp import web
from dask_gateway_server.auth import JupyterHubAuthenticator, unauthorized


class PangeoJupyterHubAuthenticator(JupyterHubAuthenticator):
    """``JupyterHubAuthenticator`` with the hub's refusal (403) answered as 401."""

    async def authenticate(self, request):
        try:
            return await super().authenticate(request)
        except web.HTTPInternalServerError as error:
            if (error.reason or "").startswith("Permission failure verifying"):
                raise unauthorized("jupyterhub") from None
            raise

    def get_token(self, request):
        kind, _, token = request.headers.get("Authorization", "").partition(" ")
        return token.strip() or None if kind == "jupyterhub" else None
