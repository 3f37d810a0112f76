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
