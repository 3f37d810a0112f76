"""Operating a one-machine hub for years: ``pangeohub-admin`` and what it runs.

One concern a module: :mod:`.hub` (the hub's configuration as the admin tools read it),
:mod:`.accounts` (passwords from root's shell), :mod:`.https` (caddy in front of the proxy),
:mod:`.service` (systemd units), :mod:`.backup` and :mod:`.restore` (people's trees
through :mod:`.trees`), :mod:`.upgrade` (from an earlier release), :mod:`.cli` (the
console script).
"""
