"""JupyterHub's own test fixtures (MockHub, api_request, ...) for the security tests."""

from jupyterhub.tests.conftest import *  # noqa: F403
