"""Upstream's settings on pangeohub's local spawner: honoured, or refused at start-up.

JupyterHub's ``options_from_form`` (a callable, "simple"), a ``pre_spawn_hook`` that
changes the spawner's limits, and a ``cmd`` that changes between starts all reach the
server; "passthrough", which pangeohub's form cannot be read with, stops the hub.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from jupyterhub.spawner import LocalProcessSpawner
from tornado import web
from traitlets.config import Config

import pangeohub
from pangeohub.assembly import ConfigurationError
from pangeohub.hubconfig import free_port
from pangeohub.spawner.local import PangeoLocalSpawner

GiB = 1024**3
PROFILES = [
    {"display_name": "Small", "slug": "small", "mem_limit": "2G", "default": True},
    {"display_name": "Large", "slug": "large", "groups": ["pangeo-data:climate"]},
]


@pytest.fixture(autouse=True)
def state_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("PANGEOHUB_STATE_DIR", str(tmp_path / "state"))


def config(tmp_path, **spawner) -> Config:
    c = Config()
    c.PangeoPolicy.profiles = PROFILES
    c.Isolation.enabled = False  # no accounts, disks or cgroups made here
    c.Environments.enabled = False
    c.ScratchService.enabled = False
    c.GatewayService.enabled = False
    c.PangeoLocalSpawner.server_root = str(tmp_path / "servers")
    for name, value in spawner.items():
        setattr(c.Spawner, name, value)
    return c


def spawner_for(c: Config, options: dict | None = None) -> PangeoLocalSpawner:
    spawner = PangeoLocalSpawner(
        config=c, _deprecated_db_session=None, hub=SimpleNamespace(base_url="/hub/")
    )
    spawner.user = SimpleNamespace(name="ada", groups=[])
    spawner.user_options = options or {}
    return spawner


# -- options_from_form ---------------------------------------------------------


def test_the_default_reads_the_profile_and_the_policy_refuses_one_not_allowed(tmp_path):
    spawner = spawner_for(config(tmp_path))
    assert spawner.run_options_from_form({"profile": ["small"]}) == {"profile": "small"}
    assert spawner.run_options_from_form({}) == {"profile": "small"}  # the default profile
    assert spawner.run_options_from_form({"gpu": ["on"]}) == {"profile": "small"}
    with pytest.raises(web.HTTPError) as refused:
        spawner.run_options_from_form({"profile": ["large"]})
    assert refused.value.status_code == 403


def test_an_admins_callable_is_honoured_and_its_result_checked(tmp_path):
    def from_form(form_data, spawner):
        return {"profile": form_data["size"][0], "seen_by": spawner.user.name}

    spawner = spawner_for(config(tmp_path, options_from_form=from_form))
    assert spawner.run_options_from_form({"size": ["small"]}) == {
        "profile": "small",
        "seen_by": "ada",
    }
    with pytest.raises(web.HTTPError) as refused:
        spawner.run_options_from_form({"size": ["large"]})
    assert refused.value.status_code == 403
    with pytest.raises(web.HTTPError) as refused:  # a list where a slug belongs
        spawner_for(config(tmp_path, options_from_form=lambda f: f)).run_options_from_form(
            {"profile": ["small"]}
        )
    assert refused.value.status_code == 400


def test_simple_is_honoured(tmp_path):
    spawner = spawner_for(config(tmp_path, options_from_form="simple"))
    options = spawner.run_options_from_form({"profile": ["small"], "gpu": ["on"]})
    assert options == {"profile": "small", "gpu": True}  # upstream's "simple" reading


async def test_the_options_jupyterhub_hands_over_before_a_start_are_handled(tmp_path, caplog):
    """JupyterHub 5.3+ passes ``user_options`` to ``apply_user_options`` before the start
    and warns of "unhandled user_options" when no hook takes them: pangeohub's takes
    them (the profile is checked and applied at the start)."""
    spawner = spawner_for(config(tmp_path), {"profile": "small"})
    await spawner._run_apply_user_options(spawner.user_options)
    assert "unhandled" not in caplog.text


@pytest.mark.parametrize(
    "spawner, section",
    [
        ("pangeo-local", "Spawner"),
        ("pangeo-local", "LocalProcessSpawner"),
        ("pangeo-local", "PangeoLocalSpawner"),
        ("pangeo-kubernetes", "KubeSpawner"),
        ("pangeo-kubernetes", "PangeoSpawnerMixin"),
        ("pangeohub.spawner.kubernetes.PangeoKubeSpawner", "PangeoKubeSpawner"),
    ],
)
def test_passthrough_stops_the_hub_naming_what_to_use(spawner, section):
    """In any section the hub's spawner reads (its classes, found as JupyterHub finds the
    spawner: by entry point name or "module.Class")."""
    c = Config()
    c.PangeoPolicy.profiles = PROFILES
    c.JupyterHub.spawner_class = spawner
    c[section].options_from_form = "passthrough"
    with pytest.raises(ConfigurationError) as stopped:
        pangeohub.configure(c)
    message = str(stopped.value)
    assert f"c.{section}.options_from_form = 'passthrough'" in message and "\n" not in message
    assert "use 'simple' or a callable" in message


def test_passthrough_where_the_hubs_spawner_does_not_read_it_changes_nothing(tmp_path):
    """A section of a spawner the hub does not run (the local hub's c.KubeSpawner), or an
    upstream spawner of JupyterHub's own, is not pangeohub's to refuse."""
    for spawner, section in (("pangeo-local", "KubeSpawner"), ("localprocess", "Spawner")):
        c = config(tmp_path)
        c.JupyterHub.spawner_class = spawner  # "localprocess": JupyterHub's own, by name
        c.JupyterHub.hub_port = free_port()  # not 8081, which a hub here may hold
        c[section].options_from_form = "passthrough"
        pangeohub.configure(c)


def test_a_profile_option_setting_a_profiles_resources_stops_the_hub():
    c = Config()
    c.PangeoPolicy.profiles = PROFILES
    c.JupyterHub.spawner_class = "pangeo-kubernetes"
    c.PangeoKubeSpawner.profile_options = {
        "small": {"size": {"choices": {"big": {"kubespawner_override": {"mem_limit": "64G"}}}}}
    }
    with pytest.raises(ConfigurationError, match=r"small: size: big: mem_limit"):
        pangeohub.configure(c)
    image_only = {"image": {"choices": {"ml": {"kubespawner_override": {"image": "ml:1"}}}}}
    c.PangeoKubeSpawner.profile_options = {"small": image_only}
    pangeohub.configure(c)  # an option choosing the image is what options are for


# -- the profile, applied once, and the spawner's own limits -------------------


class RecordingCgroup:
    def __init__(self):
        self.created = []

    def kill_all(self):
        pass

    def create(self, **limits):
        self.created.append(limits)


def test_a_pre_spawn_hooks_change_reaches_the_cgroup(tmp_path, monkeypatch):
    def pre_spawn_hook(spawner):
        spawner.mem_limit = 3 * GiB  # e.g. more memory for an event's participants
        spawner.cpu_guarantee = 0.5

    cgroup = RecordingCgroup()
    monkeypatch.setattr(PangeoLocalSpawner, "cgroup", property(lambda self: cgroup))
    spawner = spawner_for(config(tmp_path, pre_spawn_hook=pre_spawn_hook), {"profile": "small"})
    spawner.clear_state()  # JupyterHub's order: a new start, its options, the hook, start()
    spawner.run_pre_spawn_hook()
    assert spawner.profile.slug == "small" and spawner.profile.mem_limit == 2 * GiB
    spawner.apply_start_profile()  # what start() does first: already applied, not again
    spawner.prepare_cgroup()
    assert cgroup.created == [
        {"mem_limit": 3 * GiB, "cpu_limit": 1.0, "mem_guarantee": None, "cpu_guarantee": 0.5}
    ]


def test_a_start_without_the_hook_applies_the_profile_itself(tmp_path, monkeypatch):
    cgroup = RecordingCgroup()
    monkeypatch.setattr(PangeoLocalSpawner, "cgroup", property(lambda self: cgroup))
    spawner = spawner_for(config(tmp_path, mem_guarantee="4G"), {"profile": "small"})
    spawner.apply_start_profile()
    spawner.prepare_cgroup()
    # a guarantee above the limit is no guarantee the cgroup can give: at most the limit
    assert cgroup.created == [
        {
            "mem_limit": 2 * GiB,
            "cpu_limit": 1.0,
            "mem_guarantee": 2 * GiB,
            "cpu_guarantee": None,
        }
    ]


# -- cmd -------------------------------------------------------------------------


async def test_each_start_runs_the_spawners_current_cmd(tmp_path, monkeypatch):
    started = []

    async def start(self):
        started.append(list(self.cmd))
        return "http://127.0.0.1:1"

    monkeypatch.setattr(LocalProcessSpawner, "start", start)
    spawner = spawner_for(config(tmp_path, cmd=["jupyterhub-singleuser"]), {"profile": "small"})
    await spawner.start()
    spawner.cmd = ["jupyter-lab", "--debug"]  # e.g. a pre_spawn_hook's, or an admin's change
    await spawner.start()
    assert started == [["jupyterhub-singleuser"], ["jupyter-lab", "--debug"]]
    assert spawner.cmd == ["jupyter-lab", "--debug"], "the spawner's own cmd is left as it was"
