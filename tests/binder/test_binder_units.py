"""The launch's parts in-process: reading launch specs and repositories' files, and the
builder's limits (time, size, Python version, conda-only packages, eviction) on a real
Git repository over HTTP and the real uv, as the hub's own account (no hub)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from traitlets.config import Config

from pangeohub.binder.builder import BinderBuilder, env_key
from pangeohub.binder.launcher import BinderLauncher
from pangeohub.binder.recipe import read_recipe
from pangeohub.binder.spec import LaunchError, landing_path, parse_spec
from pangeohub.policy import PangeoPolicy

from .gitrepo import ServedRepos, make_wheel, readable_wheels


def test_launch_specs_read_as_binderhub_writes_them():
    repo = parse_spec("gh", "pangeo-data/pangeo-tutorial/main", "http://127.0.0.1:9")
    assert (repo.url, repo.ref, repo.name) == (
        "http://127.0.0.1:9/pangeo-data/pangeo-tutorial",
        "main",
        "pangeo-tutorial",
    )
    repo = parse_spec("git", "https%3A%2F%2Fexample.org%2Fgroup%2Fthing.git/v1.0")
    assert (repo.url, repo.ref, repo.name) == (
        "https://example.org/group/thing.git",
        "v1.0",
        "thing",
    )
    assert landing_path(None, "notebooks/a.ipynb") == "lab/tree/notebooks/a.ipynb"
    assert landing_path("lab/tree/x.ipynb", None) == "lab/tree/x.ipynb"
    assert landing_path("", "") == ""


@pytest.mark.parametrize(
    ("provider", "spec", "status"),
    [
        ("svn", "a/b/c", 404),
        ("gh", "org/repo", 400),
        ("gh", "org/re po/main", 400),
        ("gh", "org/repo/-rf", 400),
        ("git", "file%3A%2F%2F%2Fetc/main", 400),
        ("git", "https%3A%2F%2Fuser%3Apw%40example.org%2Fr/main", 400),
    ],
)
def test_bad_specs_are_refused_with_a_status(provider, spec, status):
    with pytest.raises(LaunchError) as refused:
        parse_spec(provider, spec)
    assert refused.value.status == status and refused.value.message


@pytest.mark.parametrize("limit", [1, 5, 9, 10, 20, 30])
def test_a_launched_servers_name_keeps_the_hubs_name_rule(limit):
    config = Config()
    config.PangeoPolicy.server_name_max_length = limit
    launcher = BinderLauncher(config=config)
    repo = parse_spec("gh", "pangeo-data/Pangeo_Tutorial.2024/main", "http://127.0.0.1:9")
    name = launcher.server_name(repo, "0f3a9c2e5b7d1a4c6e8f0b2d4a6c8e0f1a3b5c7d")
    PangeoPolicy(config=config).check_server_name(name)  # raises if outside the rule
    assert "0f3a9c2"[: min(7, limit - 1)] in name and len(name) <= limit
    assert name.startswith("pangeo") == (limit >= 14)  # the repository's name, if room


def test_landing_outside_the_server_is_refused():
    for bad in ("https://evil.example/", "lab/../../hub/admin", "javascript:alert(1)"):
        with pytest.raises(LaunchError):
            landing_path(bad, None)


def test_repository_files_are_read_like_repo2docker(tmp_path):
    (tmp_path / "binder").mkdir()
    (tmp_path / "binder" / "environment.yml").write_text(
        "channels: [conda-forge]\ndependencies:\n  - python=3.11\n  - numpy=1.26\n"
        "  - conda-forge::xarray>=2024.1\n  - pip\n  - pip:\n    - h14tinypkg==1.0\n"
    )
    (tmp_path / "binder" / "postBuild").write_text("#!/bin/sh\n")
    (tmp_path / "requirements.txt").write_text("ignored-because-binder-exists\n")
    (tmp_path / "setup.py").write_text("")
    recipe = read_recipe(tmp_path)
    assert recipe.config_dir == "binder" and recipe.python == "3.11"
    assert recipe.conda_requirements == ["numpy==1.26", "xarray>=2024.1"]
    assert recipe.pip_requirements == ["h14tinypkg==1.0"]
    assert recipe.requirements is None and not recipe.install_project
    assert recipe.post_build == "binder/postBuild" and recipe.start is None

    root = tmp_path / "root"
    root.mkdir()
    (root / "runtime.txt").write_text("python-3.11\n")
    (root / "pyproject.toml").write_text("")
    recipe = read_recipe(root)
    assert recipe.python == "3.11" and recipe.install_project
    (root / "runtime.txt").write_text("r-4.1-2022-01-01\n")
    with pytest.raises(LaunchError, match="python-3.X"):
        read_recipe(root)


# --- the builder, on a real repository and uv ---------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    repos = ServedRepos(tmp_path_factory.mktemp("h14units") / "served")
    yield repos
    repos.stop()


@pytest.fixture(scope="module")
def wheels():
    with readable_wheels("h14-unit-wheels-", "h14tinypkg", "1.0", "VALUE = 1\n") as directory:
        yield directory


def builder(tmp_path, wheels, **settings) -> BinderBuilder:
    config = Config()
    config.Isolation.enabled = False  # steps as this account: no hub, no people here
    config.BinderBuilder.env_root = str(tmp_path / "binder")
    config.BinderBuilder.find_links = [str(wheels)]
    config.BinderBuilder.offline = True
    for key, value in settings.items():
        setattr(config.BinderBuilder, key, value)
    return BinderBuilder(config=config)


def build(b: BinderBuilder, served: ServedRepos, name: str, ref: str = "main") -> list[dict]:
    repo = parse_spec("gh", f"h14org/{name}/{ref}", served.url)

    async def run():
        commit = await b.resolve(repo, "h14unit")
        return [e async for e in b.build(repo, commit, "h14unit")]

    return asyncio.run(run())


def test_a_python_other_than_the_hubs_is_refused_by_name(tmp_path, served, wheels):
    served.publish("h14org", "oldpy", {"runtime.txt": "python-2.7\n"})
    events = build(builder(tmp_path, wheels), served, "oldpy")
    assert events[-1]["phase"] == "failed"
    assert "runtime.txt asks for Python 2.7" in events[-1]["message"]
    assert not os.listdir(tmp_path / "binder" / "envs")


def test_a_conda_only_package_is_named(tmp_path, served, wheels):
    served.publish(
        "h14org",
        "condaonly",
        {"environment.yml": "dependencies:\n  - h14condaonlypkg=2.0\n  - pip:\n    - h14tinypkg\n"},
    )
    events = build(builder(tmp_path, wheels), served, "condaonly")
    assert events[-1]["phase"] == "failed"
    assert events[-1]["message"].startswith("Installing environment.yml's dependencies")
    assert "h14condaonlypkg==2.0 could not be installed" in events[-1]["message"]
    assert "not conda" in events[-1]["message"]


def test_a_build_past_its_time_limit_is_stopped_and_removed(tmp_path, served, wheels):
    served.publish("h14org", "slow", {"postBuild": "#!/bin/sh\necho started\nexec sleep 600\n"})
    started = time.monotonic()
    events = build(builder(tmp_path, wheels, timeout=8), served, "slow")
    assert time.monotonic() - started < 30
    assert events[-1]["phase"] == "failed" and "took too long" in events[-1]["message"]
    assert "c.BinderBuilder.timeout" in events[-1]["message"]
    assert not os.listdir(tmp_path / "binder" / "envs")
    assert not os.listdir(tmp_path / "binder" / "building")


def test_a_build_past_its_size_limit_is_refused(tmp_path, served, wheels):
    served.publish(
        "h14org",
        "big",
        {"postBuild": '#!/bin/sh\nhead -c 3000000 /dev/zero > "$VIRTUAL_ENV/blob"\n'},
    )
    events = build(builder(tmp_path, wheels, max_size=2_000_000), served, "big")
    assert events[-1]["phase"] == "failed" and "c.BinderBuilder.max_size" in events[-1]["message"]
    assert not os.listdir(tmp_path / "binder" / "envs")


def test_environments_are_evicted_least_recently_launched_first(tmp_path, served, wheels):
    b = builder(tmp_path, wheels)
    keys = []
    for name in ("evict-a", "evict-b", "evict-c"):
        commit = served.publish("h14org", name, {"requirements.txt": "h14tinypkg\n"})
        events = build(b, served, name)
        assert events[-1]["phase"] == "built", events[-1]
        keys.append(env_key(f"{served.url}/h14org/{name}", commit))
    os.utime(b.root / "used" / keys[0], (1, 1))  # a launched long ago
    os.utime(b.root / "used" / keys[1], (2, 2))
    b.total_size = sum(b.environment(k).meta["size"] for k in (keys[0], keys[2]))
    removed = b.evict(in_use={keys[0]})  # a is in use by a running server: kept
    assert removed == [keys[1]]
    assert b.environment(keys[1]) is None and not (b.root / "envs" / keys[1]).exists()
    assert b.environment(keys[0]) is not None and b.environment(keys[2]) is not None


@pytest.mark.parametrize("cls", [BinderBuilder, BinderLauncher])
def test_every_setting_is_documented(cls):
    text = (Path(__file__).resolve().parents[2] / "docs" / "binder.md").read_text()
    for name, trait in cls.class_own_traits(config=True).items():
        assert f"`c.{cls.__name__}.{name}`" in text, f"{cls.__name__}.{name} is not in binder.md"
        assert trait.help, f"{cls.__name__}.{name} has no help="


IN_TREE_BACKEND = """
import base64, hashlib, zipfile

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    dist = "h14project-0.1.dist-info"
    files = {
        "h14project.py": open("h14project.py").read(),
        dist + "/METADATA": "Metadata-Version: 2.1\\nName: h14project\\nVersion: 0.1\\n",
        dist + "/WHEEL": "Wheel-Version: 1.0\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(path + ",sha256=" + digest.decode() + "," + str(len(text.encode())))
    files[dist + "/RECORD"] = "\\n".join(record + [dist + "/RECORD,,"]) + "\\n"
    name = "h14project-0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel_directory + "/" + name, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return name
"""


def test_a_repository_with_pyproject_is_installed_as_a_package(tmp_path, served, wheels):
    # An in-tree build backend (PEP 517 backend-path): builds offline, with isolation.
    served.publish(
        "h14org",
        "project",
        {
            "pyproject.toml": (
                '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n'
            ),
            "backend.py": IN_TREE_BACKEND,
            "h14project.py": "ANSWER = 42\n",
        },
    )
    b = builder(tmp_path, wheels)
    events = build(b, served, "project")
    assert events[-1]["phase"] == "built", events[-1].get("log")
    python = b.environment(events[-1]["environment"]).python
    answer = subprocess.run(
        [python, "-c", "import h14project; print(h14project.ANSWER)"],
        capture_output=True,
        text=True,
        cwd="/",
        check=True,
    )
    assert answer.stdout.strip() == "42"


def test_builds_are_limited_per_person_and_queued_per_hub(tmp_path, served, wheels):
    gate = tmp_path / "go"
    served.publish(
        "h14org",
        "gated",
        {
            "postBuild": (
                f"#!/bin/sh\nfor i in $(seq 300); do [ -e {gate} ] && exit 0; sleep 0.1; done\n"
            )
        },
    )
    served.publish("h14org", "other", {"requirements.txt": "h14tinypkg\n"})
    b = builder(tmp_path, wheels, max_builds=1, max_builds_per_user=1)

    async def run():
        gated = parse_spec("gh", "h14org/gated/main", served.url)
        other = parse_spec("gh", "h14org/other/main", served.url)
        first = b.build(gated, await b.resolve(gated, "h14one"), "h14one")
        seen = [await anext(first)]
        while seen[-1]["phase"] != "building":  # h14one's build holds the hub's one slot
            seen.append(await anext(first))
        with pytest.raises(LaunchError) as refused:  # h14one may not start a second one
            b.check_can_build("h14one")
        assert refused.value.status == 429
        second = b.build(other, await b.resolve(other, "h14two"), "h14two")
        waiting = await anext(second)  # h14two waits its turn
        gate.touch()
        rest = [e async for e in first]
        after = [e async for e in second]
        return waiting, rest, after

    waiting, rest, after = asyncio.run(run())
    assert waiting["phase"] == "waiting" and "build slot" in waiting["message"]
    assert rest[-1]["phase"] == "built" and after[-1]["phase"] == "built"


def test_links_a_build_leaves_are_never_followed_by_root(tmp_path, served, wheels):
    victim = tmp_path / "victim.txt"
    victim.write_text("untouched\n")
    victim.chmod(0o600)
    served.publish(
        "h14org",
        "links",
        {
            "binder/start": '#!/bin/sh\nexec "$@"\n',
            "binder/postBuild": (
                "#!/bin/sh\nset -e\n"
                f'ln -s {victim} "$REPO_DIR/../pangeohub-binder.json"\n'
                'ln -s /usr/bin/env "$VIRTUAL_ENV/linked"\n'
            ),
        },
    )
    events = build(builder(tmp_path, wheels), served, "links")
    assert events[-1]["phase"] == "built", events[-1]
    assert victim.read_text() == "untouched\n" and (victim.stat().st_mode & 0o777) == 0o600

    # A link out of the environment to where others than root can write is refused:
    # whoever can change its target could change every later launch.
    served.publish(
        "h14org", "links", {"binder/postBuild": f'#!/bin/sh\nln -s {victim} "$VIRTUAL_ENV/x"\n'}
    )
    events = build(builder(tmp_path, wheels), served, "links")
    assert events[-1]["phase"] == "failed", events[-1]
    assert "env/x is a link to" in events[-1]["message"]
    assert "others than root can change" in events[-1]["message"]
    assert victim.read_text() == "untouched\n" and (victim.stat().st_mode & 0o777) == 0o600

    served.publish(
        "h14org",
        "links",
        {"binder/postBuild": f'#!/bin/sh\nln -sf {victim} "$REPO_DIR/binder/start"\n'},
    )
    events = build(builder(tmp_path, wheels), served, "links")
    assert events[-1]["phase"] == "failed" and "not a plain file" in events[-1]["message"]
    assert (victim.stat().st_mode & 0o777) == 0o600  # root never chmod-ed through the link


def test_a_step_ends_with_its_process_though_a_daemon_holds_its_output(monkeypatch, tmp_path):
    """A postBuild that leaves a daemon (in a session of its own) holding the output open
    does not make the build wait for its deadline."""
    from pangeohub.binder import run

    monkeypatch.setattr(run, "EXIT_CHECK", 0.05)
    monkeypatch.setattr(run, "ORPHAN_GRACE", 0.2)
    argv = ["/bin/sh", "-c", "setsid sleep 120 & echo $!; echo done"]

    async def step():
        lines = []
        async for line in run.run_step(
            argv,
            run_as=run.RunAs("h14unit"),
            cwd=str(tmp_path),
            env={"PATH": os.environ["PATH"]},
            deadline=time.monotonic() + 60,
            what="A step",
            timeout_hint="",
        ):
            lines.append(line)
        return lines

    started = time.monotonic()
    lines = asyncio.run(step())
    try:
        assert lines[1:] == ["done"]
        assert time.monotonic() - started < 30  # ended with its process, not its deadline
    finally:
        os.kill(int(lines[0]), 9)  # no build cgroup here to end it (not root)


def test_an_environment_an_older_hub_sealed_is_never_used_and_goes_unless_in_use(
    tmp_path, served, wheels
):
    """Upgrading from a hub that sealed environments where their launcher built them:
    those may hold the launcher's changes, so they are neither reused nor kept."""
    b = builder(tmp_path, wheels)
    commit = served.publish("h14org", "legacy", {"requirements.txt": "h14tinypkg\n"})
    events = build(b, served, "legacy")
    assert events[-1]["phase"] == "built", events[-1]
    legacy, running = b.root / "envs" / "legacy-old", b.root / "envs" / "running-old"
    for old in (legacy, running):
        shutil.copytree(b.environment(events[-1]["environment"]).path, old)
        meta = json.loads((old / "pangeohub-binder.json").read_text())
        del meta["seal"]  # as an older hub wrote it
        (old / "pangeohub-binder.json").write_text(json.dumps(meta))
    assert b.environment("legacy-old") is None  # a stopped server of it says: launch again
    assert b.remove_unsealed(in_use={"running-old"}) == ["legacy-old"]
    assert not legacy.exists() and running.exists()
    assert env_key(f"{served.url}/h14org/legacy", commit) == events[-1]["environment"]


def test_a_person_has_at_most_two_refs_being_resolved(tmp_path, wheels):
    """Each resolve is a git process until git_timeout: one person cannot start many."""
    import socket

    silent = socket.socket()  # accepts connections (the backlog) and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    b = builder(tmp_path, wheels, git_timeout=60)
    repo = parse_spec("git", f"http%3A%2F%2F127.0.0.1%3A{silent.getsockname()[1]}%2Fr/main")

    async def run():
        hanging = [asyncio.ensure_future(b.resolve(repo, "h14one")) for _ in range(2)]
        while sum(b._resolving.values()) < 2:
            await asyncio.sleep(0.01)
        with pytest.raises(LaunchError) as refused:
            await b.resolve(repo, "h14one")
        other = asyncio.ensure_future(b.resolve(repo, "h14two"))  # someone else is not held
        await asyncio.sleep(0)
        assert b._resolving.get("h14two") == 1
        for task in (*hanging, other):
            task.cancel()
        await asyncio.gather(*hanging, other, return_exceptions=True)
        return refused.value

    try:
        refused = asyncio.run(run())
    finally:
        silent.close()
    assert refused.status == 429 and "waiting for their repository" in refused.message
    assert b._resolving == {}


# --- the machine's settings, and the environment a launch is made on ----------------


def test_uv_steps_run_with_the_machines_settings_read_by_the_hub(
    tmp_path, served, wheels, monkeypatch
):
    """The build's account cannot read the hub's pip.conf (as root, under /root): the hub
    reads it and passes uv's variables, with the system trust store and the proxy; every
    step gets the proxy, only uv's steps the index. The builder's own settings win."""
    pip_conf = tmp_path / "pip.conf"
    pip_conf.write_text("[global]\nindex-url = https://mirror.invalid/simple\n")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(pip_conf))
    monkeypatch.setenv("XDG_CONFIG_DIRS", str(tmp_path / "no-system-config"))
    monkeypatch.setenv("HOME", str(tmp_path))  # no user-level pip or uv files
    monkeypatch.setenv("https_proxy", "http://proxy.invalid:3128")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    for name in [n for n in os.environ if n.startswith("UV_")]:
        monkeypatch.delenv(name)
    seen = tmp_path / "seen"
    seen.mkdir()
    uv = tmp_path / "uv"  # uv as the machine has it, saying what it was run with
    uv.write_text(f'#!/bin/sh\nenv > {seen}/"uv-$$"\nexec {BinderBuilder().uv} "$@"\n')
    uv.chmod(0o755)
    served.publish(
        "h14org",
        "machine",
        {"requirements.txt": "h14tinypkg\n", "postBuild": f"#!/bin/sh\nenv > {seen}/postBuild\n"},
    )
    b = builder(tmp_path, wheels, uv=str(uv))
    events = build(b, served, "machine")
    assert events[-1]["phase"] == "built", events[-1]
    runs = [dict(line.split("=", 1) for line in p.read_text().splitlines() if "=" in line)
            for p in seen.glob("uv-*")]  # fmt: skip
    assert len(runs) >= 2  # the venv and the install
    for env in runs:
        assert env["UV_SYSTEM_CERTS"] == "1" and env["https_proxy"] == "http://proxy.invalid:3128"
        assert env["UV_DEFAULT_INDEX"] == "https://mirror.invalid/simple"  # from pip.conf
        assert env["UV_CACHE_DIR"].startswith(str(b.root / "building"))  # the build's own
        assert "PIP_CONFIG_FILE" not in env
    post_build = (seen / "postBuild").read_text()
    assert "https_proxy=http://proxy.invalid:3128" in post_build
    assert "UV_DEFAULT_INDEX" not in post_build and "UV_SYSTEM_CERTS" not in post_build

    # The builder's own index wins over the machine's; c.Environments.system_certs is the
    # one switch of the trust store, for environments and launches alike.
    b = builder(tmp_path, wheels, index_url="https://builder.invalid/simple")
    b.config.Environments.system_certs = False
    env = BinderBuilder(config=b.config).uv_environment()
    assert "UV_DEFAULT_INDEX" not in env and "UV_SYSTEM_CERTS" not in env
    assert "--index-url" in BinderBuilder(config=b.config)._uv_args()


