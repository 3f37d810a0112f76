"""Share a launch link: the launch form's link and badge generator, as mybinder.org has.

Under the spawn page's "Or launch from a repository" fields (:mod:`pangeohub.binder.form`)
a person adds, if they like, a file to open, and reads the link that launches that
repository at that ref on this hub (``<hub>/hub/v2/gh/<org>/<repo>/<ref>?labpath=<file>``)
and a Markdown badge for a README, each with a button that copies it. The badge's image
is served by the hub at ``/hub/launch-badge.svg`` ("launch | <badge_label>"); nothing
points outside the hub.
"""

from __future__ import annotations

import html
import json

from tornado import web
from traitlets import Unicode
from traitlets.config import Config, Configurable

from ..hubconfig import config_list

BADGE_ROUTE = r"/launch-badge.svg"


class LaunchLink(Configurable):
    """The launch form's link and badge generator (``c.LaunchLink``)."""

    badge_label = Unicode(
        "Pangeo hub",
        help="""The right-hand side of the launch badge ("launch | Pangeo hub"), e.g. your
        hub's name.""",
    ).tag(config=True)


def badge_svg(label: str) -> str:
    """A flat two-part badge, "launch | <label>", about 6.5 px a character."""
    left, right = "launch", label
    lw, rw = 10 + int(6.5 * len(left)), 10 + int(6.5 * len(right))
    text = html.escape(right)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{lw + rw}" height="20" '
        f'role="img" aria-label="launch: {text}"><title>launch: {text}</title>'
        f'<rect width="{lw}" height="20" fill="#555"/>'
        f'<rect x="{lw}" width="{rw}" height="20" fill="#f5a252"/>'
        '<g fill="#fff" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11" '
        'text-anchor="middle">'
        f'<text x="{lw / 2}" y="14">{left}</text>'
        f'<text x="{lw + rw / 2}" y="14">{text}</text></g></svg>'
    )


class BadgeHandler(web.RequestHandler):
    """``/hub/launch-badge.svg``: the badge's image, for anyone (READMEs are public)."""

    def initialize(self, label: str):
        self.label = label

    def get(self):
        self.set_header("Content-Type", "image/svg+xml")
        self.set_header("Cache-Control", "public, max-age=86400")
        self.finish(badge_svg(self.label))


GENERATOR = """
<div class="pangeo-launch-link card mt-2"><div class="card-body">
  <h2 class="h6 card-title">Share a launch link</h2>
  <label class="form-label small" for="binder-path">File to open (optional)</label>
  <input class="form-control" id="binder-path" placeholder="notebooks/intro.ipynb">
  <label class="form-label small mt-2" for="binder-share-link">Link that launches it on this
    hub</label>
  <div class="input-group">
    <input class="form-control" id="binder-share-link" readonly
           placeholder="Type a repository above">
    <button type="button" class="btn btn-outline-secondary" id="binder-copy-link">Copy</button>
  </div>
  <label class="form-label small mt-2" for="binder-share-badge">Markdown badge for a
    README</label>
  <div class="input-group">
    <input class="form-control font-monospace" id="binder-share-badge" readonly>
    <button type="button" class="btn btn-outline-secondary" id="binder-copy-badge">Copy</button>
  </div>
  <img id="binder-badge-preview" class="mt-2 d-none" alt="The badge, as a README shows it">
</div></div>
<script>
(function () {{
  const github = {github_json};
  const base = {base_json};
  const field = (id) => document.getElementById(id);
  function spec() {{
    const repo = field("binder-repository").value.trim().replace(/\\/+$/, "");
    const ref = encodeURIComponent(field("binder-ref").value.trim() || "HEAD");
    if (!repo) return "";
    const own = repo.slice(github.length + 1);
    if (repo.startsWith(github + "/") && own.split("/").length === 2) {{
      return "gh/" + own.replace(/\\.git$/, "") + "/" + ref;
    }}
    return "git/" + encodeURIComponent(repo) + "/" + ref;
  }}
  function update() {{
    const launch = spec();
    const path = field("binder-path").value.trim().replace(/^\\/+/, "");
    if (!launch) {{
      field("binder-share-link").value = "";
      field("binder-share-badge").value = "";
      field("binder-badge-preview").classList.add("d-none");
      return;
    }}
    const query = path ? "?labpath=" + encodeURIComponent(path) : "";
    const link = window.location.origin + base + "v2/" + launch + query;
    const badge = window.location.origin + base + "launch-badge.svg";
    field("binder-share-link").value = link;
    field("binder-share-badge").value = "[![Launch](" + badge + ")](" + link + ")";
    field("binder-badge-preview").src = badge;
    field("binder-badge-preview").classList.remove("d-none");
  }}
  for (const id of ["binder-repository", "binder-ref", "binder-path"]) {{
    field(id).addEventListener("input", update);
  }}
  for (const [button, source] of [["binder-copy-link", "binder-share-link"],
                                  ["binder-copy-badge", "binder-share-badge"]]) {{
    field(button).addEventListener("click", function () {{
      const text = field(source).value;
      if (!text) return;
      const done = () => {{ field(button).textContent = "Copied"; }};
      field(source).select();
      let copied = false;
      try {{ copied = document.execCommand("copy"); }} catch (error) {{ copied = false; }}
      if (copied) done();
      else if (navigator.clipboard) navigator.clipboard.writeText(text).then(done, () => {{}});
    }});
  }}
  update();
}})();
</script>
"""


def link_generator(hub_base_url: str, github_url: str) -> str:
    """The generator's HTML for a hub at ``hub_base_url`` (e.g. ``/hub/``), after the
    launch fields (whose repository and ref it reads)."""
    return GENERATOR.format(
        github_json=json.dumps(github_url.rstrip("/")).replace("<", "\\u003c"),
        base_json=json.dumps(hub_base_url).replace("<", "\\u003c"),
    )


def wire_launch_link(c: Config) -> None:
    """The badge's route on the hub, when launch links are on (part of
    :func:`pangeohub.configure`)."""
    from ..binder.launcher import BinderLauncher

    handlers = [h for h in config_list(c, "extra_handlers") if h[1] is not BadgeHandler]
    if BinderLauncher(config=c).enabled:
        handlers.append((BADGE_ROUTE, BadgeHandler, {"label": LaunchLink(config=c).badge_label}))
    if handlers or "extra_handlers" in c.JupyterHub:
        c.JupyterHub.extra_handlers = handlers
