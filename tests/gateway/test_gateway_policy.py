"""GatewayPolicy: the options users see, their bounds per group, and the limits."""

from __future__ import annotations

import pytest
from dask_gateway_server.models import User
from traitlets.config import Config

from pangeohub.gateway.options import GatewayPolicy, GiB


def policy(**settings) -> GatewayPolicy:
    config = Config()
    for key, value in settings.items():
        setattr(config.GatewayPolicy, key, value)
    return GatewayPolicy(config=config)


IMAGES = [
    {"image": "pangeo/base:1", "groups": []},
    {"image": "pangeo/ml:1", "groups": ["org:ml"]},
]


async def configure(p: GatewayPolicy, user: User, **request) -> dict:
    options = await p.cluster_options(user)
    return options.get_configuration(options.parse_options(request), user)


async def test_defaults_are_the_users_server_image_and_idle_shutdown():
    p = policy(server_images=IMAGES, environment={"PANGEO_SCRATCH": "s3://b/{username}/"})
    config = await configure(p, User("ada", ["org:ml"]), image="pangeo/ml:1")
    assert config["image"] == "pangeo/ml:1"
    assert config["idle_timeout"] == 60 * 60
    assert config["worker_cores"] == 1 and config["worker_memory"] == 2 * GiB
    env = config["environment"]
    assert env["PANGEO_SCRATCH"] == "s3://b/ada/"
    assert env["JUPYTER_IMAGE_SPEC"] == "pangeo/ml:1"
    # No image asked for: the first server image the user may use.
    assert (await configure(p, User("bob")))["image"] == "pangeo/base:1"


async def test_group_bounds_are_the_most_generous_of_the_users_groups():
    p = policy(
        group_bounds={
            "org:climate": {"worker_cores": {"max": 8}, "worker_memory": {"max": "32G"}},
            "org:small": {"worker_cores": {"max": 3}},
        }
    )
    climate = User("ada", ["org:small", "org:climate"])
    config = await configure(p, climate, worker_cores=8, worker_memory=32)
    assert config["worker_cores"] == 8 and config["worker_memory"] == 32 * GiB
    with pytest.raises(ValueError, match="worker_cores=8 is above your maximum of 2"):
        await configure(p, User("bob", ["org:other"]), worker_cores=8)
    with pytest.raises(ValueError, match=r"worker_memory=9 GiB is above your maximum of 8 GiB"):
        await configure(p, User("bob"), worker_memory=9)


async def test_idle_timeout_cannot_be_disabled_or_raised_past_the_maximum():
    p = policy()
    with pytest.raises(ValueError, match="idle_timeout=0 minutes is below the minimum of 5"):
        await configure(p, User("bob"), idle_timeout=0)
    with pytest.raises(ValueError, match="idle_timeout=600 minutes is above your maximum of 60"):
        await configure(p, User("bob"), idle_timeout=600)
    assert (await configure(p, User("bob"), idle_timeout=10))["idle_timeout"] == 600
    with pytest.raises(ValueError, match="need 0 < min"):
        policy(idle_timeout={"min": 0, "max": 60, "default": 60}).bounds_for([])


async def test_images_only_from_the_users_servers_or_the_allowlist():
    p = policy(server_images=IMAGES, image_allowlist=["pangeo/extra:2"])
    assert (await configure(p, User("bob"), image="pangeo/extra:2"))["image"] == "pangeo/extra:2"
    with pytest.raises(ValueError, match="image 'pangeo/ml:1' is not allowed"):
        await configure(p, User("bob", ["org:other"]), image="pangeo/ml:1")
    with pytest.raises(ValueError, match="choose one of: pangeo/base:1, pangeo/extra:2"):
        await configure(p, User("bob"), image="evil/miner")


async def test_user_environment_is_merged_but_cannot_override_pangeohub():
    async def scratch(user):
        return {"SCRATCH_TOKEN": f"token-for-{user.name}"}

    p = policy(environment={"PANGEO_SCRATCH": "s3://b/{username}/"}, environment_hooks=[scratch])
    config = await configure(p, User("ada"), environment={"EXTRA_PIP_PACKAGES": "xarray"})
    assert config["environment"]["EXTRA_PIP_PACKAGES"] == "xarray"
    assert config["environment"]["SCRATCH_TOKEN"] == "token-for-ada"
    for name in (
        "SCRATCH_TOKEN",
        "PANGEO_SCRATCH",
        "AWS_SECRET_ACCESS_KEY",
        "DASK_GATEWAY_API_TOKEN",
    ):
        with pytest.raises(ValueError, match=f"environment may not set {name}"):
            await configure(p, User("ada"), environment={name: "x"})
    with pytest.raises(ValueError, match="must be a string"):
        await configure(p, User("ada"), environment={"N": 1})


def test_per_user_limits_most_generous_group_wins_and_zero_means_none():
    p = policy(
        user_limits={"clusters": 2, "workers": 10, "cores": 20, "memory": "80G"},
        group_user_limits={"org:climate": {"cores": 64, "workers": 0}},
    )
    base = p.limits_for([])
    assert (base.clusters, base.workers, base.cores, base.memory) == (2, 10, 20.0, 80 * GiB)
    climate = p.limits_for(["org:climate"])
    assert (climate.clusters, climate.workers, climate.cores) == (2, None, 64.0)


async def test_a_servers_worker_environment_reaches_its_clusters_only():
    p = policy()
    servers = {"/": {"PANGEO_SCRATCH": "file:///s/ada", "SCRATCH_MODE": "local"}}
    options = await p.cluster_options(User("ada"), server_environments=servers)

    def configure_with(**request):
        return options.get_configuration(options.parse_options(request), User("ada"))

    assert configure_with(server="/")["environment"]["SCRATCH_MODE"] == "local"
    assert "SCRATCH_MODE" not in configure_with(server="")["environment"]
    with pytest.raises(ValueError, match="may not set SCRATCH_MODE"):
        configure_with(server="/", environment={"SCRATCH_MODE": "mine"})
