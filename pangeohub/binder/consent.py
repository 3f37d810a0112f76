"""A launch asks first: which repositories build without asking, and proof that the
person confirmed the others.

A launch link is a plain GET any web page can send a signed-in person to. So unless the
repository is on the admin's list (``c.BinderLauncher.trusted_repositories``), the link
only shows what would be built; the build starts after the person confirms with a POST
that passes the hub's XSRF check. What that POST (or a trusted link) hands the page is a
**launch ticket**: a value signed with the hub's cookie secret that names the person,
the repository and the ref, valid for a few minutes. A browser's build stream needs it;
a request with an API token (``Authorization: token``, scope ``servers``) does not.
"""

from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

from tornado import web

from .spec import RepoSpec

TICKET = "pangeohub-binder-launch"
TICKET_PARAM = "launch_token"  # a query argument JupyterHub's request log scrubs ("token")
TICKET_MINUTES = 10


def _normal(url: str) -> str | None:
    """``scheme://host[:port]/path`` without a trailing ``/`` or ``.git``, lower-case
    scheme and host; None for a URL a pattern must never match (dot segments, a query,
    credentials, backslashes)."""
    parts = urlsplit(url)
    if parts.query or parts.fragment or "@" in parts.netloc or "\\" in url:
        return None
    segments = parts.path.split("/")
    if any(s in (".", "..") or "%" in s for s in segments):
        return None
    path = parts.path.rstrip("/").removesuffix(".git")
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{path}"


def _pattern(pattern: str) -> re.Pattern:
    """``*`` matches within one path segment, never across ``/``."""
    normal = _normal(pattern.replace("*", "\x00")) or ""
    return re.compile("".join("[^/]*" if c == "\x00" else re.escape(c) for c in normal) + r"\Z")


def is_trusted(url: str, patterns: list[str]) -> bool:
    """Whether the repository at ``url`` matches one of the admin's ``patterns``."""
    normal = _normal(url)
    return normal is not None and any(_pattern(p).match(normal) for p in patterns if p)


def issue_ticket(handler: web.RequestHandler, username: str, repo: RepoSpec) -> str:
    """A ticket for ``username`` to build ``repo`` (signed by the hub, short-lived)."""
    value = json.dumps([username, repo.url, repo.ref])
    return handler.create_signed_value(TICKET, value).decode("ascii")


def ticket_allows(handler: web.RequestHandler, ticket: str, username: str, repo: RepoSpec) -> bool:
    """Whether ``ticket`` is the hub's, still valid, for this person, repository and ref."""
    if not ticket:
        return False
    value = web.decode_signed_value(
        handler.application.settings["cookie_secret"],
        TICKET,
        ticket,
        max_age_days=TICKET_MINUTES / (24 * 60),
    )
    if value is None:
        return False
    try:
        return json.loads(value) == [username, repo.url, repo.ref]
    except ValueError:
        return False
