"""What a repository asks for, read from its files as repo2docker reads them.

The files come from ``binder/`` when the repository has one (then the root's are ignored,
as on mybinder.org), else from the root: ``runtime.txt`` (``python-3.X``),
``environment.yml`` (its ``python`` version, its other dependencies and its ``pip:``
section), ``requirements.txt``, ``postBuild`` and ``start``; a ``pyproject.toml`` or
``setup.py`` at the root (with no ``binder/``) is installed as a package.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from .spec import LaunchError

_RUNTIME = re.compile(r"^python-(\d+)(?:\.(\d+))?(?:\.\d+)?$")
# conda's version syntax (numpy=1.26, numpy>=1.2, "numpy 1.2") read as a pip requirement.
_CONDA_DEP = re.compile(r"^([A-Za-z0-9_.-]+)\s*(?:(==|>=|<=|>|<|!=|=)\s*([^\s=]+))?")
# Conda packages that are the environment itself, not something to install.
_CONDA_BUILTINS = {"python", "pip", "setuptools", "wheel"}


@dataclass
class Recipe:
    """The build steps a repository's files call for."""

    config_dir: str = ""  # "binder" or "" (the root)
    python: str | None = None  # "3.11": what runtime.txt or environment.yml ask for
    python_from: str = ""
    requirements: str | None = None  # requirements.txt, relative to the checkout
    conda_requirements: list[str] = field(default_factory=list)  # from environment.yml
    pip_requirements: list[str] = field(default_factory=list)  # its pip: section
    install_project: bool = False
    post_build: str | None = None
    start: str | None = None

    def files(self) -> list[str]:
        """The files this recipe came from, for the build log."""
        found = [self.python_from] if self.python_from else []
        if self.conda_requirements or self.pip_requirements:
            found.append(self._path("environment.yml"))
        for name in (self.requirements, self.post_build, self.start):
            if name:
                found.append(name)
        if self.install_project:
            found.append("pyproject.toml/setup.py")
        return sorted(set(found))

    def _path(self, name: str) -> str:
        return f"{self.config_dir}/{name}" if self.config_dir else name


def _conda_to_pip(dep: str) -> str:
    match = _CONDA_DEP.match(dep.strip())
    if not match:
        return dep.strip()
    name, op, version = match.groups()
    if not op:
        return name
    return f"{name}{'==' if op == '=' else op}{version.rstrip('*').rstrip('.')}" + (
        ".*" if op == "=" and version.endswith("*") else ""
    )


def read_recipe(checkout: Path) -> Recipe:
    """The :class:`Recipe` of the repository checked out at ``checkout`` (or a 4xx)."""
    binder = checkout / "binder"
    config = binder if binder.is_dir() and not binder.is_symlink() else checkout
    recipe = Recipe(config_dir="binder" if config == binder else "")

    def present(name: str) -> Path | None:
        path = config / name
        return path if path.is_file() and not path.is_symlink() else None

    if runtime := present("runtime.txt"):
        text = runtime.read_text(errors="replace").strip()
        match = _RUNTIME.match(text)
        if not match:
            raise LaunchError(
                422,
                f"{recipe._path('runtime.txt')} says {text[:60]!r}; this hub reads only "
                "'python-3.X' there (for example python-3.11).",
            )
        recipe.python = match.group(1) + (f".{match.group(2)}" if match.group(2) else "")
        recipe.python_from = recipe._path("runtime.txt")
    for name in ("environment.yml", "environment.yaml"):
        if env_file := present(name):
            _read_environment(recipe, env_file, recipe._path(name))
            break
    if present("requirements.txt"):
        recipe.requirements = recipe._path("requirements.txt")
    if present("postBuild"):
        recipe.post_build = recipe._path("postBuild")
    if present("start"):
        recipe.start = recipe._path("start")
    if not recipe.config_dir:
        recipe.install_project = any(
            (checkout / n).is_file() for n in ("pyproject.toml", "setup.py")
        )
    return recipe


def _read_environment(recipe: Recipe, path: Path, shown: str) -> None:
    try:
        data = yaml.safe_load(path.read_text(errors="replace")) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise LaunchError(
            422, f"{shown} is not valid YAML{where}; fix it and launch again."
        ) from None
    dependencies = data.get("dependencies") if isinstance(data, dict) else None
    if not isinstance(dependencies, list):
        raise LaunchError(422, f"{shown} has no 'dependencies:' list.")
    for dep in dependencies:
        if isinstance(dep, dict) and isinstance(dep.get("pip"), list):
            recipe.pip_requirements += [str(d) for d in dep["pip"]]
        elif isinstance(dep, str):
            name = re.split(r"[\s=<>!]", dep.strip(), maxsplit=1)[0].split("::")[-1]
            if name == "python":
                version = re.search(r"(\d+)(?:\.(\d+))?", dep[len("python") :])
                if version and not recipe.python:
                    recipe.python = version.group(1) + (
                        f".{version.group(2)}" if version.group(2) else ""
                    )
                    recipe.python_from = shown
            elif name.lower() not in _CONDA_BUILTINS:
                recipe.conda_requirements.append(_conda_to_pip(dep.split("::")[-1]))


def recipe_from_json(text: str) -> Recipe:
    """The :class:`Recipe` a reading child printed (or the LaunchError it reported)."""
    data = json.loads(text)
    if "error" in data:
        raise LaunchError(422, str(data["error"])[:500])
    recipe = Recipe()
    for name, default in asdict(recipe).items():
        value = data.get(name, default)
        if isinstance(default, list):
            value = [str(v) for v in value] if isinstance(value, list) else []
        elif isinstance(default, bool):
            value = bool(value)
        elif value is not None:
            value = str(value)
        setattr(recipe, name, value)
    if recipe.config_dir not in ("", "binder"):
        raise LaunchError(422, "The repository's files could not be read.")
    for name, file in (("requirements", "requirements.txt"), ("post_build", "postBuild"),
                       ("start", "start")):  # fmt: skip
        if getattr(recipe, name) not in (None, recipe._path(file)):
            raise LaunchError(422, "The repository's files could not be read.")
    return recipe


def main(argv: list[str] | None = None) -> int:
    """``python -m pangeohub.binder.recipe <checkout>``: the recipe as one JSON line.

    The builder runs this as the build's own account, so root never reads a file of
    the checkout, which the build's account can change."""
    checkout = Path((argv if argv is not None else sys.argv[1:])[0])
    try:
        print(json.dumps(asdict(read_recipe(checkout))))
    except LaunchError as error:
        print(json.dumps({"error": error.message}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
