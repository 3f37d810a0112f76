"""The root-side pieces of a build in-process: sealing through descriptors, the check of
the sealed tree, and which repositories a launch link builds without asking (the attacks
on the real hub are in test_binder_attacks.py)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from pangeohub.binder.consent import is_trusted
from pangeohub.binder.seal import MAX_DEPTH, SealError, seal_copy, tree_size, verify

ROOT = os.geteuid() == 0


def make_build(work: Path) -> Path:
    """A build's tree: a set-id file with a second name, links in and out, a FIFO."""
    env = work / "env"
    (env / "bin").mkdir(parents=True)
    tool = env / "bin" / "tool"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o4755)
    os.link(tool, env / "bin" / "tool-again")
    (env / "bin" / "python").symlink_to("/usr/bin/env")
    (env / "lib64").symlink_to("bin")
    os.mkfifo(env / "pipe")
    (work / "repo").mkdir()
    (work / "repo" / "README.md").write_text("hello\n")
    return env


def test_sealing_copies_into_fresh_files_without_set_id_bits(tmp_path):
    work, sealed = tmp_path / "work", tmp_path / "sealed"
    env = make_build(work)
    size = seal_copy(work, ["env", "repo"], sealed, owner=os.geteuid(), limit=2**20)
    assert size > 0
    tool = sealed / "env" / "bin" / "tool"
    again = sealed / "env" / "bin" / "tool-again"
    for copy in (tool, again):
        info = copy.lstat()
        assert stat.S_IMODE(info.st_mode) == 0o755 and info.st_nlink == 1
    assert tool.stat().st_ino != (env / "bin" / "tool").stat().st_ino  # nothing shared
    assert os.readlink(sealed / "env" / "bin" / "python") == "/usr/bin/env"
    assert not (sealed / "env" / "pipe").exists()  # only files, directories and links
    assert (sealed / "repo" / "README.md").read_text() == "hello\n"
    assert stat.S_IMODE((sealed / "repo" / "README.md").stat().st_mode) == 0o644
    verify(sealed, str(tmp_path / "final"), trusted_uids={0, os.geteuid()})


def test_a_build_that_replaced_its_environment_by_a_link_is_refused(tmp_path):
    work = tmp_path / "work"
    make_build(work)
    (work / "env").rename(work / "elsewhere")
    (work / "env").symlink_to(work / "elsewhere")
    with pytest.raises(SealError, match="left no directory env"):
        seal_copy(work, ["env", "repo"], tmp_path / "sealed", owner=os.geteuid(), limit=2**20)


def test_sealing_stops_at_its_size_limit(tmp_path):
    work = tmp_path / "work"
    make_build(work)
    (work / "repo" / "big").write_bytes(b"x" * 100_000)
    with pytest.raises(SealError, match="c.BinderBuilder.max_size"):
        seal_copy(work, ["env", "repo"], tmp_path / "sealed", owner=os.geteuid(), limit=50_000)


@pytest.mark.skipif(not ROOT, reason="only root can give a build's tree to another account")
def test_a_file_the_build_did_not_make_is_refused(tmp_path):
    """A hard link to someone else's file (root's here) inside a build is not copied."""
    work = tmp_path / "work"
    make_build(work)
    build_uid = 65534  # nobody: the build's account here
    for top, dirs, files in os.walk(work):
        for name in (*dirs, *files):
            os.chown(os.path.join(top, name), build_uid, build_uid, follow_symlinks=False)
    os.chown(work, build_uid, build_uid)
    (work / "repo" / "not-the-builds").write_text("root's\n")
    with pytest.raises(SealError, match="repo/not-the-builds was not made by the build"):
        seal_copy(work, ["env", "repo"], tmp_path / "sealed", owner=build_uid, limit=2**20)


def test_links_out_of_the_environment_must_lead_where_only_root_writes(tmp_path):
    sealed = tmp_path / "sealed"
    (sealed / "env").mkdir(parents=True)
    final = tmp_path / "envs" / "key"
    trusted = {0}
    (sealed / "env" / "python").symlink_to("/usr/bin/env")
    (sealed / "env" / "inside").symlink_to("python")
    verify(sealed, str(final), trusted_uids=trusted)
    for target in (str(tmp_path / "theirs.py"), "/tmp/anything", "../../../../../tmp/x"):
        (sealed / "env" / "out").unlink(missing_ok=True)
        (sealed / "env" / "out").symlink_to(target)
        with pytest.raises(SealError, match="env/out is a link to"):
            verify(sealed, str(final), trusted_uids=trusted)


def test_trees_nested_too_deep_are_refused(tmp_path):
    deep = tmp_path / "work"
    deep.mkdir()
    fd = os.open(deep, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(MAX_DEPTH + 2):
        os.mkdir("d", dir_fd=fd)
        child = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = child
    os.close(fd)
    with pytest.raises(SealError, match="nested more than"):
        tree_size(deep)


@pytest.mark.parametrize(
    ("url", "trusted"),
    [
        ("https://github.com/pangeo-data/pangeo-tutorial", True),
        ("https://GitHub.com/pangeo-data/pangeo-tutorial.git", True),
        ("https://github.com/pangeo-data/pangeo-tutorial/", True),
        ("https://github.com/pangeo-data/a/b", False),  # * stays within one segment
        ("https://github.com/pangeo-data/../evil/repo", False),
        ("https://github.com/pangeo-data/%2e%2e", False),
        ("https://github.com/pangeo-data-evil/repo", False),
        ("https://user@github.com/pangeo-data/repo", False),
        ("http://github.com/pangeo-data/repo", False),  # another scheme
        ("https://gitlab.example.org/group/handbook", True),
        ("https://gitlab.example.org/group/handbook-2", False),
    ],
)
def test_trusted_repositories_match_by_whole_path_segments(url, trusted):
    patterns = ["https://github.com/pangeo-data/*", "https://gitlab.example.org/group/handbook"]
    assert is_trusted(url, patterns) is trusted


def test_a_build_account_a_person_could_have_is_refused_at_start_up():
    from traitlets.config import Config

    from pangeohub.binder.builder import BinderBuilder

    for bad in ("jupyter-builds", "Build Accounts", "x" * 40):
        config = Config()
        config.BinderBuilder.build_account = bad
        with pytest.raises(ValueError, match="build_account"):
            BinderBuilder(config=config).check_build_account()
    BinderBuilder().check_build_account()  # the default: pangeohub-build-<hub id>


def test_only_a_sealed_environment_names_a_python_for_dask(tmp_path):
    from pangeohub.binder.image import python_of_image

    env = tmp_path / "env-of-someone"
    (env / "env" / "bin").mkdir(parents=True)
    (env / "env" / "bin" / "python").symlink_to("/usr/bin/env")
    (env / "pangeohub-binder.json").write_text("{}")
    os.chmod(tmp_path, 0o777)  # anyone could have put it there
    assert python_of_image(f"uv-env:{env}") is None
