"""The spawn page's profile picker: jupyterhub-fancy-profiles, the one 2i2c hubs show.

jupyterhub-fancy-profiles renders KubeSpawner's ``profile_list`` (profiles with their
options, image choices and unlisted images) and posts the same form fields KubeSpawner
reads. pangeohub gives it only the profiles the person may use (the policy filters them;
the form handler still refuses a forged one with a 4xx), the resources and image in
each description, and the server's previous choice pre-selected. The local spawner
renders the same template with the same list, so both spawners show the same picker.
"""

from __future__ import annotations

from traitlets import Bool, default
from traitlets.config import Config, Configurable

from ..parts import hub_part
from ..policy import Profile

try:
    import jupyterhub_fancy_profiles
except ImportError:  # the plain picker of each spawner
    jupyterhub_fancy_profiles = None


class ProfilePicker(Configurable):
    """The spawn page's picker (``c.ProfilePicker``)."""

    fancy = Bool(
        help="""Show jupyterhub-fancy-profiles' picker (when it is installed) on both
        spawners. False: each spawner's plain list of profiles. Default: True, except
        under a ``c.JupyterHub.base_url`` other than ``/``, where fancy-profiles cannot
        load its script (it asks for ``/hub/fancy-profiles/...`` whatever the base URL).""",
    ).tag(config=True)

    @default("fancy")
    def _default_fancy(self) -> bool:
        return (self.config.JupyterHub.get("base_url", "/") or "/") == "/"

    @property
    def active(self) -> bool:
        return self.fancy and jupyterhub_fancy_profiles is not None


def describe(profile: Profile, environment: str | None = None) -> str:
    """What the picker says under a profile's name: its description, resources, and the
    image it runs (Kubernetes) or its ``environment`` (one machine)."""
    runs = f"environment {environment}" if environment else f"image {profile.image}"
    parts = [profile.description, profile.summary(), runs]
    return " · ".join(p for p in parts if p)


def mark_previous(entries: list[dict], previous: str | None) -> list[dict]:
    """Make the server's previous choice the pre-selected one (when it is still allowed)."""
    if previous and any(e["slug"] == previous for e in entries):
        for entry in entries:
            entry["default"] = entry["slug"] == previous
    return entries


def render_fancy_form(profile_list: list[dict]) -> str:
    """jupyterhub-fancy-profiles' form for ``profile_list`` (KubeSpawner's format)."""
    from jinja2 import Environment, FileSystemLoader

    env = Environment(loader=FileSystemLoader(jupyterhub_fancy_profiles.TEMPLATE_PATHS))
    env.policies["json.dumps_kwargs"] = {"sort_keys": False}  # the admin's order
    return env.get_template("form.html").render(profile_list=profile_list)


def with_picker_templates(paths: list[str], holder: Configurable) -> list[str]:
    """A spawner's form template ``paths`` (the admin's, first) with fancy-profiles' own
    after them when the picker is active in ``holder``'s configuration (KubeSpawner's
    ``additional_profile_form_template_paths``: read here, never written into ``c``)."""
    paths = list(paths or [])
    if not hub_part(ProfilePicker, holder).active:
        return paths
    return [*paths, *(p for p in jupyterhub_fancy_profiles.TEMPLATE_PATHS if p not in paths)]


def wire_picker(c: Config) -> None:
    """Serve fancy-profiles' assets at the path its script asks for (keeping the admin's
    own handlers); the Kubernetes spawner adds its template itself
    (:func:`with_picker_templates`). Under another ``c.JupyterHub.base_url`` the spawners
    keep their plain picker unless the admin asked for fancy-profiles
    (:attr:`ProfilePicker.fancy`'s default).

    ``c.JupyterHub.extra_handlers`` is deprecated in JupyterHub, whose advice is a
    service; but a service is served under ``/services/<name>/``, and fancy-profiles'
    script asks for ``/hub/fancy-profiles/static/...``, which only a hub handler serves."""
    if not ProfilePicker(config=c).active:
        return
    handlers = list(c.JupyterHub.get("extra_handlers", []))
    static = jupyterhub_fancy_profiles.STATIC_HANDLER_TUPLE
    if not any(h[0] == static[0] for h in handlers):
        c.JupyterHub.extra_handlers = [*handlers, static]
