"""Inside a server, the parts that need no browser: where the Dask dashboard proxy goes,
the shared volume on Kubernetes, the picker's list, and the home page's wiring."""

from __future__ import annotations

import json
import os
import re
import stat
from types import SimpleNamespace

import jupyterhub_fancy_profiles
import pytest
from traitlets.config import Config, Configurable

import pangeohub
from pangeohub.lab.dashboard import gateway_dashboard_url
from pangeohub.lab.home import PAGES, TEMPLATE_VAR, TEMPLATES, home_summary
from pangeohub.lab.picker import (
    ProfilePicker,
    describe,
    mark_previous,
    render_fancy_form,
    with_picker_templates,
)
from pangeohub.lab.shared import SharedData
from pangeohub.policy import PangeoPolicy

PUBLIC = "/services/dask-gateway"
INTERNAL = "http://traefik-dask-gateway.pangeo.svc/services/dask-gateway"


@pytest.fixture(autouse=True)
def state_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("PANGEOHUB_STATE_DIR", str(tmp_path / "state"))


@pytest.mark.parametrize(
    "link, expected",
    [
        (f"{PUBLIC}/clusters/abc/status", f"{INTERNAL}/clusters/abc"),
        (f"{PUBLIC}/clusters/abc/", f"{INTERNAL}/clusters/abc/"),
        # a link elsewhere on the hub: the gateway's host, same path
        ("/other/clusters/abc/status", "http://traefik-dask-gateway.pangeo.svc/other/clusters/abc"),
        # a full link (an admin's public_address): kept, without /status
        ("https://dask.example.org/clusters/abc/status", "https://dask.example.org/clusters/abc"),
    ],
)
def test_dashboard_proxy_reaches_the_gateway_at_its_internal_address(link, expected):
    assert gateway_dashboard_url(link, PUBLIC, INTERNAL) == expected


def test_shared_volume_is_read_only_except_for_writer_groups():
    shared = SharedData(
        kubernetes_volume={"persistentVolumeClaim": {"claimName": "shared-data"}},
        writer_groups=["pangeo-data:Hub-Admins"],
    )
    volumes, mounts = shared.kubernetes_mounts(["pangeo-data:climate"])
    assert volumes == [
        {"name": "pangeo-shared", "persistentVolumeClaim": {"claimName": "shared-data"}}
    ]
    assert mounts == [
        {"name": "pangeo-shared", "mountPath": "/home/jovyan/shared", "readOnly": True}
    ]
    _, mounts = shared.kubernetes_mounts(["pangeo-data:hub-admins"])
    assert mounts[0]["readOnly"] is False
    assert SharedData().kubernetes_mounts(["x"]) == ([], [])  # no volume set: none


def test_shared_directory_defaults_inside_what_the_tests_clean(tmp_path):
    path = SharedData().path
    assert path.startswith("/srv/pangeohub/") or path == str(tmp_path / "state" / "shared")


def test_picker_shows_resources_image_and_the_previous_choice():
    policy = PangeoPolicy(
        profiles=[
            {"display_name": "Small", "slug": "small", "default": True, "description": "Light."},
            {"display_name": "Large", "slug": "large", "cpu_limit": 4, "mem_limit": "16G"},
        ]
    )
    small, large = policy.all_profiles()
    assert (
        describe(large) == "4 CPU, 16 GiB memory, 2 GiB disk · image pangeo/pangeo-notebook:latest"
    )
    assert describe(small).startswith("Light. · 1 CPU")
    entries = [{"slug": "small", "default": True}, {"slug": "large", "default": False}]
    assert [e["default"] for e in mark_previous(entries, "large")] == [False, True]
    assert [e["default"] for e in mark_previous(entries, "gone")] == [False, True]  # kept
    form = render_fancy_form([{"slug": "large", "display_name": "Large </script>"}])
    assert "window.profileList" in form and '</script>"' not in form  # JSON, escaped


