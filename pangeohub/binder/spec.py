"""What a launch asks for: BinderHub's ``<provider>/<spec>`` read into a repository and a ref.

``gh/<org>/<repo>/<ref>`` (GitHub, or whatever ``github_url`` points at) and
``git/<url-encoded URL>/<ref>`` (any Git server over HTTP(S)), as BinderHub spells them.
Every refusal is a :class:`LaunchError` with a 4xx status and a sentence a person can act on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

PROVIDERS = ("gh", "git")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
# git check-ref-format's rules, the ones a URL can break.
_BAD_REF = re.compile(r"(^[-/.])|(\.\.)|([\x00-\x20~^:?*\[\\])|(@\{)|(/$)|(\.lock$)|(//)")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


class LaunchError(Exception):
    """A launch refused: ``status`` (4xx) and a ``message`` for the person."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


@dataclass(frozen=True)
class RepoSpec:
    """A repository to launch: where to fetch it and which ref."""

    provider: str
    url: str
    ref: str
    name: str  # the repository's short name, for the server's name

    @property
    def display(self) -> str:
        return f"{self.url} at {self.ref}"


def check_ref(ref: str) -> str:
    """``ref`` if Git could take it as a branch, tag or commit, else a 400."""
    if not ref or len(ref) > 200 or _BAD_REF.search(ref):
        raise LaunchError(
            400,
            f"{ref[:80]!r} is not a Git branch, tag or commit. Use a name such as 'main' "
            "or 'v1.0', or a full 40-character commit.",
        )
    return ref


def parse_spec(provider: str, spec: str, github_url: str = "https://github.com") -> RepoSpec:
    """Read BinderHub's ``<provider>/<spec>`` into a :class:`RepoSpec` (or a 4xx)."""
    if provider not in PROVIDERS:
        raise LaunchError(
            404,
            f"Unknown repository provider {provider[:40]!r}. This hub launches 'gh' "
            "(gh/<org>/<repo>/<ref>) and 'git' (git/<url-encoded URL>/<ref>).",
        )
    if provider == "gh":
        parts = spec.split("/", 2)
        if len(parts) < 3 or not parts[2]:
            raise LaunchError(
                400,
                f"gh/{spec[:80]} names no ref. Write gh/<org>/<repo>/<ref>, for example "
                "gh/pangeo-data/pangeo-tutorial/main.",
            )
        org, repo, ref = parts
        for part in (org, repo):
            if not _NAME.match(part):
                raise LaunchError(
                    400,
                    f"{part[:80]!r} is not a GitHub organisation or repository name "
                    "(letters, digits, '.', '_' and '-').",
                )
        repo = repo.removesuffix(".git")
        url = f"{github_url.rstrip('/')}/{org}/{repo}"
        return RepoSpec(provider, url, check_ref(ref), repo)
    # git/<url-encoded url>/<ref>: the URL is one path segment, so it is encoded.
    encoded, _, ref = spec.rpartition("/")
    if not encoded:
        raise LaunchError(
            400,
            "git/ needs a URL-encoded repository URL and a ref: git/<url-encoded URL>/<ref>, "
            "for example git/https%3A%2F%2Fexample.org%2Frepo.git/main.",
        )
    url = unquote(encoded)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise LaunchError(
            400,
            f"{url[:120]!r} is not an http(s) URL of a Git repository. This hub fetches "
            "repositories over HTTP(S) only.",
        )
    if parts.username or parts.password:
        raise LaunchError(400, "Put no user name or password in a repository's URL.")
    name = parts.path.rstrip("/").rsplit("/", 1)[-1].removesuffix(".git") or parts.hostname
    return RepoSpec(provider, url, check_ref(unquote(ref)), name)


def is_commit(ref: str) -> bool:
    return bool(_COMMIT.match(ref))


def landing_path(urlpath: str | None, labpath: str | None) -> str:
    """The path in the server to land on (after ``/user/<name>/<server>/``), or ''.

    ``labpath`` opens a file in JupyterLab, ``urlpath`` any path of the server; either
    must stay inside the server (no scheme, host or ``..``)."""
    if labpath:
        path = "lab/tree/" + labpath.lstrip("/")
    elif urlpath:
        path = urlpath.lstrip("/")
    else:
        return ""
    parts = urlsplit(path)
    if parts.scheme or parts.netloc or path.startswith("/") or ".." in path.split("/"):
        raise LaunchError(
            400,
            f"{path[:120]!r} is not a path inside your server. Use for example "
            "urlpath=lab/tree/index.ipynb or labpath=index.ipynb.",
        )
    return path
