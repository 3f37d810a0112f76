"""The hub's configuration as the admin tools read it: the same files the hub loads.

``pangeohub-admin`` runs with the hub's environment (``PANGEOHUB_STATE_DIR``,
``PANGEOHUB_CONFIG``, as the systemd units set them) and loads the bundle's
``jupyterhub_config.py`` the way ``jupyterhub -f`` does, so every path it touches (the
database, disks, scratch, shared data) is the one the hub uses.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from pathlib import Path

from traitlets.config import Config, PyFileConfigLoader

from ..state import STATE_DIR_ENV, StateDirectory

BUNDLE = Path(__file__).resolve().parents[2]
CONFIG_FILE = BUNDLE / "jupyterhub_config.py"


@contextmanager
def _settings_only():
    """Load the configuration files without ``pangeohub.configure``: its wiring writes
    the services' settings files (with ports picked at each load), which are the running
    hub's alone; the admin tools only read settings."""
    import pangeohub

    configure = pangeohub.configure
    pangeohub.configure = lambda c: c
    try:
        yield
    finally:
        pangeohub.configure = configure


@contextmanager
def _quiet(logger: str = "JupyterHub"):
    """The hub's start-up announcements are for the hub's log, not an admin command."""
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


class Hub:
    """One hub: its state directory and its merged configuration."""

    def __init__(self, state_dir: str | os.PathLike | None = None, config_file: Path = CONFIG_FILE):
        if state_dir is not None:
            os.environ[STATE_DIR_ENV] = str(Path(state_dir).resolve())
        self.state = StateDirectory.from_env()
        self.config_file = Path(config_file)
        self._config: Config | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            loader = PyFileConfigLoader(self.config_file.name, path=str(self.config_file.parent))
            with _quiet(), _settings_only():
                self._config = loader.load_config()
        return self._config

    @property
    def db_url(self) -> str:
        return self.config.JupyterHub.get("db_url", self.state.sqlite_url)

    @property
    def pid(self) -> int | None:
        """The running hub's process id, if it is running."""
        path = Path(self.config.JupyterHub.get("pid_file", self.state.path / "jupyterhub.pid"))
        try:
            pid = int(path.read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid

    def part(self, cls):
        """A pangeohub settings object (``Isolation``, ``SharedData``...) as the hub has it."""
        with _quiet():
            return cls(config=self.config)
