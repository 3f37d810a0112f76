"""JupyterHub's own test fixtures (MockHub, api_request, ...) for in-process tests."""

from jupyterhub.tests.conftest import *  # noqa: F403