def small_environment_settings(config: Config, tmp_path: Path, wheels: Path) -> None:
    """An environment ``small`` (a wheel of its own, pangeohub's server-side parts) for
    launches to be made on."""
    make_wheel(wheels, "h14layerpkg", "1.0", "WHERE = 'the environment'\n")
    (tmp_path / "small.txt").write_text("h14layerpkg\n")
    config.Environments.enabled = True
    config.Environments.root = str(tmp_path / "environments")
    config.Environments.added_dir = str(tmp_path / "added")
    config.Environments.environments = {"small": {"requirements": [str(tmp_path / "small.txt")]}}
    config.Environments.default_environment = "small"
    config.Environments.server_packages = []
    config.Environments.find_links = [str(wheels)]
    config.Environments.offline = True
    config.Environments.compile_bytecode = False


def run_python(python: str, code: str) -> str:
    done = subprocess.run(
        [python, "-c", code], capture_output=True, text=True, cwd="/", timeout=60, check=True
    )
    return done.stdout.strip()


def layered_launch(tmp_path, served, wheels, name: str = "layered"):
    """A launch of ``h14org/<name>`` where environments are on, through LocalBuilds: the
    builder, a function launching again, and the first launch's items."""
    from types import SimpleNamespace

    from pangeohub.binder.launch import LaunchRequest
    from pangeohub.binder.local_builds import LocalBuilds

    b = builder(tmp_path, wheels)
    small_environment_settings(b.config, tmp_path, wheels)
    b = BinderBuilder(config=b.config)
    served.publish("h14org", name, {"requirements.txt": "h14tinypkg\n"})
    repo = parse_spec("gh", f"h14org/{name}/main", served.url)
    person = SimpleNamespace(name="h14unit", groups=[])
    builds = LocalBuilds(b, in_use=set)

    async def launch(profile: str = "") -> list:
        request = LaunchRequest(person, "gh", f"h14org/{name}/main", repo, "", profile)
        return [item async for item in builds.build(request)]

    return b, launch, asyncio.run(launch())


