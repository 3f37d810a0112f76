"""The spawner tests run JupyterHub's own test module on pangeohub's spawner."""


def pytest_configure(config):
    # JupyterHub's test modules mark themselves "ssl"; upstream's suite is imported here
    config.addinivalue_line("markers", "ssl: JupyterHub's own test modules' marker")
