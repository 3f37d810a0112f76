"""The hub's home page: each server's profile, disk and state, and the named-server limit.

A template (``templates/home.html``, extending JupyterHub's) on
``c.JupyterHub.template_paths`` after the admin's own, and one template variable,
``pangeohub_home`` (through ``c.JupyterHub.template_vars``, called with the signed-in
user), computed from the same policy the spawners apply.
"""

from __future__ import annotations

from pathlib import Path

from traitlets import Bool
from traitlets.config import Config, Configurable

from ..policy import PangeoPolicy, PolicyError, format_bytes
from .machine import Machine

TEMPLATES = str(Path(__file__).with_name("templates"))
# the spawn page and the "starting" page, naming the server (whatever HomePage says)
PAGES = str(Path(__file__).with_name("templates") / "pages")
TEMPLATE_VAR = "pangeohub_home"


class HomePage(Configurable):
    """pangeohub's home page (``c.HomePage``)."""

    enabled = Bool(
        True,
        help="""Show each server's profile, disk size and state on the hub's home page,
        and how many named servers are left. False: JupyterHub's own home page.""",
    ).tag(config=True)


def server_state(spawner) -> str:
    """What a server is doing, in a word."""
    pending = getattr(spawner, "pending", None)  # a stopped one may be a plain ORM row
    if pending:
        return {"spawn": "starting", "stop": "stopping"}.get(pending, pending)
    return "running" if getattr(spawner, "ready", False) else "stopped"


def server_summary(spawner, policy: PangeoPolicy, groups: list[str], fit=None) -> dict:
    """One server's line: its profile (the one it runs, or will run next, as ``fit``
    makes it for this machine), disk, state."""
    slug = (spawner.user_options or {}).get("profile")
    try:
        profile = policy.choose_profile(slug, groups)
    except PolicyError:
        profile = None
    if profile is not None and fit is not None:
        profile = fit(profile)
    return {
        "profile": profile.display_name if profile else "(no profile available)",
        "resources": profile.summary() if profile else "",
        "disk": format_bytes(profile.disk_size) if profile else "",
        "state": server_state(spawner),
    }


def home_summary(user) -> dict:
    """The home page's variable for ``user``: per server (by name) and the limit."""
    if user is None:
        return {}
    spawner = user.spawners[""]
    policy = getattr(spawner, "policy", None) or PangeoPolicy(parent=spawner)
    groups = [g.name for g in user.groups]
    fit = Machine.this_one().fit if _on_one_machine(spawner) else None
    servers = {s.name: server_summary(s, policy, groups, fit) for s in user.all_spawners()}
    named = sorted(n for n in servers if n)
    limit = policy.named_server_limit_for(groups)
    return {
        "servers": servers,
        "limit": limit,
        "left": max(limit - len(named), 0) if limit else None,
        "name_max": policy.server_name_max_length,
        "name_rule": policy.server_name_rule(),
    }


def _on_one_machine(spawner) -> bool:
    from ..spawner.local import PangeoLocalSpawner

    return isinstance(spawner, PangeoLocalSpawner)


def wire_home(c: Config) -> None:
    """pangeohub's pages (the spawn pages naming their server, always; the home page
    unless switched off) on the template path after the admin's own (an admin's own
    templates still win) and before JupyterHub's, and the home page's variable."""
    paths = list(c.JupyterHub.get("template_paths", []))
    wanted = [PAGES, TEMPLATES] if HomePage(config=c).enabled else [PAGES]
    if any(path not in paths for path in wanted):
        c.JupyterHub.template_paths = [*paths, *(p for p in wanted if p not in paths)]
    if not HomePage(config=c).enabled:
        return
    template_vars = dict(c.JupyterHub.get("template_vars", {}))
    template_vars.setdefault(TEMPLATE_VAR, home_summary)
    c.JupyterHub.template_vars = template_vars
