"""The Kubernetes fixtures (fake API server, PangeoKubeSpawner on it) for the BinderHub tests."""

from tests.kubernetes.conftest import (  # noqa: F401 (fixtures)
    fake,
    make_spawner,
    reflector_errors,
    spawner_log,
    stop_reflectors,
)