def test_configure_wires_picker_and_home_keeping_the_admins_own():
    c = Config()
    c.PangeoPolicy.profiles = [{"display_name": "Small"}]
    c.JupyterHub.template_paths = ["/admin/templates"]
    c.JupyterHub.template_vars = {"org": "Pangeo", TEMPLATE_VAR: "admin's"}
    c.JupyterHub.extra_handlers = [("/admin/(.*)", object)]
    pangeohub.configure(c)
    pangeohub.configure(c)  # idempotent
    assert c.JupyterHub.template_paths == ["/admin/templates", PAGES, TEMPLATES]
    assert c.JupyterHub.template_vars == {"org": "Pangeo", TEMPLATE_VAR: "admin's"}
    routes = [h[0] for h in c.JupyterHub.extra_handlers]
    assert routes[0] == "/admin/(.*)" and "/fancy-profiles/static/(.*)" in routes
    assert len(routes) == len(set(routes)), "a second configure(c) added a handler again"
    # the Kubernetes spawner adds fancy-profiles' template itself, after the admin's paths
    holder = Configurable(config=c)
    fancy = jupyterhub_fancy_profiles.TEMPLATE_PATHS
    assert with_picker_templates(["/admin/form"], holder) == ["/admin/form", *fancy]
    assert "PangeoKubeSpawner" not in c and "KubeSpawner" not in c  # nothing written there

    prefixed = Config()
    prefixed.PangeoPolicy.profiles = [{"display_name": "Small"}]
    prefixed.JupyterHub.base_url = "/pangeo/"
    pangeohub.configure(prefixed)  # fancy-profiles' script path assumes base_url "/"
    assert ProfilePicker(config=prefixed).fancy is False  # its default, not written into c
    assert with_picker_templates(["/admin/form"], Configurable(config=prefixed)) == ["/admin/form"]
    handlers = [h[0] for h in prefixed.JupyterHub.get("extra_handlers", [])]
    assert "/fancy-profiles/static/(.*)" not in handlers

    off = Config()
    off.PangeoPolicy.profiles = [{"display_name": "Small"}]
    off.HomePage.enabled = False
    off.ProfilePicker.fancy = False
    pangeohub.configure(off)
    assert off.JupyterHub.template_paths == [PAGES]  # the spawn pages name their server
    handlers = [h[0] for h in off.JupyterHub.get("extra_handlers", [])]
    assert "/fancy-profiles/static/(.*)" not in handlers


def test_home_summary_gives_each_servers_profile_disk_state_and_whats_left():
    policy = PangeoPolicy(
        named_server_limit=3,
        profiles=[
            {"display_name": "Small", "slug": "small", "default": True},
            {"display_name": "Large", "slug": "large", "disk_size": "10Gi", "groups": ["a:b"]},
        ],
    )

    def spawner(name, options, ready=False, pending=None):
        return SimpleNamespace(
            name=name, user_options=options, ready=ready, pending=pending, policy=policy
        )

    default = spawner("", {})
    spawners = [default, spawner("run", {"profile": "large"}, ready=True), spawner("old", {})]
    user = SimpleNamespace(
        spawners={"": default},
        groups=[SimpleNamespace(name="a:b")],
        all_spawners=lambda: iter(spawners),
    )
    summary = home_summary(user)
    assert summary["servers"]["run"] == {
        "profile": "Large",
        "resources": "1 CPU, 2 GiB memory, 10 GiB disk",
        "disk": "10 GiB",
        "state": "running",
    }
    assert summary["servers"][""]["profile"] == "Small"
    assert summary["servers"]["old"]["state"] == "stopped"
    assert (summary["limit"], summary["left"]) == (3, 1)
    assert home_summary(None) == {}


@pytest.mark.skipif(os.geteuid() != 0, reason="owners and groups are set only as root")
def test_shared_directory_is_root_owned_and_read_only_but_for_the_writer_group(tmp_path):
    import grp
    import subprocess

    group = "h15-inside-writers"
    subprocess.run(["groupdel", group], capture_output=True)  # a killed run's
    subprocess.run(["groupadd", group], check=True)
    try:
        path = tmp_path / "shared"
        info = SharedData(path=str(path)).ensure_directory().stat()
        assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (0, 0, 0o755)
        info = SharedData(path=str(path), writer_group=group).ensure_directory().stat()
        gid = grp.getgrnam(group).gr_gid
        assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (0, gid, 0o2775)
    finally:
        subprocess.run(["groupdel", group], check=True)


