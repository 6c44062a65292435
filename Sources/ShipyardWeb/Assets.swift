/// The page's stylesheet and its one small script, served from `/static/` (no CDN, no build chain;
/// the Content-Security-Policy allows no inline script or style).
enum Assets {
    static let css = """
        :root { --pass: #2e9e4f; --warning: #e6a700; --fail: #d64242; --approval: #2ab6f4; --aborted: #b7b7b7; --running: #6b74d6; --ink: #1d2330; --muted: #6b7280; }
        * { box-sizing: border-box; }
        body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink); background: #f6f7f9; }
        header { background: #1d2330; }
        nav { display: flex; gap: 1.2em; align-items: center; padding: .6em 1.2em; }
        nav a { color: #cfd6e4; text-decoration: none; }
        nav a.active, nav a:hover { color: #fff; }
        nav .brand { font-weight: 700; color: #fff; margin-right: 1em; }
        nav .who { margin-left: auto; color: #cfd6e4; }
        nav .who strong { color: #fff; }
        form.inline { display: inline; margin-left: .6em; }
        main { padding: 1em 1.2em 3em; max-width: 1400px; }
        h1 { font-size: 1.4em; margin: .2em 0 .6em; }
        h2 { font-size: 1.1em; margin: 0 0 .3em; display: flex; gap: .6em; align-items: center; }
        table { border-collapse: collapse; width: 100%; background: #fff; margin-bottom: 1em; }
        th, td { text-align: left; padding: .4em .6em; border-bottom: 1px solid #e5e7eb; vertical-align: top; }
        th { font-weight: 600; color: var(--muted); font-size: .9em; }
        td.message { max-width: 40em; overflow-wrap: anywhere; }
        code { font: 12px/1.4 ui-monospace, SFMono-Regular, Menlo, monospace; overflow-wrap: anywhere; }
        .state { display: inline-block; padding: .05em .55em; border-radius: 1em; color: #fff; font-size: .85em; white-space: nowrap; }
        .state.pass { background: var(--pass); } .state.warning { background: var(--warning); } .state.fail { background: var(--fail); }
        .state.approval { background: var(--approval); } .state.aborted { background: var(--aborted); } .state.running { background: var(--running); }
        .state.waiting, .state.paused { background: #fff; color: var(--muted); border: 1px solid #c7ccd6; }
        .state.pending { background: #fff; color: var(--muted); border: 1px dashed #c7ccd6; }
        .stage { background: #fff; border: 1px solid #e5e7eb; border-radius: 6px; padding: .8em 1em; margin-bottom: 1em; }
        .stage[data-state="waitingForApproval"] { border-color: var(--approval); }
        .times, .summary, .note, .more, .empty { color: var(--muted); }
        .why { color: var(--fail); font-weight: 600; }
        .decision { margin-top: .3em; }
        .evaluation { margin-top: .4em; }
        .evaluation table { font-size: .9em; }
        .violated { color: var(--fail); } .met { color: var(--pass); }
        form.decide { display: flex; gap: .4em; margin: .5em 0; }
        form.decide .reason { flex: 1; min-width: 14em; padding: .3em; }
        button { cursor: pointer; padding: .3em .9em; border-radius: 4px; border: 1px solid #c7ccd6; background: #fff; }
        button.approve { background: var(--pass); color: #fff; border-color: var(--pass); }
        button.reject { background: var(--fail); color: #fff; border-color: var(--fail); }
        .filters { display: flex; gap: 1em; align-items: end; margin-bottom: 1em; }
        .filters label { display: flex; flex-direction: column; font-size: .85em; color: var(--muted); }
        .flash { background: #e8f4fd; border: 1px solid var(--approval); padding: .5em .8em; border-radius: 4px; }
        .flash.error, .error { color: var(--fail); }
        .flash.error { background: #fdecec; border-color: var(--fail); }
        .login { display: flex; flex-direction: column; gap: .8em; max-width: 20em; }
        .login label { display: flex; flex-direction: column; }
        pre { background: #111827; color: #e5e7eb; padding: .6em; max-height: 24em; overflow: auto; font-size: 12px; }
        details.events { margin-top: 1.5em; }
        .flash { display: flex; align-items: start; gap: 1em; margin: 1em 1.2em 0; max-width: 1400px; }
        .flash span { flex: 1; }
        .flash .dismiss { padding: 0 .5em; line-height: 1.4; }
        .scroll { overflow-x: auto; }
        .scroll table { min-width: 36em; }
        th { white-space: nowrap; }
        .waiting-for { color: var(--muted); font-style: italic; }
        ol.reached { list-style: none; margin: 0; padding: 0; display: flex; flex-wrap: wrap; gap: .3em .8em; }
        table.environment td.slot { min-width: 12em; }
        table.environment .version { font-weight: 600; }
        .score.pass { color: var(--pass); } .score.warning { color: var(--warning); } .score.fail { color: var(--fail); }
        section.environment { margin-bottom: 1.5em; }
        details.payload summary { cursor: pointer; }
        details.payload pre { white-space: pre-wrap; overflow-wrap: anywhere; max-width: 60em; }
        .filters { flex-wrap: wrap; }
        td.heat { text-align: right; font-variant-numeric: tabular-nums; color: #fff; white-space: nowrap; }
        td.heat.pass { background: var(--pass); } td.heat.warning { background: var(--warning); } td.heat.fail { background: var(--fail); }
        td.heat.info { background: #e5e7eb; color: var(--ink); } td.heat.missing { color: var(--muted); text-align: center; }
        table.heatmap th.invalidated a { text-decoration: line-through; }
        .charts { display: flex; flex-wrap: wrap; gap: 1em; }
        figure.chart { margin: 0; background: #fff; border: 1px solid #e5e7eb; border-radius: 6px; padding: .4em .6em; flex: 1 1 30em; max-width: 44em; }
        figure.chart figcaption { font-weight: 600; color: var(--muted); font-size: .9em; }
        figure.chart svg { width: 100%; height: auto; display: block; }
        svg .axis { stroke: #c7ccd6; stroke-width: 1; }
        svg .trend { fill: none; stroke: var(--running); stroke-width: 2; }
        svg .tick { font-size: 10px; fill: var(--muted); }
        svg .point.pass { fill: var(--pass); } svg .point.warning { fill: var(--warning); } svg .point.fail { fill: var(--fail); } svg .point.info { fill: #9ca3af; }
        .controls { display: flex; gap: .6em; align-items: start; margin: .5em 0; flex-wrap: wrap; }
        details.abort summary { cursor: pointer; color: var(--fail); padding: .3em 0; }
        details.abort form { display: flex; gap: .4em; margin-top: .3em; flex-wrap: wrap; }
        form.deliver { display: flex; gap: .3em; margin-top: .4em; font-weight: normal; }
        form.deliver input { min-width: 0; flex: 1; }
        @media (max-width: 640px) {
          body { font-size: 15px; }
          nav { flex-wrap: wrap; gap: .4em 1em; padding: .5em .8em; }
          nav .who { margin-left: 0; width: 100%; }
          main { padding: .8em .6em 2em; }
          .flash { margin: .8em .6em 0; }
          h1 code { font-size: .8em; }
          form.decide { flex-wrap: wrap; }
          form.decide .reason { min-width: 100%; }
          .filters label { flex: 1 1 40%; }
          .stage { padding: .6em .5em; }
        }
        """

