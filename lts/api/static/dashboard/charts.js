/* LTS dashboard charts: hand-written SVG through the DOM (createElementNS, attributes and
 * textContent only; no innerHTML, no library). Exposes window.LtsCharts.equity and .candles. */
"use strict";
(function () {
  const NS = "http://www.w3.org/2000/svg";
  const PAD = { left: 64, right: 14, top: 12, bottom: 24 };

  function el(name, attrs, parent) {
    const node = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (parent) parent.appendChild(node);
    return node;
  }

  function frame(container, height) {
    container.replaceChildren();
    const width = Math.max(container.clientWidth || 600, 280);
    const svg = el("svg", { class: "chart", width, height, viewBox: `0 0 ${width} ${height}`,
      role: "img" }, container);
    return { svg, width, height, w: width - PAD.left - PAD.right, h: height - PAD.top - PAD.bottom };
  }

  function niceTicks(lo, hi, count) {
    if (!(hi > lo)) { const d = Math.abs(lo) * 0.01 || 1; lo -= d; hi += d; }
    const room = (hi - lo) * 0.08; // the highest and lowest marks stay off the edges
    lo -= room; hi += room;
    const raw = (hi - lo) / count;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
    const ticks = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(v);
    return { lo: Math.min(lo, ticks[0]), hi: Math.max(hi, ticks[ticks.length - 1]), ticks, step };
  }

  function fmtNum(v, step) {
    const digits = step >= 1 ? 0 : Math.min(8, Math.ceil(-Math.log10(step)));
    return v.toLocaleString(undefined, { minimumFractionDigits: digits, maximumFractionDigits: digits });
  }

  function fmtTime(ms, spanMs) {
    const d = new Date(ms);
    if (spanMs > 2 * 86400e3) return d.toISOString().slice(5, 10);
    return d.toISOString().slice(11, spanMs > 600e3 ? 16 : 19);
  }

  function axes(f, yTicks, y, t0, t1, x) {
    for (const v of yTicks.ticks) {
      const yy = y(v);
      el("line", { class: "grid", x1: PAD.left, x2: PAD.left + f.w, y1: yy, y2: yy }, f.svg);
      el("text", { x: PAD.left - 6, y: yy + 4, "text-anchor": "end" }, f.svg).textContent =
        fmtNum(v, yTicks.step);
    }
    el("line", { class: "axis", x1: PAD.left, x2: PAD.left + f.w, y1: PAD.top + f.h,
      y2: PAD.top + f.h }, f.svg);
    const n = Math.max(2, Math.floor(f.w / 110));
    let previous = null;
    for (let i = 0; i <= n; i++) {
      const t = t0 + ((t1 - t0) * i) / n;
      const label = fmtTime(t, t1 - t0);
      if (label === previous) continue; // a short span: one label per second
      previous = label;
      el("text", { x: x(t), y: PAD.top + f.h + 16, "text-anchor": i === 0 ? "start" : i === n ? "end" : "middle" },
        f.svg).textContent = label;
    }
  }

  /** An equity curve: points [{t: ms, equity: number}]. */
  function equity(container, points, opts) {
    const f = frame(container, (opts && opts.height) || 240);
    if (points.length < 2) {
      el("text", { x: f.width / 2, y: f.height / 2, "text-anchor": "middle" }, f.svg).textContent =
        "no fills yet";
      return;
    }
    const t0 = points[0].t, t1 = Math.max(points[points.length - 1].t, t0 + 1);
    let lo = Infinity, hi = -Infinity;
    for (const p of points) { lo = Math.min(lo, p.equity); hi = Math.max(hi, p.equity); }
    const yt = niceTicks(lo, hi, 4);
    const x = (t) => PAD.left + ((t - t0) / (t1 - t0)) * f.w;
    const y = (v) => PAD.top + f.h - ((v - yt.lo) / (yt.hi - yt.lo)) * f.h;
    axes(f, yt, y, t0, t1, x);
    const line = points.map((p, i) => `${i ? "L" : "M"}${x(p.t).toFixed(1)},${y(p.equity).toFixed(1)}`).join("");
    el("path", { class: "area", d: `${line}L${x(t1).toFixed(1)},${PAD.top + f.h}L${x(t0).toFixed(1)},${PAD.top + f.h}Z` }, f.svg);
    el("path", { class: "equity", d: line, "data-points": points.length }, f.svg);
  }

  const SPANS = [1e3, 2e3, 5e3, 10e3, 15e3, 30e3, 60e3, 120e3, 300e3, 900e3, 1800e3, 3600e3,
    4 * 3600e3, 86400e3];

  /** OHLC candles from trade prices [{t: ms, price}], about ``count`` of them. */
  function buildCandles(trades, count) {
    if (!trades.length) return { candles: [], span: 0 };
    const t0 = trades[0].t, t1 = trades[trades.length - 1].t;
    const span = SPANS.find((s) => (t1 - t0) / s <= count) || SPANS[SPANS.length - 1];
    const out = [];
    for (const tr of trades) {
      const start = Math.floor(tr.t / span) * span;
      const last = out[out.length - 1];
      if (last && last.t === start) {
        last.high = Math.max(last.high, tr.price); last.low = Math.min(last.low, tr.price);
        last.close = tr.price;
      } else {
        const open = last ? last.close : tr.price;
        out.push({ t: start, open, high: Math.max(open, tr.price), low: Math.min(open, tr.price), close: tr.price });
      }
    }
    return { candles: out, span };
  }

  /** Candles with fills marked: fills [{t: ms, price, side}] (buy: up triangle, sell: down). */
  function candles(container, series, fills, opts) {
    const f = frame(container, (opts && opts.height) || 220);
    const { candles: cs, span } = series;
    if (!cs.length) {
      el("text", { x: f.width / 2, y: f.height / 2, "text-anchor": "middle" }, f.svg).textContent =
        "no prices yet";
      return;
    }
    const t0 = cs[0].t, t1 = cs[cs.length - 1].t + span;
    let lo = Infinity, hi = -Infinity;
    for (const c of cs) { lo = Math.min(lo, c.low); hi = Math.max(hi, c.high); }
    const yt = niceTicks(lo, hi, 4);
    const x = (t) => PAD.left + ((t - t0) / (t1 - t0)) * f.w;
    const y = (v) => PAD.top + f.h - ((v - yt.lo) / (yt.hi - yt.lo)) * f.h;
    axes(f, yt, y, t0, t1, x);
    const bw = Math.max(1, Math.min(14, (f.w / ((t1 - t0) / span)) * 0.7));
    for (const c of cs) {
      const cx = x(c.t + span / 2), kind = c.close >= c.open ? "up" : "down";
      el("line", { class: `wick ${kind}`, x1: cx, x2: cx, y1: y(c.high), y2: y(c.low) }, f.svg);
      const top = y(Math.max(c.open, c.close)), bottom = y(Math.min(c.open, c.close));
      el("rect", { class: kind, x: cx - bw / 2, y: top, width: bw, height: Math.max(1, bottom - top) }, f.svg);
    }
    for (const fl of fills) {
      const cx = x(fl.t), cy = y(fl.price), s = 6;
      const d = fl.side === "buy" ? `M${cx},${cy + 3}l${-s},${s * 1.6}h${2 * s}Z`
        : `M${cx},${cy - 3}l${-s},${-s * 1.6}h${2 * s}Z`;
      const mark = el("path", { class: `fill-mark ${fl.side}`, d }, f.svg);
      el("title", {}, mark).textContent = `${fl.side} ${fl.quantity} @ ${fl.price}`;
    }
  }

  window.LtsCharts = { equity, candles, buildCandles };
})();
