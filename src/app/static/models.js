// The models page: the tables come rendered; this draws the charts (vendored Chart.js) from the same API:
// per use case its evaluation trend, its calibration (the serving version's holdout and the newest scored evaluation
// window) and, where it backtests, each symbol's equity curves.
(function () {
  "use strict";

  var COLORS = { baseline: "#94a3b8", strategy: "#2563eb", buy_and_hold: "#64748b", random: "#f59e0b" };
  var VARIANTS = [["strategy", "Strategy"], ["buy_and_hold", "Buy-and-hold"], ["random", "Random"]];
  var SPARE = ["#2563eb", "#f59e0b", "#16a34a", "#dc2626", "#7c3aed"];  // for a class app.css gives no colour

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

  // a class's colour is the one its probability bar has (app.css .seg-<class>)
  function classColor(name, index) {
    var probe = document.createElement("span");
    probe.className = "seg-" + name;
    probe.hidden = true;
    document.body.appendChild(probe);
    var color = window.getComputedStyle(probe).backgroundColor;
    probe.remove();
    return color && color !== "rgba(0, 0, 0, 0)" && color !== "transparent" ? color : SPARE[index % SPARE.length];
  }

  // a reliability diagram: per class, the observed frequency of each probability bin against its mean forecast
  function reliability(canvas, calibration) {
    var names = Object.keys(calibration);
    var datasets = names.map(function (name, index) {
      var color = classColor(name, index);
      return { label: name.replace(/_/g, " "), showLine: true, tension: 0, borderColor: color, backgroundColor: color,
               pointRadius: 3, data: calibration[name].map(function (b) {
                 return { x: b.mean_predicted, y: b.observed, rows: b.rows, lower: b.lower, upper: b.upper };
               }) };
    });
    datasets.push({ label: "calibrated", data: [{ x: 0, y: 0 }, { x: 1, y: 1 }], showLine: true, pointRadius: 0,
                    borderColor: COLORS.baseline, borderDash: [6, 4], borderWidth: 1 });
    draw(canvas, {
      type: "scatter",
      data: { datasets: datasets },
      options: {
        interaction: { mode: "nearest", intersect: true },
        scales: { x: { min: 0, max: 1, title: { display: true, text: "mean predicted probability" } },
                  y: { min: 0, max: 1, title: { display: true, text: "observed frequency" } } },
        plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } },
                   tooltip: { filter: function (item) { return item.raw.rows !== undefined; },
                              callbacks: { label: function (item) {
                                var b = item.raw;
                                return item.dataset.label + ": predicted " + b.x.toFixed(2) + ", observed " +
                                  b.y.toFixed(2) + " (" + b.rows + " rows in " + b.lower.toFixed(1) + "–" +
                                  b.upper.toFixed(1) + ")";
                              } } } },
      },
    });
  }

  function calibrationCharts(section, versions, evaluations) {
    var serving = versions.versions.filter(function (v) { return v.current; })[0];
    var scored = evaluations.evaluations.filter(function (e) { return e.status === "scored"; });
    var found = { holdout: serving && serving.model.calibration,
                  evaluation: scored.length ? scored[scored.length - 1].model.calibration : null };
    section.querySelectorAll("canvas[data-calibration]").forEach(function (canvas) {
      var calibration = found[canvas.getAttribute("data-calibration")];
      if (calibration) reliability(canvas, calibration);
    });
  }

  function load(section) {
    var evaluations = getJSON(section.getAttribute("data-evaluations"));
    var work = [evaluations.then(function (report) { trend(section, report); })];
    if (section.querySelector("canvas[data-calibration]")) {
      work.push(Promise.all([getJSON(section.getAttribute("data-versions")), evaluations]).then(function (reports) {
        calibrationCharts(section, reports[0], reports[1]);
      }));
    }
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
