"""Dask Gateway: a hub-managed service; every server gets zero-configuration settings.

The service, its scope and the hooks are wired once the whole configuration (the
admin's override included) is loaded: pangeohub.gateway.hub.wire_gateway. Bounds and
limits live in the gateway's own config (services/dask-gateway/), which an admin
extends with $PANGEOHUB_GATEWAY_CONFIG; where it listens is c.GatewayService.
"""

from pathlib import Path

from pangeohub.gateway.hub import wire_gateway
from pangeohub.startup import WIRING

c = get_config()  # noqa: F821

here = Path(__file__).resolve().parent.parent
c.GatewayService.config_file = str(here / "services" / "dask-gateway" / "dask_gateway_config.py")

if wire_gateway not in WIRING:
    WIRING.append(wire_gateway)