    /// Keeps a page live without reloading it: on each change the daemon announces (Server-Sent
    /// Events), the page is fetched again and its `<main>` swapped in, unless the user is typing
    /// in it. A running task's log is refreshed every two seconds.
    static let js = """
        (function () {
          "use strict";
          // A confirmation stays until dismissed (it sits outside <main>, which refreshes).
          document.addEventListener("click", function (e) {
            var t = e.target;
            if (t && t.classList && t.classList.contains("dismiss") && t.parentNode) t.parentNode.remove();
          });
          var main = document.getElementById("main");
          if (!main || !window.EventSource) return;
          var pending = false, busy = false, last = 0;
          function typing() {
            var active = document.activeElement;
            if (active && main.contains(active) && (active.tagName === "INPUT" || active.tagName === "SELECT" || active.tagName === "TEXTAREA")) return true;
            var inputs = main.querySelectorAll("input.reason");
            for (var i = 0; i < inputs.length; i++) if (inputs[i].value) return true;
            return false;
          }
          function refresh() {
            if (busy) { pending = true; return; }
            if (typing()) { pending = true; return; }
            var wait = 300 - (Date.now() - last);
            if (wait > 0) { pending = true; setTimeout(flush, wait); return; }
            busy = true; pending = false; last = Date.now();
            fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html", "X-Shipyard-Refresh": "1" } })
              .then(function (r) { return r.ok ? r.text() : null; })
              .then(function (text) {
                if (!text) return;
                var doc = new DOMParser().parseFromString(text, "text/html");
                var fresh = doc.getElementById("main");
                if (!fresh || typing()) { pending = true; return; }
                var open = {};
                main.querySelectorAll("details").forEach(function (d, i) { open[i] = d.open; });
                main.innerHTML = fresh.innerHTML;
                main.setAttribute("data-version", fresh.getAttribute("data-version") || "");
                main.querySelectorAll("details").forEach(function (d, i) { if (i in open) d.open = open[i]; });
                document.title = doc.title;
              })
              .catch(function () {})
              .then(function () { busy = false; if (pending) setTimeout(flush, 300); });
          }
          function flush() { if (pending) refresh(); }
          document.addEventListener("focusout", function () { setTimeout(flush, 50); });
          var source = new EventSource("/events/stream");
          source.addEventListener("change", refresh);
          // What changed between the page's render and the stream's start is not missed.
          source.addEventListener("hello", function (e) { if (e.data !== main.getAttribute("data-version")) refresh(); });
          setInterval(function () { if (main.querySelector("[data-running]")) refresh(); }, 2000);
        })();
        """
}
