/* pangeohub-lab: "where am I" in JupyterLab's top bar — the server's CPU use of its own
 * limit ("CPU: 0.25 of 1.5 cores") and its scratch location ($PANGEO_SCRATCH).
 *
 * A JupyterLab federated extension written by hand, so installing pangeohub needs no
 * node build: JupyterLab loads this file and asks window._JUPYTERLAB["pangeohub-lab"]
 * for its plugins through the module-federation container interface that the output of
 * `jupyter labextension build` implements (init(shareScope), then get("./extension")).
 * What it needs (@lumino/widgets, and @jupyterlab/apputils' toolbar registry, which
 * places its two items among jupyter-resource-usage's in the top bar) comes from
 * JupyterLab's own share scope: the Lab's very copies. The facts come from pangeohub's server extension
 * (GET <server>/pangeohub/whereami) and the CPU use from jupyter-resource-usage's
 * metrics (GET <server>/api/metrics/v1), polled like its own items.
 */
(function () {
  "use strict";
  const NAME = "pangeohub-lab";
  const REFRESH_MS = 5000;
  let shareScope = {};

  function newest(versions) {
    const parts = (v) => v.split(/[.+-]/).map((p) => parseInt(p, 10) || 0);
    const compare = (a, b) => {
      const x = parts(a);
      const y = parts(b);
      for (let i = 0; i < Math.max(x.length, y.length); i++) {
        if ((x[i] || 0) !== (y[i] || 0)) return (x[i] || 0) - (y[i] || 0);
      }
      return 0;
    };
    return Object.keys(versions).sort(compare).pop();
  }

  async function shared(pkg) {
    const versions = shareScope[pkg];
    if (!versions) throw new Error(`${NAME}: JupyterLab shares no ${pkg}`);
    const factory = await versions[newest(versions)].get();
    return factory();
  }

  function pageConfig() {
    const element = document.getElementById("jupyter-config-data");
    return element ? JSON.parse(element.textContent) : {};
  }

  async function getJSON(path) {
    const config = pageConfig();
    const headers = config.token ? { Authorization: `token ${config.token}` } : {};
    const response = await fetch(config.baseUrl + path, { headers, credentials: "same-origin" });
    if (!response.ok) {
      const error = new Error(`${path}: HTTP ${response.status}`);
      error.status = response.status;
      throw error;
    }
    return response.json();
  }

  function cores(n) {
    return String(Math.round(n * 100) / 100);
  }

  function cpuText(facts, metrics) {
    const limit = facts.cpu_limit;
    if (!metrics || metrics.cpu_percent === undefined) {
      return limit ? `CPU limit: ${cores(limit)} cores` : "";
    }
    const used = (metrics.cpu_percent / 100).toFixed(2);
    if (limit) return `CPU: ${used} of ${cores(limit)} cores`;
    return `CPU: ${used} of ${metrics.cpu_count || facts.cpu_count} cores (the machine's)`;
  }

  function item(Widget, className, title) {
    const widget = new Widget();
    widget.addClass(className);
    widget.node.title = title;
    widget.node.style.cssText =
      "display: flex; align-items: center; padding: 0 4px; white-space: nowrap;" +
      "font-size: var(--jp-ui-font-size1); color: var(--jp-ui-font-color1);";
    return widget;
  }

  function plugin(Widget, IToolbarWidgetRegistry) {
    return {
      // its settings schema (schemas/pangeohub-lab/plugin.json) places the two items
      id: `${NAME}:plugin`,
      description: "The server's CPU use of its limit and its scratch location, in the top bar.",
      autoStart: true,
      requires: [IToolbarWidgetRegistry],
      activate: (app, toolbars) => {
        const cpu = item(Widget, "pangeohub-cpu", "This server's CPU use, of its profile's limit");
        const scratch = item(
          Widget,
          "pangeohub-scratch",
          "Your scratch location ($PANGEO_SCRATCH): a bucket prefix only you can write to",
        );
        // a long location shrinks to the room left rather than pushing the top bar's items
        // onto a second line: cut at its start (its end names the person), in full in the
        // tooltip; right-to-left only for where the ellipsis goes, the marks keep the text
        // itself left-to-right
        scratch.node.style.cssText += "flex: 0 1 auto; min-width: 8em; max-width: 16em;";
        const label = document.createElement("span");
        label.style.cssText = "flex: none; white-space: pre;";
        const location = document.createElement("span");
        location.className = "pangeohub-scratch-location";
        location.style.cssText =
          "direction: rtl; overflow: hidden; text-overflow: ellipsis; white-space: nowrap;";
        scratch.node.append(label, location);
        let facts = null;
        let gone = false;
        const refresh = async () => {
          if (document.hidden && facts) return;
          try {
            if (!facts) {
              facts = await getJSON("pangeohub/whereami");
              if (facts.scratch) {
                const down = facts.scratch_status === "unavailable" ? " (unavailable)" : "";
                label.textContent = "| Scratch: ";
                location.textContent = `\u200e${facts.scratch}${down}\u200e`;
                scratch.node.title = `${facts.scratch}${down}: ${scratch.node.title}`;
                toolbars.addFactory("TopBar", "pangeohub-scratch", () => scratch);
              }
              toolbars.addFactory("TopBar", "pangeohub-cpu", () => cpu);
            }
            const metrics = await getJSON("api/metrics/v1").catch(() => null);
            cpu.node.textContent = cpuText(facts, metrics);
          } catch (error) {
            gone = error.status === 404;
            console.warn(`${NAME}: ${error}`);
          }
        };
        refresh();
        const timer = setInterval(async () => {
          await refresh();
          if (!facts && gone) clearInterval(timer); // a server without pangeohub's extension
        }, REFRESH_MS);
      },
    };
  }

  window._JUPYTERLAB = window._JUPYTERLAB || {};
  window._JUPYTERLAB[NAME] = {
    init: (scope) => {
      shareScope = scope || {};
    },
    get: async (module) => {
      if (module !== "./extension") throw new Error(`${NAME} has no module ${module}`);
      const { Widget } = await shared("@lumino/widgets");
      const { IToolbarWidgetRegistry } = await shared("@jupyterlab/apputils");
      const plugins = [plugin(Widget, IToolbarWidgetRegistry)];
      return () => ({ __esModule: true, default: plugins });
    },
  };
})();
