"""pangeohub's spawners: the same policies on a local process spawner and on KubeSpawner."""

from .local import PangeoLocalSpawner
from .mixin import PangeoSpawnerMixin

__all__ = ["PangeoLocalSpawner", "PangeoSpawnerMixin"]
