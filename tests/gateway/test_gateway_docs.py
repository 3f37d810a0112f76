"""docs/dask-gateway.md names every setting of pangeohub's Dask Gateway."""

from pathlib import Path

import pytest

from pangeohub.gateway.backend import PangeoBackendMixin
from pangeohub.gateway.dashboard import DashboardGuard
from pangeohub.gateway.hub import GatewayService
from pangeohub.gateway.kubernetes import PangeoKubeBackend
from pangeohub.gateway.options import GatewayPolicy

PAGE = Path(__file__).resolve().parents[2] / "docs" / "dask-gateway.md"


@pytest.mark.parametrize(
    "cls", [GatewayPolicy, GatewayService, PangeoBackendMixin, PangeoKubeBackend, DashboardGuard]
)
def test_every_setting_is_documented(cls):
    text = PAGE.read_text()
    for name, trait in cls.class_own_traits(config=True).items():
        assert f"`{name}`" in text, f"{cls.__name__}.{name} is missing from {PAGE.name}"
        assert trait.help, f"{cls.__name__}.{name} has no help="
