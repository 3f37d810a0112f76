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

from ..hubconfig import KUBE_SPAWNERS
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


def wire_picker(c: Config) -> None:
    """Serve fancy-profiles' assets and give KubeSpawner its template (keeping the admin's
    own template paths and handlers). Under another ``c.JupyterHub.base_url`` the
    spawners keep their plain picker unless the admin asked for fancy-profiles
    (:attr:`ProfilePicker.fancy`'s default)."""
    if not ProfilePicker(config=c).active:
        return
    handlers = list(c.JupyterHub.get("extra_handlers", []))
    static = jupyterhub_fancy_profiles.STATIC_HANDLER_TUPLE
    if not any(h[0] == static[0] for h in handlers):
        c.JupyterHub.extra_handlers = [*handlers, static]
    for section in KUBE_SPAWNERS:
        paths = list(c[section].get("additional_profile_form_template_paths", []))
        for path in jupyterhub_fancy_profiles.TEMPLATE_PATHS:
            if path not in paths:
                paths.append(path)
        c[section].additional_profile_form_template_paths = paths
