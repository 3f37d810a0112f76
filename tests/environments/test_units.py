"""Environments without a hub: settings, versions, sealing, the machine's uv settings."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from pathlib import Path

import pytest
from traitlets.config import Config

from pangeohub.assembly import ConfigurationError, configure
from pangeohub.environments import Environments
from pangeohub.environments.build import Builder, BuildFailed
from pangeohub.environments.machine import uv_environment
from pangeohub.environments.seal import seal
from pangeohub.environments.spec import EnvironmentSpec
from pangeohub.environments.versions import version_of_image

from .packages import make_wheel


def settings_for(tmp_path: Path, requirements: str = "pangeotest-one\n", **extra) -> Environments:
    (tmp_path / "req.txt").write_text(requirements)
    c = Config()
    c.Environments.enabled = True
    c.Environments.root = str(tmp_path / "root")
    c.Environments.added_dir = str(tmp_path / "added")
    c.Environments.environments = {"small": {"requirements": [str(tmp_path / "req.txt")]}}
    c.Environments.server_packages = []
    for key, value in extra.items():
        setattr(c.Environments, key, value)
    return Environments(config=c)


def test_a_version_is_named_by_its_inputs(tmp_path):
    settings = settings_for(tmp_path)
    spec = EnvironmentSpec.of(settings, "small")
    first = spec.key()
    assert spec.key() == first  # the same inputs, the same version
    spec.added.parent.mkdir()
    spec.added.write_text("xarray-regrid\n")
    added = spec.key()
    assert added != first
    (tmp_path / "req.txt").write_text("pangeotest-one==2\n")
    assert spec.key() not in (first, added)


def test_machine_settings_reach_uv(tmp_path):
    pip_conf = tmp_path / "pip.conf"
    pip_conf.write_text(
        "[global]\nindex-url = https://mirror.example/simple\n"
        "extra-index-url = https://a.example/simple\n  https://b.example/simple\n"
        "cert = /etc/campus-ca.pem\nconstraint = /etc/caps.txt\n"
    )
    machine = {
        "HOME": str(tmp_path),
        "XDG_CONFIG_DIRS": str(tmp_path / "none"),
        "PIP_CONFIG_FILE": str(pip_conf),
        "HTTPS_PROXY": "http://proxy.campus:3128",
        "NO_PROXY": "localhost",
        "SECRET_OF_THE_HUB": "x",
    }
    env = uv_environment(machine, system_certs=True)
    assert env["UV_SYSTEM_CERTS"] == "1"
    assert env["HTTPS_PROXY"] == "http://proxy.campus:3128" and env["NO_PROXY"] == "localhost"
    assert env["UV_DEFAULT_INDEX"] == "https://mirror.example/simple"
    assert env["UV_INDEX"] == "https://a.example/simple https://b.example/simple"
    assert env["UV_INDEX_STRATEGY"] == "unsafe-best-match"  # pip's way with several
    assert env["SSL_CERT_FILE"] == "/etc/campus-ca.pem" and env["UV_CONSTRAINT"] == "/etc/caps.txt"
    assert "SECRET_OF_THE_HUB" not in env
    # uv's own settings win: with a uv.toml, pip's are left alone.
    (tmp_path / ".config" / "uv").mkdir(parents=True)
    (tmp_path / ".config" / "uv" / "uv.toml").write_text('index-url = "https://uv.example"\n')
    env = uv_environment(machine, system_certs=False)
    assert "UV_DEFAULT_INDEX" not in env and "UV_SYSTEM_CERTS" not in env


def test_sealing_makes_everything_read_only_without_set_id_and_follows_no_link(tmp_path):
    outside = tmp_path / "outside"
    outside.write_text("not ours")
    outside.chmod(0o666)
    tree = tmp_path / "env"
    (tree / "bin").mkdir(parents=True)
    (tree / "bin" / "tool").write_text("#!/bin/sh\n")
    (tree / "bin" / "tool").chmod(0o6777)  # set-uid and set-gid, writable by all
    (tree / "data.txt").write_text("data")
    (tree / "link").symlink_to(outside)
    os.mkfifo(tree / "fifo")
    seal(tree)
    assert stat.S_IMODE((tree / "bin" / "tool").stat().st_mode) == 0o555
    assert stat.S_IMODE((tree / "data.txt").stat().st_mode) == 0o444
    assert stat.S_IMODE(tree.stat().st_mode) == stat.S_IMODE((tree / "bin").stat().st_mode) == 0o555
    assert not (tree / "fifo").exists()
    assert stat.S_IMODE(outside.stat().st_mode) == 0o666  # the link's target is untouched
    if os.geteuid() == 0:
        assert {p.lstat().st_uid for p in tree.rglob("*")} == {0}


def test_build_add_remove_and_the_image_of_a_version(tmp_path):
    wheels = tmp_path / "wheels"
    make_wheel(wheels, "pangeotest_one", "1.0", "ONE = 1\n")
    make_wheel(wheels, "pangeotest_two", "1.0", "TWO = 2\n")
    settings = settings_for(tmp_path, find_links=[str(wheels)], offline=True)
    builder = Builder(settings)
    lines: list[str] = []
    first = asyncio.run(builder.ensure("small", lines.append))
    assert any("Building environment small" in line for line in lines)
    assert first.package_version("pangeotest-one") == "1.0"
    assert first.package_version("pangeohub")  # the server-side parts
    assert version_of_image(settings.root_path, first.image) == first
    assert version_of_image(settings.root_path, f"uv-env:{tmp_path}/elsewhere/x") is None
    assert asyncio.run(builder.ensure("small")) == first  # built once
    spec = EnvironmentSpec.of(settings, "small")
    spec.added.parent.mkdir()
    spec.added.write_text("pangeotest-two\n")
    second = asyncio.run(builder.ensure("small"))
    assert second.key != first.key and second.package_version("pangeotest-two") == "1.0"
    assert first.path.is_dir()  # kept until nothing runs it
    assert builder.remove_unused("small", in_use={first.key}) == []
    assert builder.remove_unused("small", in_use=set()) == [first.key]
    assert not first.path.exists() and second.path.is_dir()


def test_a_failed_build_leaves_nothing_to_start_in(tmp_path):
    settings = settings_for(tmp_path, "pangeotest-missing\n", offline=True)
    with pytest.raises(BuildFailed) as failed:
        asyncio.run(Builder(settings).ensure("small"))
    assert "Installing the environment's packages failed" in failed.value.message
    assert "pangeotest-missing" in failed.value.detail
    assert list((settings.root_path / "small").iterdir()) == []
    assert list((settings.root_path / ".building").glob("small-*")) == []


def test_the_hub_refuses_a_profile_in_an_undeclared_environment(tmp_path):
    c = Config()
    c.JupyterHub.spawner_class = "pangeo-local"
    c.Environments.enabled = True
    c.PangeoPolicy.profiles = [{"display_name": "GPU", "environment": "gpu"}]
    for part in ("ScratchService", "GatewayService", "CullingPolicy", "BinderLauncher"):
        c[part].enabled = False
    with pytest.raises(ConfigurationError) as refused:
        configure(c)
    assert "environment 'gpu'" in str(refused.value) and "declared: pangeo" in str(refused.value)


def test_the_picker_names_the_environment_on_one_machine():
    from pangeohub.lab.picker import describe
    from pangeohub.policy import PangeoPolicy

    c = Config()
    c.PangeoPolicy.profiles = [{"display_name": "Small", "environment": "pangeo"}]
    profile = PangeoPolicy(config=c).all_profiles()[0]
    assert describe(profile, "pangeo").endswith("· environment pangeo")
    assert describe(profile).endswith("· image pangeo/pangeo-notebook:latest")  # Kubernetes


def test_adding_a_package_says_what_it_does_and_a_failure_changes_nothing(tmp_path, capsys):
    from pangeohub.environments import cli

    wheels = tmp_path / "wheels"
    make_wheel(wheels, "pangeotest_one", "1.0", "ONE = 1\n")
    settings = settings_for(tmp_path, find_links=[str(wheels)], offline=True)
    current = asyncio.run(Builder(settings).ensure("small"))
    asyncio.run(cli.add(settings, "small", ["pangeotest-two"], dry_run=True))
    said = capsys.readouterr().out
    assert "adds pangeotest-two to the environment small for everyone" in said
    assert "Running servers keep their version until they restart" in said
    with pytest.raises(cli.Failure) as failed:
        asyncio.run(cli.add(settings, "small", ["pangeotest-missing"], dry_run=False))
    assert "Could not add pangeotest-missing to small; nothing changed." in str(failed.value)
    assert "pangeotest-missing" in str(failed.value)  # uv's own words on why
    assert not EnvironmentSpec.of(settings, "small").added.exists()
    assert Builder(settings).current("small") == current


def test_a_start_that_gives_up_waiting_does_not_stop_the_build(tmp_path):
    # A spawn that times out while the environment builds: the next start finds it built.
    wheels = tmp_path / "wheels"
    make_wheel(wheels, "pangeotest_one", "1.0", "ONE = 1\n")
    builder = Builder(settings_for(tmp_path, find_links=[str(wheels)], offline=True))

    async def scenario():
        started = asyncio.Event()
        first = asyncio.ensure_future(builder.ensure("small", lambda line: started.set()))
        await asyncio.wait_for(started.wait(), 60)
        first.cancel()  # as JupyterHub's start_timeout cancels a start
        heard: list[str] = []
        version = await builder.ensure("small", heard.append)
        return first, version, heard

    first, version, heard = asyncio.run(scenario())
    assert first.cancelled() and version.package_version("pangeotest-one") == "1.0"
    assert not any("Building environment" in line for line in heard)  # the same build


def test_the_command_reads_the_hubs_configuration_without_its_start_up_lines(
    tmp_path, monkeypatch, caplog
):
    """`pangeohub-environments build` loads jupyterhub_config.py (so pangeohub.configure
    runs): its start-up lines, such as "not built yet: build ahead with
    pangeohub-environments build", belong to the hub's log, not to this command's output."""
    from pangeohub.environments import cli

    monkeypatch.setenv("PANGEOHUB_STATE_DIR", str(tmp_path / "state"))
    config = tmp_path / "jupyterhub_config.py"
    config.write_text(
        "import logging, pangeohub\n"
        "c.JupyterHub.spawner_class = 'pangeo-local'\n"
        "c.PangeoPolicy.profiles = [{'display_name': 'Small'}]\n"
        "logging.getLogger('JupyterHub').warning('a start-up line')\n"
        "pangeohub.configure(c)\n"
    )
    with caplog.at_level(logging.INFO):
        loaded = cli.load_config(str(config))
    assert loaded.PangeoPolicy.profiles == [{"display_name": "Small"}]
    assert not [r for r in caplog.records if r.name == "JupyterHub"]
    assert not logging.getLogger("JupyterHub").disabled  # the hub's own log is untouched


def test_the_docs_name_every_package_the_pangeo_environment_asks_for():
    """docs/environments.md's table is the admin's list of what `pangeo` holds."""
    project = Path(__file__).resolve().parents[2]
    wanted = (project / "pangeohub/environments/pangeo/requirements.in").read_text()
    names = {
        line.split("[")[0].split("<")[0].split("=")[0].strip()
        for line in wanted.splitlines()
        if line.strip() and not line.startswith("#")
    }
    page = (project / "docs/environments.md").read_text()
    table = page[page.index("### What the `pangeo` environment holds") :]
    table = table[: table.index("**Left out**")].lower().replace("_", "-")
    server_side = {"jupyterhub", "setuptools"}  # said in prose: the hub's version, pkg_resources
    unnamed = {n for n in names - server_side if n.lower().replace("_", "-") not in table}
    assert not unnamed, (
        f"requirements.in asks for {sorted(unnamed)}; docs/environments.md does not say"
    )