def test_shared_link_in_a_home_is_kept_and_a_persons_own_file_left_alone(tmp_path):
    shared = SharedData(path=str(tmp_path / "shared"))
    home = tmp_path / "home"
    home.mkdir()
    shared.link_into(home, os.getuid(), os.getgid())
    shared.link_into(home, os.getuid(), os.getgid())  # the next start: the same link
    assert os.readlink(home / "shared") == str(tmp_path / "shared")
    other = tmp_path / "other-home"
    other.mkdir()
    (other / "shared").write_text("my notes")
    shared.link_into(other, os.getuid(), os.getgid())
    assert (other / "shared").read_text() == "my notes"


def local_spawner(config: Config, options: dict):
    from pangeohub.spawner.local import PangeoLocalSpawner

    user = SimpleNamespace(name="grace", groups=[SimpleNamespace(name="pangeo-data:climate")])
    spawner = PangeoLocalSpawner(
        config=config, _deprecated_db_session=None, hub=SimpleNamespace(base_url="/hub/")
    )
    spawner.user = user
    spawner.user_options = options
    return spawner


def test_local_spawner_shows_the_same_picker_and_the_plain_one_when_switched_off():
    c = Config()
    c.PangeoPolicy.profiles = [
        {"display_name": "Small", "slug": "small", "default": True},
        {"display_name": "Large", "slug": "large", "groups": ["pangeo-data:climate"]},
        {"display_name": "Oceans", "slug": "oceans", "groups": ["pangeo-data:oceans"]},
    ]
    form = local_spawner(c, {"profile": "large"}).render_profile_picker()
    assert "fancy-profiles/static" in form
    listed = json.loads(re.search(r"window.profileList = (.*);", form).group(1))
    assert [p["slug"] for p in listed] == ["small", "large"]  # not Oceans
    assert [p["slug"] for p in listed if p["default"]] == ["large"]  # the previous choice
    assert listed[1]["description"].startswith("1 CPU, 2 GiB memory, 2 GiB disk · image")

    c.ProfilePicker.fancy = False
    plain = local_spawner(c, {"profile": "large"}).render_profile_picker()
    assert 'value="large" checked' in plain and "oceans" not in plain
    assert "Or launch from a repository" in form and "Or launch from a repository" in plain


def test_whereami_reports_the_servers_own_facts_from_its_environment():
    from pangeohub.lab.whereami import whereami

    facts = whereami(
        {
            "PANGEO_SCRATCH": "s3://hub-scratch/ada/",
            "PANGEO_SCRATCH_STATUS": "available",
            "CPU_LIMIT": "1.5",
            "MEM_LIMIT": "1610612736",
            "PANGEO_PROFILE": "large",
        }
    )
    assert facts["scratch"] == "s3://hub-scratch/ada/"
    assert facts["cpu_limit"] == 1.5 and facts["mem_limit"] == 1610612736
    assert facts["profile"] == "large" and facts["shared"] is None
    # no limit given (or a nonsense one): none claimed
    assert whereami({"CPU_LIMIT": "nan"})["cpu_limit"] is None
    assert whereami({"CPU_LIMIT": "0"})["cpu_limit"] is None and whereami({})["scratch"] is None


def test_the_labextension_ships_in_the_package_with_its_schema():
    from pangeohub.lab.environment import LAB_DATA_DIR

    ext = os.path.join(LAB_DATA_DIR, "labextensions", "pangeohub-lab")
    with open(os.path.join(ext, "package.json")) as f:
        build = json.load(f)["jupyterlab"]["_build"]
    assert os.path.exists(os.path.join(ext, build["load"]))
    with open(os.path.join(ext, "schemas", "pangeohub-lab", "plugin.json")) as f:
        items = json.load(f)["jupyter.lab.toolbars"]["TopBar"]
    names = ["pangeohub-cpu", "pangeohub-memory", "pangeohub-disk", "pangeohub-scratch"]
    assert [i["name"] for i in sorted(items, key=lambda i: i["rank"])] == names
    # in place of jupyter-resource-usage's own items (MB and GB, a CPU warning always on)
    with open(os.path.join(ext, "package.json")) as f:
        disabled = json.load(f)["jupyterlab"]["disabledExtensions"]
    assert "@jupyter-server/resource-usage:status-item" in disabled


