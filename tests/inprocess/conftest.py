"""JupyterHub's own test fixtures (MockHub, api_request, ...) for in-process tests."""

from jupyterhub.tests.conftest import *  # noqa: F403


def pytest_configure(config):
    # JupyterHub's test modules mark themselves "ssl"; upstream's suite is imported here
    config.addinivalue_line("markers", "ssl: JupyterHub's own test modules' marker")
