"""Issue 13, case 3: nan and inf pass `<` / `>` bound checks, so every numeric option a
user sends and every numeric setting an admin writes is checked to be finite."""

from __future__ import annotations

import math

import pytest
from dask_gateway_server.models import User
from traitlets import TraitError
from traitlets.config import Config

from pangeohub.auth import GitHubTeamsAuthenticator
from pangeohub.culling import CullingPolicy
from pangeohub.gateway.hub import GatewayService
from pangeohub.gateway.options import GatewayPolicy
from pangeohub.policy import PangeoPolicy

NON_FINITE = [math.nan, math.inf, -math.inf]


async def gateway_options(policy: GatewayPolicy, **request):
    user = User("grace", ["pangeo-data:climate"])
    options = await policy.cluster_options(user)
    return options.get_configuration(options.parse_options(request), user)


@pytest.mark.parametrize("value", NON_FINITE, ids=repr)
@pytest.mark.parametrize("option", ["idle_timeout", "worker_memory"])
async def test_gateway_cluster_options_refuse_non_finite(option, value):
    with pytest.raises(ValueError, match=f"{option} must be a finite number"):
        await gateway_options(GatewayPolicy(), **{option: value})
    # finite values still meet the bounds, with the bound's message
    with pytest.raises(ValueError, match="Idle clusters always shut down"):
        await gateway_options(GatewayPolicy(), idle_timeout=0)


@pytest.mark.parametrize("value", NON_FINITE, ids=repr)
async def test_gateway_admin_bounds_refuse_non_finite(value):
    bad_bounds = GatewayPolicy(
        config=Config({"GatewayPolicy": {"idle_timeout": {"min": value, "max": 60, "default": 60}}})
    )
    with pytest.raises(ValueError, match="finite"):
        bad_bounds.bounds_for([])
    bad_limits = GatewayPolicy(config=Config({"GatewayPolicy": {"user_limits": {"cores": value}}}))
    with pytest.raises(ValueError, match="finite"):
        bad_limits.limits_for([])


@pytest.mark.parametrize("value", NON_FINITE, ids=repr)
@pytest.mark.parametrize("key", ["cpu_limit", "cpu_guarantee", "mem_limit", "disk_size"])
def test_profiles_refuse_non_finite_resources(key, value):
    profile = {"display_name": "Odd", key: value}
    with pytest.raises(ValueError, match="finite|must be"):
        PangeoPolicy(profiles=[profile]).all_profiles()


def test_guarantee_above_its_limit_is_refused():
    profile = {"display_name": "Odd", "cpu_limit": 1, "cpu_guarantee": 4}
    with pytest.raises(ValueError, match="cpu_guarantee 4.0 must be between 0 and"):
        PangeoPolicy(profiles=[profile]).all_profiles()


@pytest.mark.parametrize(
    "cls, setting, value",
    [
        (PangeoPolicy, "max_cpu_limit", math.nan),
        (PangeoPolicy, "default_cpu_limit", math.inf),
        (PangeoPolicy, "named_server_limit", -1),
        (GatewayService, "request_timeout", math.nan),
        (GatewayService, "port", 70000),
        (GitHubTeamsAuthenticator, "github_timeout", math.inf),
        (GitHubTeamsAuthenticator, "max_team_pages", 0),
        (CullingPolicy, "timeout", 0),
        (CullingPolicy, "every", -5),
    ],
)
def test_admin_settings_out_of_range_are_refused(cls, setting, value):
    with pytest.raises(TraitError):
        cls(config=Config({cls.__name__: {setting: value}}))
