"""``pangeohub-admin``: operate a one-machine hub (docs/operate/).

Run as the hub's account (root on a machine for a group) with the hub's environment:
``PANGEOHUB_STATE_DIR`` (or ``--state-dir``) and ``PANGEOHUB_CONFIG`` (the admin's file).
"""

from __future__ import annotations

import argparse
import getpass
import os
import subprocess
import sys
from pathlib import Path

from ..state import DEFAULT_STATE_DIR, STATE_DIR_ENV
from .hub import CONFIG_FILE, Hub


def _set_password(hub: Hub, args) -> int:
    from .accounts import generate_password, set_password

    if args.generate:
        password = generate_password()
    else:
        password = getpass.getpass(f"New password for {args.name}: ")
        if password != getpass.getpass("Again: "):
            raise CommandError("The two passwords differ; nothing changed.")
    set_password(hub, args.name, password)
    if args.generate:
        print(f"Sign-in password for {args.name} (shown once, kept only as a hash): {password}")
    else:
        print(f"Password of {args.name} set.")
    return 0


def _https(hub: Hub, args) -> int:
    from .https import HTTPS, proxy_upstream

    https = hub.part(HTTPS)
    if not https.enabled:
        raise CommandError("c.HTTPS.domain is not set in the hub's configuration: no HTTPS.")
    problem = https.problem()
    if problem:
        raise CommandError(problem)
    caddyfile = https.write_caddyfile(proxy_upstream(hub.config))
    if args.write_only:
        print(caddyfile)
        return 0
    storage = https.storage
    env = {**os.environ, "HOME": storage, "XDG_DATA_HOME": storage, "XDG_CONFIG_HOME": storage}
    command = https.command(caddyfile)
    os.execvpe(command[0], command, env)


def _install_service(hub: Hub, args) -> int:
    from .service import install, systemd_running

    written = install(hub, args.units_dir, enable=not args.no_enable)
    for path in written:
        print(f"wrote {path}")
    names = " ".join(path.name for path in written)
    if args.no_enable or not systemd_running():
        print(
            "systemd is not running here; on the VM: "
            f"systemctl daemon-reload && systemctl enable --now {names}"
        )
    else:
        print(f"enabled and started: {names}")
    return 0


def _backup(hub: Hub, args) -> int:
    from .backup import backup

    backup(hub, args.destination, scratch=args.scratch)
    return 0


def _restore(hub: Hub, args) -> int:
    from .restore import restore

    restore(hub, args.backup)
    return 0


def _upgrade(hub: Hub, args) -> int:
    from .upgrade import upgrade

    upgrade(hub, args.backup_to)
    return 0


class CommandError(RuntimeError):
    """A refusal the admin can act on (printed without a traceback)."""


COMMANDS = {
    "upgrade": (
        _upgrade,
        "after installing a new pangeohub, with the hub stopped: back up, upgrade the "
        "database (jupyterhub upgrade-db), migrate pangeohub's state",
        lambda p: p.add_argument(
            "--backup-to", type=Path, required=True, help="a new directory for the backup"
        ),
    ),
    "backup": (
        _backup,
        "back up the database, secrets and state, every server's disk (running ones frozen "
        "while copied) and the shared data into a new directory",
        lambda p: (
            p.add_argument("destination", type=Path, help="a new (or empty) directory"),
            p.add_argument("--scratch", action="store_true", help="people's scratch too"),
        ),
    ),
    "restore": (
        _restore,
        "restore a backup into this hub's state directory (a new one; the hub stopped)",
        lambda p: p.add_argument("backup", type=Path, help="a directory made by backup"),
    ),
    "install-service": (
        _install_service,
        "write the hub's systemd units (checked with systemd-analyze), enable and start them",
        lambda p: (
            p.add_argument(
                "--units-dir",
                type=Path,
                default=Path("/etc/systemd/system"),
                help="where to write the units (default: /etc/systemd/system)",
            ),
            p.add_argument(
                "--no-enable", action="store_true", help="only write and check the units"
            ),
        ),
    ),
    "https": (
        _https,
        "write the Caddyfile from c.HTTPS and run caddy (the pangeohub-https unit's command)",
        lambda p: p.add_argument(
            "--write-only", action="store_true", help="write the Caddyfile, print its path, stop"
        ),
    ),
    "set-password": (
        _set_password,
        "set a local account's password (made and approved if missing); the hub must be stopped",
        lambda p: (
            p.add_argument("name"),
            p.add_argument(
                "--generate", action="store_true", help="make a random one and print it once"
            ),
        ),
    ),
}


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="pangeohub-admin", description=__doc__.splitlines()[0])
    top.add_argument(
        "--state-dir", help="the hub's state directory (default: $PANGEOHUB_STATE_DIR or ./state)"
    )
    top.add_argument(
        "--hub-config",
        type=Path,
        default=CONFIG_FILE,
        help="the bundle's jupyterhub_config.py (default: the installed bundle's)",
    )
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, help_text, arguments) in COMMANDS.items():
        arguments(sub.add_parser(name, help=help_text, description=help_text))
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if not (args.state_dir or os.environ.get(STATE_DIR_ENV) or Path(DEFAULT_STATE_DIR).is_dir()):
        print(
            f"pangeohub-admin {args.command}: which hub? Set {STATE_DIR_ENV} (as the hub's "
            "service does) or pass --state-dir.",
            file=sys.stderr,
        )
        return 2
    hub = Hub(args.state_dir, args.hub_config)
    run = COMMANDS[args.command][0]
    try:
        return run(hub, args)
    except (CommandError, RuntimeError, OSError, ValueError, subprocess.SubprocessError) as error:
        print(f"pangeohub-admin {args.command}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