def test_a_launch_is_made_on_its_profiles_environment_and_its_version_names_it(
    tmp_path, served, wheels
):
    """Where environments are on: the profile's environment is built first (its lines in
    the launch's stream), the launch is layered on its current version (its Python, its
    packages, never the hub's), and a new version of it is a new build of the commit."""
    import sysconfig

    from pangeohub.binder.launch import Built
    from pangeohub.environments.build import Builder
    from pangeohub.environments.spec import EnvironmentSpec

    b, launch, items = layered_launch(tmp_path, served, wheels)
    assert isinstance(items[-1], Built), items[-1]
    events, commit = items[:-1], items[-1].option["commit"]
    repo_url = items[-1].option["repository"]
    assert any("Building environment small" in e["message"] for e in events)
    version = Builder(hub_part_settings(b)).current("small")
    built = events[-1]
    assert built["phase"] == "built" and built["environment"] == env_key(repo_url, commit, version)
    assert built["environment"] != env_key(repo_url, commit)  # not the hub-layered build
    launched = b.environment(built["environment"])
    assert launched.meta["layer"] == {"name": "small", "key": version.key}
    code = (
        "import sys, h14layerpkg, h14tinypkg, pangeohub; print(h14layerpkg.WHERE); "
        "print(pangeohub.__file__); print(sys.base_prefix); print('\\n'.join(sys.path))"
    )
    where, pangeohub_file, base_prefix, *path = run_python(launched.python, code).splitlines()
    assert where == "the environment"
    assert pangeohub_file.startswith(str(version.path))  # the server-side parts: its copy
    hub_site = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    assert not hub_site & set(path)  # nothing of the hub's own packages
    assert run_python(version.python, "import sys; print(sys.base_prefix)") == base_prefix

    # The same version: reused. A new version of the environment: a new build.
    assert asyncio.run(launch())[-2]["reused"] is True
    spec = EnvironmentSpec.of(hub_part_settings(b), "small")
    spec.added.parent.mkdir(exist_ok=True)
    spec.added.write_text("h14tinypkg\n")
    items = asyncio.run(launch())
    assert items[-2]["phase"] == "built" and items[-2]["reused"] is False
    newer = b.environment(items[-2]["environment"])
    assert newer.layer != launched.layer and newer.key != launched.key

    # Once the old version is removed (no server runs it) its launches go too.
    assert Builder(hub_part_settings(b)).remove_unused("small", in_use=set()) == [version.key]
    assert b.layer_gone(launched) and not b.layer_gone(newer)
    assert b.evict(in_use=set()) == [launched.key]


