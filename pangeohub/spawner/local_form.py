"""The one-machine spawner's spawn-page form: the person's profiles (or
jupyterhub-fancy-profiles' picker), beside the launch-from-a-repository fields, and how
the form's answer is read."""

from __future__ import annotations

import html

from traitlets import default
from traitlets.config import Configurable

from ..lab.picker import ProfilePicker, describe, mark_previous, render_fancy_form
from ..parts import hub_part


class ProfileForm(Configurable):
    """``options_form`` and ``options_from_form`` of :class:`.local.PangeoLocalSpawner`
    (the admin's own settings of either are honoured: these are only defaults)."""

    @default("options_form")
    def _default_options_form(self):
        return self.render_profile_picker

    def render_profile_picker(self, spawner=None) -> str:
        """The spawn page's form: the user's allowed profiles, default pre-selected."""
        profiles = self.allowed_profiles()
        if not profiles:
            return (
                "<p>No server profile is available to you. "
                "Ask a hub admin to add you to a group that may use one.</p>"
            )
        previous = (self.user_options or {}).get("profile")
        if ProfilePicker(parent=self).active:
            entries = [
                {
                    "display_name": p.display_name,
                    "slug": p.slug,
                    "description": describe(p, self.environment_label(p)),
                    "default": p.default,
                }
                for p in profiles
            ]
            if not any(e["default"] for e in entries):
                entries[0]["default"] = True
            return render_fancy_form(mark_previous(entries, previous)) + self._launch_fields()
        chosen = next((p for p in profiles if p.slug == previous), None)
        chosen = chosen or next((p for p in profiles if p.default), profiles[0])
        items = []
        for p in profiles:
            checked = " checked" if p is chosen else ""
            items.append(
                f'<label class="pangeo-profile list-group-item">'
                f'<input type="radio" name="profile" value="{html.escape(p.slug)}"{checked}> '
                f"<strong>{html.escape(p.display_name)}</strong> "
                f'<span class="text-muted">{html.escape(self.resources_line(p))}</span>'
                f"<br><small>{html.escape(p.description)}</small></label>"
            )
        picker = '<div class="list-group pangeo-profiles">' + "".join(items) + "</div>"
        return picker + self._launch_fields()

    def _launch_fields(self) -> str:
        """Launch from a repository (pangeohub.binder), beside the profiles."""
        from ..binder.form import launch_fields
        from ..binder.launcher import BinderLauncher
        from ..lab.launch_link import link_generator

        launcher = hub_part(BinderLauncher, self)
        if not launcher.enabled:
            return ""
        base, github = self.hub.base_url, launcher.github_url
        return launch_fields(base, github) + link_generator(base, github)

    @default("options_from_form")
    def _default_options_from_form(self):
        return self.read_profile_form

    def read_profile_form(self, formdata) -> dict:
        """The spawn page's choice: ``{"profile": slug}`` (JupyterHub's
        ``options_from_form`` unless the admin sets another; the policy checks the result).
        A launched server started again from the spawn page keeps its repository's
        environment."""
        options = {"profile": (formdata.get("profile") or [None])[0]}
        saved = getattr(getattr(self, "orm_spawner", None), "user_options", None) or {}
        if isinstance(saved.get("binder"), dict):
            options["binder"] = saved["binder"]
        return options
