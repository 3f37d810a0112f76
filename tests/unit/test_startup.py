"""Start-up checks refuse a configuration with a reason."""

import pytest
from traitlets.config import Config

from pangeohub.startup import ConfigurationError, finalize_configuration


def test_good_configuration_passes():
    config = Config()
    config.PangeoPolicy.profiles = [{"display_name": "Small"}]
    finalize_configuration(config)


def test_profile_over_a_bound_stops_the_hub_with_the_reason():
    config = Config()
    config.PangeoPolicy.max_cpu_limit = 2.0
    config.PangeoPolicy.profiles = [{"display_name": "Huge", "cpu_limit": 8}]
    with pytest.raises(ConfigurationError, match="'Huge': cpu_limit 8.0 exceeds"):
        finalize_configuration(config)


def test_scratch_expiry_runs_on_the_culling_schedule():
    config = Config()
    config.JupyterHub.services = [
        {"name": "scratch", "command": ["python", "-m", "pangeohub.scratch.service"]}
    ]
    config.CullingPolicy.every = 120
    finalize_configuration(config)
    (scratch,) = [s for s in config.JupyterHub.services if s["name"] == "scratch"]
    assert scratch["command"][-1] == "--ScratchService.expiry_check_seconds=120"
    finalize_configuration(config)  # applying twice leaves one flag
    (scratch,) = [s for s in config.JupyterHub.services if s["name"] == "scratch"]
    assert sum("expiry_check_seconds" in a for a in scratch["command"]) == 1
