// The models page: the tables come rendered; this draws the charts (vendored Chart.js) from the same API:
// per use case its evaluation trend and, where it backtests, each symbol's equity curves.
(function () {
  "use strict";

  var COLORS = { baseline: "#94a3b8", strategy: "#2563eb", buy_and_hold: "#64748b", random: "#f59e0b" };
  var VARIANTS = [["strategy", "Strategy"], ["buy_and_hold", "Buy-and-hold"], ["random", "Random"]];

  function status(text, isError) {
    var el = document.getElementById("models-status");
    el.textContent = text || "";
    el.classList.toggle("is-error", !!isError);
    el.classList.toggle("is-hidden", !text);
  }

  function getJSON(url) {
    return fetch(url, { headers: { Accept: "application/json" } }).then(function (response) {
      return response.json().then(function (body) {
        if (!response.ok) throw new Error(body.error ? body.error.message : "HTTP " + response.status);
        return body;
      });
    });
  }

  function draw(canvas, config) {
    var old = window.Chart.getChart(canvas);
    if (old) old.destroy();
    config.options = Object.assign({ responsive: true, maintainAspectRatio: false, animation: false,
                                     interaction: { mode: "index", intersect: false },
                                     plugins: { legend: { position: "bottom" } } }, config.options || {});
    return new window.Chart(canvas, config);
  }

  function when(text) {
    return text ? text.slice(0, 16).replace("T", " ") : "";
  }

  // log loss per evaluation: the champion evaluated and its best baseline; an unscored window is a gap (null)
  function trend(section, report) {
    var canvas = section.querySelector("canvas[data-trend]");
    if (!canvas) return;
    var points = report.trend;
    draw(canvas, {
      type: "line",
      data: {
        // runs can come the same day: the end of the window each scored tells them apart
        labels: points.map(function (p) { return p.window_end || p.evaluated_at.slice(0, 10); }),
        datasets: [
          { label: "Serving model", data: points.map(function (p) { return p.log_loss; }),
            borderColor: section.getAttribute("data-color"), backgroundColor: section.getAttribute("data-color"),
            pointRadius: 4, spanGaps: false, tension: 0 },
          { label: "Best baseline", data: points.map(function (p) { return p.best_baseline_log_loss; }),
            borderColor: COLORS.baseline, backgroundColor: COLORS.baseline, borderDash: [6, 4], pointRadius: 3,
            spanGaps: false, tension: 0 },
        ],
      },
      options: {
        scales: { y: { title: { display: true, text: "log loss (lower is better)" } },
                  x: { title: { display: true, text: "end of the newer data scored" },
                       ticks: { maxTicksLimit: 8 } } },
        plugins: { tooltip: { callbacks: { afterTitle: function (items) {
          var p = points[items[0].dataIndex];
          return "run of " + when(p.evaluated_at) + " · model " + p.model_version + " · " + p.rows + " rows" +
            (p.status === "scored" ? "" : " · " + p.status.replace("_", " ") + ", not scored");
        } } } },
      },
    });
  }

  function curves(section, report) {
    section.querySelectorAll("canvas[data-curve]").forEach(function (canvas) {
      var window_ = report[canvas.getAttribute("data-window")];
      var curve = window_ && window_.backtest.curves[canvas.getAttribute("data-symbol")];
      if (!curve) return;
      draw(canvas, {
        type: "line",
        data: {
          labels: curve.dates,
          datasets: VARIANTS.map(function (variant) {
            return { label: variant[1], data: curve[variant[0]], borderColor: COLORS[variant[0]],
                     backgroundColor: COLORS[variant[0]], borderWidth: variant[0] === "strategy" ? 2 : 1.5,
                     pointRadius: 0, tension: 0 };
          }),
        },
        options: {
          // months on the axis: a small chart has no room for whole dates
          scales: { x: { ticks: { maxTicksLimit: 4, maxRotation: 0, callback: function (value) {
                      return String(this.getLabelForValue(value)).slice(0, 7); } } },
                    y: { title: { display: true, text: "growth of 1" } } },
          plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } },
        },
      });
    });
  }

  function load(section) {
    var work = [getJSON(section.getAttribute("data-evaluations")).then(function (report) { trend(section, report); })];
    var backtest = section.getAttribute("data-backtest");
    if (backtest) work.push(getJSON(backtest).then(function (report) { curves(section, report); }));
    return Promise.all(work);
  }

  function start() {
    var root = document.getElementById("model-cases");
    var sections = Array.prototype.slice.call(root.querySelectorAll("[data-use-case]"));
    Promise.all(sections.map(load))
      .then(function () {
        status("", false);
        root.setAttribute("data-rendered", "true");
      })
      .catch(function (error) { status("Could not draw the charts: " + error.message, true); });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
