/* The backtest report's chart (lts/backtest/report_html.py writes the page around it).
 *
 * Reads window.LTS_REPORT (report-data.js) and draws, on one time axis: a row of candles per
 * symbol with its trades, then the equity and the drawdown. Loaded as a file: the page has no
 * inline script, so it works under Content-Security-Policy: script-src 'self'. Only SVG trace
 * types are used (no WebGL: those need 'unsafe-eval'). Text in the data is escaped already.
 */
(function () {
  "use strict";

  var report = window.LTS_REPORT;
  var chart = document.getElementById("chart");
  if (!report || !chart || !window.Plotly) {
    return;
  }

  var GREEN = "#2ca02c";
  var RED = "#d62728";
  var traces = [];
  var rows = [];

  function axis(row) {
    return row === 0 ? "y" : "y" + (row + 1);
  }

  function markers(points, name, row, symbol, color) {
    return {
      type: "scatter", mode: "markers", name: name, x: points.x, y: points.y,
      text: points.text, hoverinfo: "text", yaxis: axis(row), legendgroup: name,
      marker: { symbol: symbol, size: 10, color: color, line: { width: 1, color: "#333" } }
    };
  }

  function segments(points, name, row, color) {
    return {
      type: "scatter", mode: "lines", name: name, x: points.x, y: points.y,
      hoverinfo: "skip", yaxis: axis(row), legendgroup: name, connectgaps: false,
      line: { color: color, width: 1.5, dash: "dot" }
    };
  }

  report.prices.forEach(function (series) {
    var row = rows.length;
    var first = row === 0;
    rows.push({ weight: 3, title: series.symbol });
    traces.push({
      type: "candlestick", name: series.symbol, x: series.x, open: series.open,
      high: series.high, low: series.low, close: series.close, yaxis: axis(row),
      increasing: { line: { color: "#26a69a" } }, decreasing: { line: { color: "#ef5350" } }
    });
    [
      segments(series.wins, "winning trade", row, GREEN),
      segments(series.losses, "losing trade", row, RED),
      markers(series.long_entries, "long entry", row, "triangle-up", GREEN),
      markers(series.short_entries, "short entry", row, "triangle-down", RED),
      markers(series.exits, "exit", row, "circle", "#ffffff")
    ].forEach(function (trace) {
      trace.showlegend = first;
      traces.push(trace);
    });
  });

  var equityRow = rows.length;
  rows.push({ weight: 2, title: "Equity (" + report.currency + ")" });
  traces.push({
    type: "scatter", mode: "lines", name: "equity", x: report.equity.x, y: report.equity.y,
    yaxis: axis(equityRow), line: { color: "#1f77b4", width: 1.5 }
  });
  var drawdownRow = rows.length;
  rows.push({ weight: 1, title: "Drawdown (%)" });
  traces.push({
    type: "scatter", mode: "lines", name: "drawdown", x: report.drawdown.x,
    y: report.drawdown.y, yaxis: axis(drawdownRow), fill: "tozeroy",
    line: { color: RED, width: 1 }
  });

  var gap = 0.03;
  var total = rows.reduce(function (sum, r) { return sum + r.weight; }, 0);
  var usable = 1 - gap * (rows.length - 1);
  var layout = {
    height: 120 + rows.reduce(function (sum, r) { return sum + r.weight * 90; }, 0),
    margin: { l: 70, r: 20, t: 20, b: 40 },
    hovermode: "closest",
    legend: { orientation: "h", y: -0.09 },
    xaxis: {
      type: "date", anchor: axis(rows.length - 1), rangeslider: { visible: false },
      title: { text: "time (UTC)" }
    }
  };
  var top = 1;
  rows.forEach(function (r, i) {
    var height = usable * r.weight / total;
    layout[i === 0 ? "yaxis" : "yaxis" + (i + 1)] = {
      domain: [Math.max(0, top - height), top], title: { text: r.title }, fixedrange: false
    };
    top -= height + gap;
  });

  window.Plotly.newPlot(chart, traces, layout, { responsive: true, displaylogo: false });
}());
