"""The launch page: follows the build stream and opens the server when it is ready."""

PROGRESS_PAGE = r"""{% extends "page.html" %}
{% block main %}
<div class="container" id="binder-launch">
  <h1 class="h3">Launching {{ repository }}</h1>
  <div class="progress my-3" style="height: 1.5rem">
    <div id="binder-bar" class="progress-bar progress-bar-striped progress-bar-animated"
         role="progressbar" style="width: 2%" aria-valuemin="0" aria-valuemax="100"></div>
  </div>
  <p id="binder-phase" class="lead">Connecting to the hub…</p>
  <ol id="binder-steps" class="small"></ol>
  <div id="binder-failure" class="alert alert-danger d-none" role="alert">
    <strong id="binder-failure-message"></strong>
    <pre id="binder-failure-line" class="mt-2 mb-0" style="white-space: pre-wrap"></pre>
  </div>
  <details id="binder-log-box" open>
    <summary>Build log</summary>
    <pre id="binder-log" class="border p-2 small"
         style="max-height: 24rem; overflow: auto; white-space: pre-wrap"></pre>
  </details>
</div>
{% endblock %}
{% block script %}
{{ super() }}
<script>
(function () {
  const bar = document.getElementById("binder-bar");
  const phase = document.getElementById("binder-phase");
  const steps = document.getElementById("binder-steps");
  const log = document.getElementById("binder-log");
  let finished = false;
  function setBar(value, kind) {
    bar.style.width = value + "%";
    bar.setAttribute("aria-valuenow", value);
    if (kind) { bar.classList.remove("progress-bar-animated"); bar.classList.add(kind); }
  }
  function fail(message, line) {
    finished = true;
    setBar(100, "bg-danger");
    phase.textContent = "The launch failed.";
    document.getElementById("binder-failure").classList.remove("d-none");
    document.getElementById("binder-failure-message").textContent = message;
    document.getElementById("binder-failure-line").textContent = line || "";
  }
  const source = new EventSource({{ stream_url | tojson }});
  source.onmessage = function (e) {
    const ev = JSON.parse(e.data);
    if (ev.phase === "log") {
      log.textContent += ev.message + "\n";
      log.scrollTop = log.scrollHeight;
      return;
    }
    if (ev.progress !== undefined) setBar(ev.progress);
    if (ev.phase === "failed") { source.close(); fail(ev.message, ev.line); return; }
    const li = document.createElement("li");
    li.textContent = ev.message;
    li.dataset.phase = ev.phase;
    steps.appendChild(li);
    phase.textContent = ev.message;
    if (ev.phase === "ready") {
      finished = true;
      source.close();
      setBar(100, "bg-success");
      window.location.href = ev.url;
    }
  };
  source.onerror = function () {
    if (finished) return;
    source.close();
    fetch({{ stream_url | tojson }}, {credentials: "same-origin"}).then(function (r) {
      return r.json().then(function (b) { fail(b.message || ("Error " + r.status)); });
    }).catch(function () { fail("The connection to the hub was lost. Reload to try again."); });
  };
})();
</script>
{% endblock %}
"""

CONFIRM_PAGE = r"""{% extends "page.html" %}
{% block main %}
<div class="container" id="binder-confirm">
  <h1 class="h3">Launch {{ repository_name }}?</h1>
  <p class="lead">This repository is not on this hub's list of trusted repositories.
    Launch it only if you trust whoever can change it.</p>
  <dl class="row">
    <dt class="col-sm-3">Repository</dt>
    <dd class="col-sm-9"><code id="binder-confirm-url">{{ url }}</code></dd>
    <dt class="col-sm-3">Fetched from</dt>
    <dd class="col-sm-9"><code id="binder-confirm-host">{{ host }}</code></dd>
    <dt class="col-sm-3">Branch, tag or commit</dt>
    <dd class="col-sm-9"><code id="binder-confirm-ref">{{ ref }}</code></dd>
    {% if profile %}<dt class="col-sm-3">Profile</dt>
    <dd class="col-sm-9"><code>{{ profile }}</code></dd>{% endif %}
  </dl>
  <p>The hub builds the repository's environment from its files (<code>requirements.txt</code>,
    <code>environment.yml</code>, <code>postBuild</code>, ... in <code>binder/</code> or at its
    root), then starts a new server of yours in it. That server runs the repository's code
    <strong>as you</strong>: it can read and change your files, your scratch bucket and your
    other servers' data, and use your Dask clusters.</p>
  <form method="post" action="{{ action }}" class="d-flex gap-2">
    <input type="hidden" name="_xsrf" value="{{ xsrf_token }}">
    <button type="submit" class="btn btn-primary" id="binder-confirm-button">
      Build and launch</button>
    <a class="btn btn-outline-secondary" href="{{ base_url }}home">Cancel</a>
  </form>
</div>
{% endblock %}
"""
