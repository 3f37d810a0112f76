"""``/hub/environments``: each environment's packages and versions, for everyone signed in.

What a person can count on in their server (and their Dask workers): the environment
their profile names, its current version, and every package in it with its version, as
the build installed them.
"""

from __future__ import annotations

from jupyterhub.handlers import BaseHandler
from tornado import web

from ..policy import PangeoPolicy
from .settings import Environments
from .spec import SpecError
from .versions import read_version

PAGE = r"""{% extends "page.html" %}
{% block main %}
<div class="container" id="pangeohub-environments">
  <h1 class="h3">Environments</h1>
  <p>Each server runs in its profile's environment, and so do the Dask workers it starts.
  Packages you install with <code>pip install --user</code> go to your server's own disk
  and come first.</p>
  {% for env in environments %}
  <section class="mb-4" id="environment-{{ env.name }}">
    <h2 class="h4">{{ env.name }}</h2>
    {% if env.description %}<p>{{ env.description }}</p>{% endif %}
    <p class="text-muted">
      {% if env.profiles %}Profiles: {{ env.profiles | join(", ") }}. {% endif %}
      {% if env.version %}Version {{ env.version }}, {{ env.packages | length }} packages.
      {% else %}Not built yet: it is built when a server first needs it.{% endif %}
      {% if env.added %}Added by the hub's admins: {{ env.added | join(", ") }}.{% endif %}
    </p>
    {% if env.packages %}
    <details>
      <summary>Packages and versions</summary>
      <table class="table table-sm">
        <thead><tr><th>package</th><th>version</th></tr></thead>
        <tbody>
        {% for p in env.packages %}<tr><td>{{ p.name }}</td><td>{{ p.version }}</td></tr>
        {% endfor %}
        </tbody>
      </table>
    </details>
    {% endif %}
  </section>
  {% endfor %}
</div>
{% endblock %}
"""


def environments_summary(settings: Environments, policy: PangeoPolicy, groups) -> list[dict]:
    """Each environment with the profiles (the person may use) that run in it, its current
    version and its packages."""
    from .spec import EnvironmentSpec

    profiles = policy.profiles_for(groups)
    summary = []
    for name, declared in settings.environments.items():
        entry = {
            "name": name,
            "description": declared.get("description", ""),
            "profiles": [p.display_name for p in profiles if settings.environment_of(p) == name],
            "version": None,
            "packages": [],
            "added": [],
        }
        try:
            spec = EnvironmentSpec.of(settings, name)
            entry["added"] = spec.added_packages()
            version = read_version(settings.root_path, name, spec.key())
        except SpecError:
            version = None
        if version is not None:
            entry.update(version=version.key, packages=version.packages)
        summary.append(entry)
    return summary


class EnvironmentsPageHandler(BaseHandler):
    """The environments page (``/hub/environments``)."""

    def initialize(self, settings: Environments, policy: PangeoPolicy):
        super().initialize()
        self.environments_settings = settings
        self.policy = policy

    @web.authenticated
    async def get(self):
        groups = [g.name for g in self.current_user.groups]
        summary = environments_summary(self.environments_settings, self.policy, groups)
        template = self.settings["jinja2_env"].from_string(PAGE)
        html = await template.render_async(**self.template_namespace, environments=summary)
        self.finish(html)
