/* The sweep's heatmap (lts/backtest/sweep_report.py writes the page around it; the sweep's
 * directory holds it as heatmap.js).
 *
 * Reads window.LTS_SWEEP (heatmap-data.js): the metric over the first swept param (x) and the
 * second (y), one cell per pair of values, null where nothing ran or the metric is undefined.
 * Loaded as a file: the page has no inline script, so it works under
 * Content-Security-Policy: script-src 'self'. An SVG trace only (no WebGL). Text in the data
 * is escaped already.
 */
(function () {
  "use strict";

  var sweep = window.LTS_SWEEP;
  var chart = document.getElementById("chart");
  if (!sweep || !chart || !window.Plotly) {
    return;
  }

  var trace = {
    type: "heatmap",
    x: sweep.x.values,
    y: sweep.y.values,
    z: sweep.z,
    text: sweep.text,
    hoverinfo: "text",
    colorscale: "Viridis",
    reversescale: sweep.reverse,
    hoverongaps: false,
    colorbar: { title: { text: sweep.metric } }
  };
  var rows = sweep.y.values.length;
  var layout = {
    height: Math.max(320, Math.min(900, 160 + rows * 28)),
    margin: { l: 90, r: 20, t: 30, b: 60 },
    title: { text: sweep.metric + " (" + sweep.direction + ")", font: { size: 14 } },
    xaxis: { type: "category", title: { text: sweep.x.name } },
    yaxis: { type: "category", title: { text: sweep.y.name } }
  };

  window.Plotly.newPlot(chart, [trace], layout, { responsive: true, displaylogo: false });
}());
