"""The image recipes under deploy/, read and run the way a build would, without Docker.

No image can be built here (no Docker engine, and the base images' registries are out of
reach), so what a build does is checked piece by piece (test_images.py):

- :func:`instructions` reads a Dockerfile (continuation lines joined, ``ARG`` defaults);
- :func:`copy_sources` lists each ``COPY``'s sources, and :func:`ignored` applies the
  recipe's ``<Dockerfile>.dockerignore`` as BuildKit does (a source it excludes is missing
  from the build context);
- :func:`run_recipe` plays the recipe's ``COPY`` and ``RUN`` steps into a directory that
  stands for the image's file system, with the base image's Python as a clean virtualenv
  (its ``RUN`` commands see the image's absolute paths moved under that directory);
- :data:`BASE_IMAGES` records, for each recipe's base image, its Python version and the
  packages the recipe's steps rely on (read from the base images' own recipes and lock
  files at the tags the recipes name).
"""

from __future__ import annotations

import fnmatch
import glob
import os
import re
import shutil
import subprocess
from pathlib import Path

from .z2jh_chart import CHART_PINNED, HUB_IMAGE

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
RECIPES = sorted(p for p in DEPLOY.rglob("Dockerfile*") if not p.name.endswith(".dockerignore"))

# base image -> what the recipe's steps rely on in it (Python minor, pins)
BASE_IMAGES = {
    # Zero to JupyterHub's hub image (z2jh_chart.HUB_IMAGE)
    f"quay.io/jupyterhub/k8s-hub:{CHART_PINNED}": {
        "python": HUB_IMAGE[CHART_PINNED]["python"],
        "packages": [f"{k}=={v}" for k, v in HUB_IMAGE[CHART_PINNED].items() if k != "python"],
    },
    # dask-gateway-server's image (dask-gateway-server/Dockerfile: python:3.13-slim-bullseye)
    "ghcr.io/dask/dask-gateway-server:2026.3.0": {
        "python": "3.13",
        "packages": ["dask-gateway-server[kubernetes]==2026.3.0"],
    },
    # pangeo-notebook (pangeo-docker-images, pangeo-notebook/conda-linux-64.lock)
    "pangeo/pangeo-notebook:2024.01.15": {
        "python": "3.11",
        "packages": [
            "pip==23.3.2",
            "jupyterhub==4.0.2",
            "jupyter_server==2.12.4",
            "jupyterlab==4.0.10",
            "tornado==6.3.3",
            "traitlets==5.14.1",
            "dask==2024.1.0",
            "distributed==2024.1.0",
            "dask-gateway==2023.9.0",
            "dask-labextension==7.0.0",
            "jupyter-resource-usage==1.0.1",
            "boto3==1.33.13",
            "google-auth==2.26.2",
        ],
        "env": {"NB_PYTHON_PREFIX": "{python_prefix}", "NB_USER": "jovyan"},
    },
}


def instructions(recipe: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, ``${ARG}`` expanded
    with the ``ARG`` defaults."""
    lines, current = [], ""
    for raw in recipe.read_text().splitlines():
        if not current and (not raw.strip() or raw.lstrip().startswith("#")):
            continue
        if raw.rstrip().endswith("\\"):
            current += raw.rstrip()[:-1] + " "
            continue
        lines.append(current + raw)
        current = ""
    args: dict[str, str] = {}
    result = []
    for line in lines:
        word, _, rest = line.strip().partition(" ")
        word = word.upper()
        if word == "ARG":
            name, _, value = rest.strip().partition("=")
            args[name] = value
        rest = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), rest.strip())
        result.append((word, rest))
    return result


def base_image(recipe: Path) -> str:
    return next(rest for word, rest in instructions(recipe) if word == "FROM")


def copy_steps(recipe: Path) -> list[tuple[list[str], str]]:
    """Each ``COPY``'s (sources, destination), options such as ``--chown`` dropped."""
    steps = []
    for word, rest in instructions(recipe):
        if word != "COPY":
            continue
        parts = [p for p in rest.split() if not p.startswith("--")]
        steps.append((parts[:-1], parts[-1]))
    return steps


def ignore_patterns(recipe: Path) -> list[str]:
    path = recipe.with_name(recipe.name + ".dockerignore")
    if not path.exists():
        return []
    return [
        line.strip()
        for line in path.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether the build context leaves ``path`` (relative to the repository) out."""
    parts = Path(path).parts
    result = False
    for pattern in patterns:
        keep = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        for i in range(1, len(parts) + 1):  # a directory excluded excludes what is inside
            prefix = "/".join(parts[:i])
            if fnmatch.fnmatch(prefix, pattern) or (
                pattern.startswith("**/") and fnmatch.fnmatch(parts[i - 1], pattern[3:])
            ):
                result = not keep
                break
    return result


def copy_sources(recipe: Path) -> list[str]:
    """Every source file or directory the recipe's ``COPY`` steps take from the context."""
    return [src for sources, _ in copy_steps(recipe) for src in sources]


def missing_sources(recipe: Path) -> list[str]:
    """Sources of ``COPY`` steps that a build of ``recipe`` (context: the repository) lacks."""
    patterns = ignore_patterns(recipe)
    missing = []
    for source in copy_sources(recipe):
        matches = glob.glob(source, root_dir=REPO)
        if not matches or all(ignored(m, patterns) for m in matches):
            missing.append(source)
    return missing


def _place(source: Path, destination: Path, into_directory: bool) -> None:
    if source.is_dir():
        shutil.copytree(source, destination, dirs_exist_ok=True, ignore=_context_ignore)
    else:
        target = destination / source.name if into_directory else destination
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


def _context_ignore(directory, names):
    return [n for n in names if n in ("__pycache__", "build") or n.endswith(".egg-info")]


# absolute paths a RUN step may write to: moved under the directory standing for the image
IMAGE_DIRECTORIES = ("/tmp", "/usr", "/etc", "/opt", "/srv", "/home", "/var")


def run_recipe(recipe: Path, root: Path, python_prefix: Path, env: dict) -> None:
    """Play ``recipe``'s COPY and RUN steps with ``root`` as the image's file system and
    ``python_prefix`` as its Python (a virtualenv made with the base image's version).

    ``RUN`` commands run in bash with the image's absolute paths that the recipe writes to
    moved under ``root``; raises ``subprocess.CalledProcessError`` with the output."""
    python_bin = str(python_prefix / "bin")
    for word, rest in instructions(recipe):
        if word == "COPY":
            *sources, dest = [p for p in rest.split() if not p.startswith("--")]
            into = dest.endswith("/") or len(sources) > 1
            for source in sources:
                for match in sorted(glob.glob(source, root_dir=REPO)):
                    _place(REPO / match, root / dest.lstrip("/"), into)
        elif word == "RUN":
            command = rest
            for top in IMAGE_DIRECTORIES:  # /tmp/pangeohub -> <root>/tmp/pangeohub
                command = re.sub(rf"(?<![\w./$}}-]){top}(?=/)", f"{root}{top}", command)
            command = re.sub(r"(?<![\w/])python3(?= )", f"{python_bin}/python", command)
            run_env = {**os.environ, **env, "PATH": f"{python_bin}:{os.environ['PATH']}"}
            run_env.pop("VIRTUAL_ENV", None)
            done = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", command],
                env=run_env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            if done.returncode:
                raise subprocess.CalledProcessError(
                    done.returncode, command, done.stdout[-3000:], done.stderr[-3000:]
                )
