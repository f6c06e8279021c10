// The analytics page: one fetch of /api/v1/analytics, then Chart.js (vendored) draws each chart.
(function () {
  "use strict";

  // the use cases' names, colours and lists come with the report; classes without a colour here get the palette's
  var COLORS = {
    home_win: "#2563eb", draw: "#94a3b8", away_win: "#ea580c",
    buy: "#16a34a", hold: "#94a3b8", sell: "#dc2626",
    model: "#1e3a8a", baseline: ["#cbd5e1", "#94a3b8"],
  };
  var PALETTE = ["#0891b2", "#a855f7", "#65a30d", "#e11d48", "#64748b"];
  var LABELS = { home_win: "Home win", draw: "Draw", away_win: "Away win", buy: "Buy", hold: "Hold", sell: "Sell" };
  var charts = {};

  function status(text, isError) {
    var el = document.getElementById("analytics-status");
    el.textContent = text || "";
    el.classList.toggle("is-error", !!isError);
    el.classList.toggle("is-hidden", !text);
  }

  function draw(id, config) {
    var canvas = document.getElementById(id);
    if (charts[id]) charts[id].destroy();
    config.options = Object.assign({ responsive: true, maintainAspectRatio: false, animation: false,
                                     plugins: { legend: { position: "bottom" } } }, config.options || {});
    charts[id] = new window.Chart(canvas, config);
  }

  function kpis(report) {
    var box = document.getElementById("kpis");
    var lastDay = function (name) {
      var counts = report.hourly.counts[name] || [];
      return counts.slice(-24).reduce(function (a, b) { return a + b; }, 0);
    };
    var names = Object.keys(report.use_cases);
    var items = names.map(function (n) { return [report.use_cases[n].title + " predictions", report.totals[n]]; })
      .concat(names.map(function (n) { return [report.use_cases[n].title + ", last 24 h", lastDay(n)]; }));
    box.replaceChildren.apply(box, items.map(function (item) {
      var div = document.createElement("div");
      div.className = "kpi";
      var value = document.createElement("div");
      value.className = "value";
      value.textContent = Number(item[1] || 0).toLocaleString("en");
      var name = document.createElement("div");
      name.className = "name";
      name.textContent = item[0];
      div.append(value, name);
      return div;
    }));
  }

  function hourly(report) {
    draw("chart-hourly", {
      type: "bar",
      data: {
        labels: report.hourly.labels.map(function (l) { return l.slice(5); }),
        datasets: Object.keys(report.hourly.counts).map(function (name) {
          var useCase = report.use_cases[name] || {};
          return { label: useCase.title || name, data: report.hourly.counts[name], backgroundColor: useCase.color,
                   borderRadius: 2 };
        }),
      },
      options: { scales: { x: { stacked: true, ticks: { maxTicksLimit: 12 } }, y: { stacked: true, beginAtZero: true,
                                                                                 ticks: { precision: 0 } } } },
    });
  }

  function topBars(id, rows, label, color) {
    draw(id, {
      type: "bar",
      data: { labels: rows.map(label), datasets: [{ label: "Predictions", data: rows.map(function (r) {
        return r.predictions; }), backgroundColor: color, maxBarThickness: 26, borderRadius: 4 }] },
      options: { indexAxis: "y", plugins: { legend: { display: false } },
                 scales: { x: { beginAtZero: true, ticks: { precision: 0 } } } },
    });
  }

  function mix(id, counts) {
    var names = Object.keys(counts);
    draw(id, {
      type: "doughnut",
      data: { labels: names.map(function (n) { return LABELS[n] || n; }),
              datasets: [{ data: names.map(function (n) { return counts[n]; }),
                           backgroundColor: names.map(function (n, i) {
                             return COLORS[n] || PALETTE[i % PALETTE.length]; }) }] },
      options: { cutout: "55%" },
    });
  }

  function models(report) {
    var useCases = Object.keys(report.models);
    var baselineNames = [];
    useCases.forEach(function (u) {
      Object.keys(report.models[u].scores).forEach(function (s) {
        if (s !== "model" && baselineNames.indexOf(s) < 0) baselineNames.push(s);
      });
    });
    var datasets = [{ label: "Model", backgroundColor: COLORS.model, maxBarThickness: 70,
                      data: useCases.map(function (u) { return report.models[u].scores.model.log_loss; }) }];
    // one bar per baseline rank (best, second best) so both use cases share the chart
    [0, 1].forEach(function (rank) {
      datasets.push({
        label: rank === 0 ? "Best baseline" : "Other baseline",
        backgroundColor: COLORS.baseline[rank],
        maxBarThickness: 70,
        data: useCases.map(function (u) {
          var scores = report.models[u].scores;
          var values = Object.keys(scores).filter(function (s) { return s !== "model"; })
            .map(function (s) { return scores[s].log_loss; }).sort();
          return values[rank] === undefined ? null : values[rank];
        }),
      });
    });
    draw("chart-models", {
      type: "bar",
      data: { labels: useCases.map(function (u) {
                return (report.use_cases[u] ? report.use_cases[u].title : u) + " · " + report.models[u].version; }),
              datasets: datasets },
      options: { scales: { y: { beginAtZero: true, title: { display: true, text: "log loss" } } } },
    });
  }

  function render(report) {
    kpis(report);
    hourly(report);
    var total = 0;
    Object.keys(report.use_cases).forEach(function (name) {
      var useCase = report.use_cases[name];
      useCase.top_lists.forEach(function (top) {
        var label = function (r) { return top.columns.map(function (c) { return r[c]; }).join(" – "); };
        topBars("chart-" + top.key.replace(/^top_/, ""), report[top.key] || [], label, useCase.color);
      });
      mix("chart-outcomes-" + name, report.outcomes[name] || {});
      total += report.totals[name] || 0;
    });
    models(report);
    liveTable(report);
    status(total ? "" : "No predictions logged yet: ask for one on the Predict page.", false);
    document.getElementById("charts").setAttribute("data-rendered", report.generated_at);
  }

  function cell(text) {
    var td = document.createElement("td");
    td.textContent = text;
    return td;
  }

  // the live hit rate and log loss per model version (model_live_scores), once any prediction met its event
  function liveTable(report) {
    var rows = (report.live || []).filter(function (r) { return r.predictions > 0; });
    if (!rows.length) return;
    var body = document.querySelector("#live-results tbody");
    body.textContent = "";
    rows.forEach(function (r) {
      var tr = document.createElement("tr");
      [report.use_cases[r.use_case] ? report.use_cases[r.use_case].title : r.use_case, r.model_version,
       String(r.predictions), String(r.resolved),
       r.hit_rate === null ? "–" : (100 * r.hit_rate).toFixed(1) + " %",
       r.log_loss === null ? "–" : r.log_loss.toFixed(4)].forEach(function (text) { tr.appendChild(cell(text)); });
      body.appendChild(tr);
    });
  }

  function load() {
    var source = document.getElementById("charts").getAttribute("data-source");
    fetch(source, { headers: { Accept: "application/json" } })
      .then(function (response) {
        return response.json().then(function (body) {
          if (!response.ok) throw new Error(body.error ? body.error.message : "HTTP " + response.status);
          return body;
        });
      })
      .then(render)
      .catch(function (error) { status("Could not load the analytics: " + error.message, true); });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", load);
  else load();
})();