def hub_part_settings(b: BinderBuilder):
    from pangeohub.environments import Environments
    from pangeohub.parts import hub_part

    return hub_part(Environments, b)


def test_a_launched_server_runs_in_its_layer_and_keeps_its_version(
    tmp_path, served, wheels, monkeypatch
):
    """The local spawner starts a launch made on an environment on the launch's Python,
    with the version's Jupyter paths and pangeohub's parts (none of the hub's), reports the
    launch as its image (its Dask workers' Python), and keeps the version in its state (so
    it is not removed under it); a launch whose version is gone is refused with a 400."""
    import sys
    from types import SimpleNamespace

    from tornado import web

    from pangeohub.activity import CONFIG_DIR as ACTIVITY_CONFIG_DIR
    from pangeohub.binder.server import launched_command, launched_environment, launched_image
    from pangeohub.environments.build import Builder
    from pangeohub.environments.spec import EnvironmentSpec
    from pangeohub.spawner.local import PangeoLocalSpawner

    monkeypatch.setenv("PANGEOHUB_STATE_DIR", str(tmp_path / "state"))
    b, _, items = layered_launch(tmp_path, served, wheels, "spawned")
    version = Builder(hub_part_settings(b)).current("small")
    c = b.config
    c.ScratchService.enabled = False
    c.GatewayService.enabled = False
    c.PangeoLocalSpawner.server_root = str(tmp_path / "servers")

    def spawner(option: dict = items[-1].option, environments: bool = True):
        config = c if environments else c.copy()
        if not environments:
            config.Environments.enabled = False
        made = PangeoLocalSpawner(
            config=config, _deprecated_db_session=None, hub=SimpleNamespace(base_url="/hub/")
        )
        made.user = SimpleNamespace(name="h14unit", groups=[])
        made.user_options = {"binder": option}
        return made

    server = spawner()
    server._launch = launch = launched_environment(server)
    server.apply_start_profile()
    asyncio.run(server.prepare_start())
    assert server._environment == version
    assert server.get_state()["environment"] == {"name": "small", "key": version.key}
    assert server.profile.image == launched_image(launch)  # its Dask workers' Python
    command = launched_command(launch, list(server.cmd))
    assert command[0] == launch.python and server.cmd[0] == sys.executable
    env = server.user_env({"PATH": "/usr/bin"})
    assert env["PATH"].split(os.pathsep)[:2] == [launch.bin, version.bin]
    assert env["VIRTUAL_ENV"] == str(launch.path / "env")
    assert env["PANGEO_ENVIRONMENT"] == "small" and env["PANGEO_ENVIRONMENT_VERSION"] == version.key
    jupyter_paths = env["JUPYTER_CONFIG_PATH"] + os.pathsep + env["JUPYTER_PATH"]
    assert str(version.site_packages / "pangeohub" / "jupyter-config") in jupyter_paths
    assert ACTIVITY_CONFIG_DIR not in jupyter_paths and sys.prefix not in jupyter_paths

    # Its version removed (a newer one current, no server running it): a 400 at start.
    spec = EnvironmentSpec.of(hub_part_settings(b), "small")
    spec.added.parent.mkdir(exist_ok=True)
    spec.added.write_text("h14tinypkg\n")
    assert Builder(hub_part_settings(b)).remove_unused("small", set()) == [version.key]
    with pytest.raises(web.HTTPError) as refused:
        launched_environment(spawner())
    assert refused.value.status_code == 400

    # A launch made on the hub's packages runs only where environments are off.
    on_the_hub = {"environment": build(b, served, "spawned")[-1]["environment"]}
    with pytest.raises(web.HTTPError) as refused:
        launched_environment(spawner(on_the_hub))
    assert refused.value.status_code == 400
    assert launched_environment(spawner(on_the_hub, environments=False)).layer is None


