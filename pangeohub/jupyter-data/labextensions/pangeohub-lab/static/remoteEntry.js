/* pangeohub-lab: "where am I" in JupyterLab's top bar: the server's CPU use of its own
 * limit ("CPU: 0.25 of 1.5 cores"), its memory and disk against their sizes in GiB (or MiB),
 * the units the spawn page uses, and its scratch location ($PANGEO_SCRATCH).
 *
 * A JupyterLab federated extension written by hand, so installing pangeohub needs no
 * node build: JupyterLab loads this file and asks window._JUPYTERLAB["pangeohub-lab"]
 * for its plugins through the module-federation container interface that the output of
 * `jupyter labextension build` implements (init(shareScope), then get("./extension")).
 * What it needs (@lumino/widgets, and @jupyterlab/apputils' toolbar registry, which
 * places its items in the top bar) comes from JupyterLab's own share scope: the Lab's very
 * copies. The facts come from pangeohub's server extension (GET <server>/pangeohub/whereami)
 * and the use from jupyter-resource-usage's metrics (GET <server>/api/metrics/v1), polled
 * as its own items poll them.
 *
 * Why not jupyter-resource-usage's own items (package.json switches them off): its status
 * bar item turns red at rest because its server compares the CPU limit in cores with the
 * use in percent (jupyter-resource-usage#107; pangeohub also sets cpu_warning_threshold to
 * 0), it labels sizes counted in 1024s "MB" and "GB" (the spawn page says MiB and GiB), its
 * top-bar bars are drawn full before the first reading, and its CPU item shows a
 * percentage only. None of it has a setting. Here a bar appears with the first reading,
 * and an item warns only when the server says it is near its limit (memory, disk).
 *
 * It also polishes the Dask tab (dask-labextension, which has no setting for either): the
 * cluster list keeps a share of the panel instead of following the plot buttons below the
 * fold, and a cluster with no worker says how to get some.
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

  const MiB = 1024 ** 2;
  const GiB = 1024 ** 3;

  function number(n) {
    return String(Math.round(n * 100) / 100);
  }

  function cores(n) {
    return `${number(n)} ${n === 1 ? "core" : "cores"}`;
  }

  function cpuText(facts, metrics) {
    const used = (metrics.cpu_percent / 100).toFixed(2);
    if (facts.cpu_limit) return `CPU: ${used} of ${cores(facts.cpu_limit)}`;
    return `CPU: ${used} of ${cores(metrics.cpu_count || facts.cpu_count)} (the machine's)`;
  }

  // "0.21 of 1.5 GiB", "200 of 512 MiB": the size's unit for both, as the spawn page writes it
  function sizeText(used, size) {
    const unit = size >= GiB ? GiB : MiB;
    const name = unit === GiB ? "GiB" : "MiB";
    const usedText = unit === GiB ? (used / unit).toFixed(2) : (used / unit).toFixed(0);
    return size ? `${usedText} of ${number(size / unit)} ${name}` : `${usedText} ${name}`;
  }

  function item(Widget, className, title) {
    const widget = new Widget();
    widget.addClass(className);
    widget.node.title = title;
    widget.node.style.cssText =
      "display: flex; align-items: center; gap: 4px; padding: 0 4px; white-space: nowrap;" +
      "font-size: var(--jp-ui-font-size1); color: var(--jp-ui-font-color1);";
    return widget;
  }

  // a use-of-size item: "| Mem: [bar] 0.21 of 1.5 GiB"; no bar until there is a reading
  function gauge(Widget, className, label, title) {
    const widget = item(Widget, className, title);
    const text = document.createElement("span");
    const bar = document.createElement("span");
    bar.className = "pangeohub-bar";
    bar.style.cssText =
      "display: none; width: 3em; height: 0.7em; box-sizing: border-box;" +
      "border: 1px solid var(--jp-border-color1); background: var(--jp-layout-color1);";
    const fill = document.createElement("span");
    fill.className = "pangeohub-bar-fill";
    fill.style.cssText = "display: block; height: 100%; width: 0;";
    bar.append(fill);
    const name = document.createElement("span");
    name.textContent = label;
    widget.node.append(name, bar, text);
    widget.show_reading = (used, size, warn) => {
      text.textContent = sizeText(used, size);
      bar.style.display = size ? "inline-block" : "none";
      fill.style.width = size ? `${Math.min(100, (100 * used) / size).toFixed(1)}%` : "0";
      fill.style.background = warn ? "var(--jp-error-color1)" : "var(--jp-brand-color1)";
      widget.toggleClass("pangeohub-warn", !!warn);
      widget.node.style.color = warn ? "var(--jp-error-color1)" : "var(--jp-ui-font-color1)";
    };
    return widget;
  }

  // The Dask tab (dask-labextension): its cluster list gets a share of the panel of its
  // own instead of following the 33 plot buttons below the fold, and a new cluster with
  // no worker says how to get some. dask-labextension has no setting for either.
  const DASK_STYLE = `
    .dask-DaskSidebar { display: flex; flex-direction: column; overflow: hidden; }
    .dask-DaskSidebar > :first-child { flex: 1 1 auto; min-height: 6em; overflow: auto; }
    .dask-DaskSidebar > .dask-DaskClusterManager {
      flex: 0 0 auto; max-height: 55%; overflow: auto;
    }
    .pangeohub-scale-hint {
      white-space: normal; margin-top: 4px; font-style: italic;
    }`;
  const SCALE_HINT =
    "No workers yet: press SCALE to add some, or to let the cluster adapt to its work.";

  function hintScaling(root) {
    for (const item of root.querySelectorAll("li.dask-ClusterListingItem")) {
      const stats = Array.from(item.querySelectorAll(".dask-ClusterListingItem-stats"));
      const texts = stats.map((s) => s.textContent);
      const idle =
        texts.some((t) => /^Number of Workers: 0$/.test(t.trim())) &&
        !texts.some((t) => t.startsWith("Minimum Workers"));
      let hint = item.querySelector(".pangeohub-scale-hint");
      if (idle && !hint) {
        hint = document.createElement("div");
        hint.className = "pangeohub-scale-hint";
        hint.textContent = SCALE_HINT;
        item.append(hint);
      } else if (!idle && hint) {
        hint.remove();
      }
    }
  }

  function polishDaskPanel() {
    const style = document.createElement("style");
    style.id = `${NAME}-dask`;
    style.textContent = DASK_STYLE;
    document.head.append(style);
    let queued = false;
    new MutationObserver(() => {
      if (queued) return;
      queued = true;
      requestAnimationFrame(() => {
        queued = false;
        hintScaling(document);
      });
    }).observe(document.body, { childList: true, subtree: true, characterData: true });
  }

  function plugin(Widget, IToolbarWidgetRegistry) {
    return {
      // its settings schema (schemas/pangeohub-lab/plugin.json) places the items
      id: `${NAME}:plugin`,
      description: "The server's CPU, memory and disk use of its limits and its scratch location.",
      autoStart: true,
      requires: [IToolbarWidgetRegistry],
      activate: (app, toolbars) => {
        polishDaskPanel();
        const cpu = item(Widget, "pangeohub-cpu", "This server's CPU use, of its profile's limit");
        const memory = gauge(
          Widget,
          "pangeohub-memory",
          "| Mem:",
          "This server's memory use, of its profile's limit (1 GiB = 1024 MiB)",
        );
        const disk = gauge(
          Widget,
          "pangeohub-disk",
          "| Disk:",
          "This server's disk: what is used, of its size (1 GiB = 1024 MiB)",
        );
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
        const placed = new Set();
        const place = (name, widget) => {
          if (placed.has(name)) return;
          placed.add(name);
          toolbars.addFactory("TopBar", name, () => widget);
        };
        const show = (metrics) => {
          const limits = metrics.limits || {};
          if (metrics.cpu_percent !== undefined) {
            cpu.node.textContent = cpuText(facts, metrics);
            place("pangeohub-cpu", cpu);
          }
          const rss = metrics.pss !== undefined ? metrics.pss : metrics.rss;
          if (rss !== undefined) {
            const mem = limits.memory || {};
            memory.show_reading(rss, mem.pss || mem.rss || 0, mem.warn);
            place("pangeohub-memory", memory);
          }
          if (metrics.disk_total) {
            disk.show_reading(metrics.disk_used, metrics.disk_total, (limits.disk || {}).warn);
            place("pangeohub-disk", disk);
          }
        };
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
                place("pangeohub-scratch", scratch);
              }
            }
            const metrics = await getJSON("api/metrics/v1").catch(() => null);
            if (metrics) show(metrics);
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
