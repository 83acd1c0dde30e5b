/*
 * Draws every <canvas data-source="ID" [data-chart="KEY"] data-kind="bar|hbar|line|step"> with Chart.js.
 *
 * The data come from the page's {{ ...|json_script:ID }} element (no inline script, so a strict
 * Content-Security-Policy holds): either {label, labels, values} for one series or
 * {labels, series: [{label, values}]} for several. Amounts arrive as decimal strings.
 */
(function () {
  "use strict";

  var PALETTE = ["#1d4ed8", "#15803d", "#b45309", "#7c3aed", "#0e7490", "#be185d", "#4d7c0f", "#b91c1c"];
  var NEGATIVE = "#b91c1c";

  function numbers(values) {
    return (values || []).map(function (value) { return value === null ? null : Number(value); });
  }

  function formatter(canvas, currency) {
    var lang = document.documentElement.lang || "en";
    if (canvas.dataset.money && currency) {
      var money = new Intl.NumberFormat(lang, { style: "currency", currency: currency, maximumFractionDigits: currency === "JPY" ? 0 : 2 });
      return function (value) { return money.format(value); };
    }
    if (canvas.dataset.percent) {
      var percent = new Intl.NumberFormat(lang, { maximumFractionDigits: 1 });
      return function (value) { return percent.format(value) + "%"; };
    }
    var plain = new Intl.NumberFormat(lang);
    return function (value) { return plain.format(value); };
  }

  function datasets(spec, kind, canvas) {
    var series = spec.series || [{ label: spec.label, values: spec.values }];
    return series.map(function (one, index) {
      var data = numbers(one.values);
      var colour = PALETTE[index % PALETTE.length];
      var set = { label: one.label, data: data, borderColor: colour, backgroundColor: colour };
      if (kind === "line" || kind === "step") {
        set.fill = false;
        set.tension = 0.2;
        set.pointRadius = 2;
        if (kind === "step") { set.stepped = "before"; }
      } else if (canvas.dataset.percent) {
        set.backgroundColor = data.map(function (value) { return value !== null && value < 0 ? NEGATIVE : colour; });
      } else if (series.length === 1) {
        set.backgroundColor = data.map(function (_value, i) { return PALETTE[i % PALETTE.length]; });
      }
      return set;
    });
  }

  function draw(canvas, spec, currency) {
    var kind = canvas.dataset.kind || "bar";
    var format = formatter(canvas, currency);
    var horizontal = kind === "hbar";
    var valueAxis = horizontal ? "x" : "y";
    var scales = {};
    scales[valueAxis] = { beginAtZero: true, ticks: { callback: function (value) { return format(value); } } };
    return new window.Chart(canvas, {
      type: kind === "hbar" ? "bar" : (kind === "step" ? "line" : kind),
      data: { labels: spec.labels || [], datasets: datasets(spec, kind, canvas) },
      options: {
        indexAxis: horizontal ? "y" : "x",
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        scales: scales,
        plugins: {
          legend: { display: Boolean(spec.series && spec.series.length > 1) },
          tooltip: {
            callbacks: {
              label: function (context) {
                var value = horizontal ? context.parsed.x : context.parsed.y;
                return (context.dataset.label ? context.dataset.label + ": " : "") + format(value);
              }
            }
          }
        }
      }
    });
  }

  function drawAll() {
    if (!window.Chart) { return; }
    var sources = {};
    document.querySelectorAll("canvas[data-source]").forEach(function (canvas) {
      var id = canvas.dataset.source;
      if (!(id in sources)) {
        var element = document.getElementById(id);
        sources[id] = element ? JSON.parse(element.textContent) : null;
      }
      var root = sources[id];
      if (!root) { return; }
      var spec = canvas.dataset.chart ? root[canvas.dataset.chart] : root;
      if (spec && !window.Chart.getChart(canvas)) {
        draw(canvas, spec, root.currency || spec.currency);
      }
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", drawAll);
  } else {
    drawAll();
  }
})();
