"""``pangeohub-environments``: build the environments, add a package for everyone, list.

Reads the hub's own configuration (``-f jupyterhub_config.py``, as ``jupyterhub -f``
does), so it builds exactly what the hub's servers will start in::

    pangeohub-environments build            # what the profiles need (make run does this)
    pangeohub-environments add xarray-regrid    # for everyone, from the next start on
    pangeohub-environments list pangeo      # packages and versions
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from pathlib import Path

from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

from ..policy import PangeoPolicy
from .build import Builder, BuildFailed
from .settings import Environments
from .spec import EnvironmentSpec, SpecError


class Failure(Exception):
    """What went wrong, in one or two sentences for the admin."""


def load_config(path: str) -> Config:
    """The hub's merged configuration from its config file (as ``jupyterhub -f``)."""
    config_file = Path(path).resolve()
    if not config_file.is_file():
        raise Failure(f"{path} is not a file; pass the hub's config file with -f.")
    loader = PyFileConfigLoader(config_file.name, path=str(config_file.parent))
    # pangeohub.configure's start-up lines ("... not built yet: build ahead with this
    # command", what is isolated) are for the hub's log, not this command's output
    hub_log = logging.getLogger("JupyterHub")
    was_disabled, hub_log.disabled = hub_log.disabled, True
    try:
        return loader.load_config()
    except SystemExit as error:  # pangeohub.configure refused the configuration
        raise Failure(str(error)) from None
    finally:
        hub_log.disabled = was_disabled


def profile_environments(config: Config, settings: Environments) -> list[str]:
    """The environments the hub's profiles run in, default profile's first."""
    profiles = PangeoPolicy(config=config).all_profiles()
    profiles.sort(key=lambda p: not p.default)
    return list(dict.fromkeys(settings.environment_of(p) for p in profiles))


def say(line: str) -> None:
    print(line, flush=True)


async def build(settings: Environments, names: list[str]) -> None:
    builder = Builder(settings)
    for name in names:
        current = builder.current(name)
        if current is not None:
            say(f"{name}: up to date (version {current.key}, {len(current.packages)} packages).")
            continue
        started = time.monotonic()
        say(f"{name}: building (a first build downloads its packages; later ones reuse them).")
        try:
            version = await builder.ensure(name, lambda line: say(f"  {line}"))
        except BuildFailed as failure:
            raise Failure(f"{name}: {failure.message}\n{failure.detail}") from None
        say(f"{name}: ready (version {version.key}) in {time.monotonic() - started:.0f} s.")


def _normal(requirement: str) -> str:
    import re

    return re.split(r"[\s\[<>=!~;@]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


async def add(settings: Environments, name: str, packages: list[str], dry_run: bool) -> None:
    """Add ``packages`` to ``name`` for everyone: a new version, for starts from now on."""
    spec = EnvironmentSpec.of(settings, name)
    builder = Builder(settings)
    before = builder.current(name)
    existing = spec.added_packages()
    replaced = {_normal(p) for p in packages}
    kept = [p for p in existing if _normal(p) not in replaced]
    say(
        f"This adds {', '.join(packages)} to the environment {name} for everyone: it "
        "builds a new version (uv's cache makes that quick), which every server started "
        "from now on gets. Running servers keep their version until they restart; versions "
        "no server runs any more are removed."
    )
    say(f"The admin's additions are kept in {spec.added}.")
    if dry_run:
        return
    spec.added.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    previous = spec.added.read_text() if spec.added.exists() else None
    spec.added.write_text("\n".join([*kept, *packages]) + "\n")
    try:
        version = await builder.ensure(name, lambda line: say(f"  {line}"))
    except BuildFailed as failure:
        if previous is None:
            spec.added.unlink()
        else:
            spec.added.write_text(previous)
        raise Failure(
            f"Could not add {', '.join(packages)} to {name}; nothing changed.\n"
            f"{failure.message}\n{failure.detail}"
        ) from None
    for requirement in packages:
        found = version.package_version(_normal(requirement))
        say(f"{requirement}: {'installed, version ' + found if found else 'not found'}.")
    old = f" (was {before.key})" if before is not None else ""
    say(f"{name} is now version {version.key}{old}; new servers start in it.")


def show(settings: Environments, name: str) -> None:
    version = Builder(settings).current(name)
    if version is None:
        raise Failure(f"{name} is not built yet: run `pangeohub-environments build {name}`.")
    say(f"{name} version {version.key} ({len(version.packages)} packages):")
    for package in version.packages:
        say(f"  {package['name']}=={package['version']}")


def main(argv: list[str] | None = None) -> int:
    summary = __doc__.split("\n")[0]
    parser = argparse.ArgumentParser(prog="pangeohub-environments", description=summary)
    parser.add_argument(
        "-f", "--config", default="jupyterhub_config.py", help="the hub's config file"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    build_cmd = commands.add_parser("build", help="build what the profiles need (or NAMEs)")
    build_cmd.add_argument("names", nargs="*")
    add_cmd = commands.add_parser("add", help="add packages to an environment for everyone")
    add_cmd.add_argument("packages", nargs="+")
    add_cmd.add_argument("-e", "--environment", help="default: the default profile's")
    add_cmd.add_argument("-n", "--dry-run", action="store_true", help="only say what it does")
    list_cmd = commands.add_parser("list", help="an environment's packages and versions")
    list_cmd.add_argument("name", nargs="?")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        config = load_config(args.config)
        settings = Environments(config=config)
        if not settings.enabled:
            raise Failure("c.Environments.enabled is off: servers run the hub's own Python.")
        default = profile_environments(config, settings)[:1] or [settings.default_environment]
        if args.command == "build":
            asyncio.run(build(settings, args.names or profile_environments(config, settings)))
        elif args.command == "add":
            name = args.environment or default[0]
            asyncio.run(add(settings, name, args.packages, args.dry_run))
        else:
            show(settings, args.name or default[0])
    except (Failure, SpecError, ValueError) as error:
        print(f"pangeohub-environments: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