def test_a_launch_for_a_profile_the_person_may_not_use_is_refused_before_building(tmp_path, wheels):
    from types import SimpleNamespace

    from pangeohub.binder.launch import LaunchRequest
    from pangeohub.binder.local_builds import LocalBuilds

    b = builder(tmp_path, wheels)
    small_environment_settings(b.config, tmp_path, wheels)
    b.config.PangeoPolicy.profiles = [{"display_name": "Small", "slug": "small"}]
    b = BinderBuilder(config=b.config)
    repo = parse_spec("gh", "h14org/any/main", "http://127.0.0.1:9")
    request = LaunchRequest(SimpleNamespace(name="h14unit", groups=[]), "gh", "", repo, "", "gpu")

    async def first():
        return await anext(LocalBuilds(b, in_use=set).build(request))

    with pytest.raises(LaunchError) as refused:
        asyncio.run(first())
    assert refused.value.status == 400 and "'small'" in refused.value.message
    assert not (tmp_path / "environments").exists()


def test_a_launched_server_finds_jupyter_in_its_environment_version_not_the_hubs(tmp_path):
    import sys
    from types import SimpleNamespace

    from pangeohub.binder.builder import Environment
    from pangeohub.binder.server import launched_variables

    layer = SimpleNamespace(prefix=tmp_path / "small" / "abc" / "env")
    launched = Environment("repo-key", tmp_path / "envs" / "repo-key", {"layer": {"name": "s"}})
    env = {"PATH": "/usr/bin", "JUPYTER_PATH": "/version/pangeohub/jupyter-data"}
    variables = launched_variables(launched, env, layer)
    assert variables["PATH"].split(os.pathsep)[0] == launched.bin
    assert variables["JUPYTER_PATH"].split(os.pathsep) == [
        "/version/pangeohub/jupyter-data",
        str(layer.prefix / "share" / "jupyter"),
    ]
    assert variables["JUPYTERLAB_DIR"] == str(layer.prefix / "share" / "jupyter" / "lab")
    assert sys.prefix not in variables["JUPYTER_CONFIG_PATH"] + variables["JUPYTER_PATH"]
    hub_layered = launched_variables(Environment("k", tmp_path, {}), {"PATH": "/usr/bin"})
    assert hub_layered["JUPYTER_PATH"] == os.path.join(sys.prefix, "share", "jupyter")
    assert "JUPYTERLAB_DIR" not in hub_layered