def test_a_profile_larger_than_the_machine_is_capped_and_says_so():
    from pangeohub.lab.machine import Machine
    from pangeohub.policy import Profile

    machine = Machine(cpus=2, memory=8 * 2**30)
    large = Profile(
        slug="large",
        display_name="Large",
        description="Heavy analysis.",
        cpu_limit=4,
        mem_limit=16 * 2**30,
        cpu_guarantee=3,
    )
    fitted = machine.fit(large)
    assert (fitted.cpu_limit, fitted.mem_limit, fitted.cpu_guarantee) == (2, 8 * 2**30, 2)
    assert fitted.summary() == "2 CPU, 8 GiB memory, 2 GiB disk"
    assert fitted.description == (
        "Heavy analysis. Capped to this machine's size (the profile asks for 4 CPU and "
        "16 GiB memory)."
    )
    small = Profile(slug="small", display_name="Small", cpu_limit=1, mem_limit=2**30)
    assert machine.fit(small) is small


def test_the_start_up_log_names_each_capped_profile_on_one_machine_only(caplog):
    from pangeohub.lab.machine import Machine, announce_fit

    c = Config()
    c.PangeoPolicy.profiles = [
        {"display_name": "Small", "cpu_limit": 1, "mem_limit": "1G"},
        {"display_name": "Large", "cpu_limit": 4, "mem_limit": "4G"},
    ]
    machine = Machine(cpus=2, memory=8 * 2**30)
    c.JupyterHub.spawner_class = "pangeo-kubernetes"
    announce_fit(c, machine)
    assert caplog.records == []  # nodes are sized for profiles
    c.JupyterHub.spawner_class = "pangeo-local"
    announce_fit(c, machine)
    [record] = caplog.records
    assert record.getMessage() == (
        "Profile 'Large' asks for 4 CPU; this machine has 2 CPU and 8 GiB memory: its "
        "servers get 2 CPU, 4 GiB memory, 2 GiB disk."
    )


def render_hub_page(name: str, **context) -> str:
    """One of the hub's pages as JupyterHub renders it: pangeohub's pages first, then
    JupyterHub's own (reachable as ``templates/<name>``), with the variables it passes."""
    from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PrefixLoader
    from jupyterhub.app import JupyterHub

    from pangeohub.lab.home import PAGES

    base = JupyterHub()._template_paths_default()[0]
    loader = ChoiceLoader(
        [
            PrefixLoader({"templates": FileSystemLoader([base])}, "/"),
            FileSystemLoader([PAGES, base]),
        ]
    )
    env = Environment(loader=loader, autoescape=True)
    page = {"static_url": lambda *a, **k: "/static", "base_url": "/hub/", "user": None}
    return env.get_template(name).render(**page, **context)


@pytest.mark.parametrize(
    "uri, heading",
    [
        ("/hub/spawn/grace/climate-run2?_xsrf=x", "Start your server <code>climate-run2</code>"),
        ("/hub/spawn/grace?_xsrf=x", "Start your default server"),
        ("/hub/spawn?_xsrf=x", "Start your default server"),
    ],
)
def test_the_spawn_page_names_the_server_it_starts(uri, heading):
    page = render_hub_page("spawn.html", url=uri)
    assert heading in " ".join(page.split()), page
    assert "Server Options" not in page


def test_the_starting_page_names_the_server_that_starts():
    named = render_hub_page("spawn_pending.html", spawner=SimpleNamespace(name="work"))
    assert "Your server <code>work</code> is starting up." in " ".join(named.split())
    default = render_hub_page("spawn_pending.html", spawner=SimpleNamespace(name=""))
    assert "Your default server is starting up." in " ".join(default.split())
