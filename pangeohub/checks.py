"""Start-up checks: a configuration pangeohub cannot honour stops the hub with a reason.

``jupyterhub_config.py`` calls :func:`check_configuration` after every file (and the
admin's override) is loaded, so a mistake is reported once, at start-up, instead of as
a failed spawn later.
"""

from __future__ import annotations

from collections.abc import Callable

from traitlets.config import Config

from .policy import PangeoPolicy


def check_profiles(config: Config) -> None:
    """Every profile is well formed and within the admin's bounds."""
    PangeoPolicy(config=config).all_profiles()


CHECKS: list[Callable[[Config], None]] = [check_profiles]


class ConfigurationError(SystemExit):
    """The hub cannot start with this configuration; the message says what to change."""


def check_configuration(config: Config) -> None:
    """Run every check; the first failure stops the hub with its message."""
    for check in CHECKS:
        try:
            check(config)
        except ValueError as error:
            raise ConfigurationError(f"pangeohub configuration error: {error}") from None
