"""pangeohub's rules on JupyterHub's MockHub: one hub per test module."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from unittest import mock

from jupyterhub import orm
from jupyterhub.tests.utils import add_user
from traitlets import default

from pangeohub.servers import NamedServerGate, install_jupyterhub_patches
from pangeohub.spawner import PangeoLocalSpawner

PROFILES = [
    {"display_name": "Small", "slug": "small", "default": True},
    {"display_name": "Large", "slug": "large", "cpu_limit": 2, "groups": ["pangeo-data:climate"]},
]


class QuickLocalSpawner(PangeoLocalSpawner):
    """pangeohub's local spawner running JupyterHub's tiny test server instead of Lab."""

    @default("cmd")
    def _default_cmd(self):
        return [sys.executable, "-m", "jupyterhub.tests.mocksu"]


@contextmanager
def pangeo_rules(app, server_root, limit: int = 1, group_limit: int = 3):
    """The MockHub ``app`` with pangeohub's spawner, profiles and named-server gate."""
    app.config.PangeoPolicy.profiles = PROFILES
    app.config.PangeoPolicy.named_server_limit = limit
    app.config.PangeoPolicy.named_server_limit_by_group = {"pangeo-data:climate": group_limit}
    app.config.PangeoLocalSpawner.server_root = str(server_root)
    install_jupyterhub_patches()  # what pangeohub.configure(c) does in a hub
    settings = {
        "spawner_class": QuickLocalSpawner,
        "allow_named_servers": True,
        "named_server_limit_per_user": NamedServerGate(),
    }
    try:
        with mock.patch.dict(app.tornado_settings, settings):
            yield app
    finally:
        for key in ("PangeoPolicy", "PangeoLocalSpawner"):
            app.config.pop(key, None)


def member(app, name, *groups):
    """A user in the given JupyterHub groups."""
    user = add_user(app.db, app, name=name)
    for group_name in groups:
        group = orm.Group.find(app.db, group_name) or orm.Group(name=group_name)
        app.db.add(group)
        group.users.append(user.orm_user)
    app.db.commit()
    return user
