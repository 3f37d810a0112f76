"""``pangeohub-admin``: operate a one-machine hub (docs/operate/).

Run as the hub's account (root on a machine for a group) with the hub's environment:
``PANGEOHUB_STATE_DIR`` (or ``--state-dir``) and ``PANGEOHUB_CONFIG`` (the admin's file).
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

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


class CommandError(RuntimeError):
    """A refusal the admin can act on (printed without a traceback)."""


COMMANDS = {
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
    hub = Hub(args.state_dir, args.hub_config)
    run = COMMANDS[args.command][0]
    try:
        return run(hub, args)
    except (CommandError, RuntimeError, OSError, ValueError) as error:
        print(f"pangeohub-admin {args.command}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
