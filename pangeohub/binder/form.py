"""The spawn page's "launch from a repository" fields, beside the profiles.

They do not submit the spawn form: the button posts to the launch link for what was
typed (``gh/<org>/<repo>/<ref>`` for a repository under ``github_url``, else
``git/<url-encoded URL>/<ref>``) with the page's XSRF token, so pressing **Launch** is the
person's confirmation (:mod:`.consent`) and the build is followed on the launch page.
"""

from __future__ import annotations

import html
import json

LAUNCH_FIELDS = """
<div class="pangeo-binder-launch card mt-3"><div class="card-body">
  <h2 class="h6 card-title">Or launch from a repository</h2>
  <div class="row g-2 align-items-end">
    <div class="col-md-7">
      <label class="form-label small" for="binder-repository">Git repository URL</label>
      <input class="form-control" id="binder-repository" placeholder="{github}/org/repo"></div>
    <div class="col-md-3">
      <label class="form-label small" for="binder-ref">Branch, tag or commit</label>
      <input class="form-control" id="binder-ref" value="HEAD"></div>
    <div class="col-md-2"><button type="button" class="btn btn-outline-primary w-100"
      id="binder-launch-button">Launch</button></div>
  </div>
  <p class="small text-muted mb-0 mt-2">Builds the repository's environment (requirements.txt,
    environment.yml, ...) once per commit, then starts a server of its own.</p>
</div></div>
<script>
document.getElementById("binder-launch-button").addEventListener("click", function () {{
  const github = {github_json};
  const repo = document.getElementById("binder-repository").value.trim().replace(/\\/+$/, "");
  const ref = encodeURIComponent(document.getElementById("binder-ref").value.trim() || "HEAD");
  if (!repo) return;
  let spec;
  if (repo.startsWith(github + "/") && repo.slice(github.length + 1).split("/").length === 2) {{
    spec = "gh/" + repo.slice(github.length + 1).replace(/\\.git$/, "") + "/" + ref;
  }} else {{
    spec = "git/" + encodeURIComponent(repo) + "/" + ref;
  }}
  const form = document.createElement("form");
  form.method = "post";
  form.action = {base_json} + "v2/" + spec;
  const xsrf = document.createElement("input");
  xsrf.type = "hidden";
  xsrf.name = "_xsrf";
  xsrf.value = window.jhdata.xsrf_token;
  form.appendChild(xsrf);
  document.body.appendChild(form);
  form.submit();
}});
</script>
"""


def launch_fields(hub_base_url: str, github_url: str) -> str:
    """The fields' HTML for a hub at ``hub_base_url`` (e.g. ``/hub/``)."""
    github = github_url.rstrip("/")
    return LAUNCH_FIELDS.format(
        github=html.escape(github),
        github_json=json.dumps(github).replace("<", "\\u003c"),
        base_json=json.dumps(hub_base_url).replace("<", "\\u003c"),
    )
