"""Scratch: a prefix per user, credentials from the hub-managed scratch service.

Settings live in services/scratch/scratch_config.py (shared with the service). Once the
whole configuration is loaded, wire_scratch registers the service, grants user and server
tokens its scope, and adds the hook that gives every server $PANGEO_SCRATCH.
"""

from pathlib import Path

from pangeohub.scratch.hubconfig import wire_scratch
from pangeohub.startup import WIRING

c = get_config()  # noqa: F821

scratch_config = (
    Path(__file__).resolve().parent.parent / "services" / "scratch" / "scratch_config.py"
)
load_subconfig(str(scratch_config))  # noqa: F821
c.ScratchService.config_file = str(scratch_config)
if wire_scratch not in WIRING:  # runs once the whole configuration is loaded
    WIRING.append(wire_scratch)
