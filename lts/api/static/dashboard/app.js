/* LTS dashboard: pages, the REST client and the live WebSocket client. Hand-written, no build.
 *
 * Security: tokens live in this tab's sessionStorage and go out only as an Authorization header
 * (no cookie: nothing for CSRF to ride on); the WebSocket authenticates with its first message.
 * Data from the API reaches the page only through textContent and DOM attributes (the h()
 * helper below): never innerHTML, never eval. The page's CSP allows scripts from this origin
 * only. */
"use strict";
(function () {
  // ---- DOM helpers: text only ------------------------------------------------------------------
  function h(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "text") node.textContent = String(v);
      else if (k === "class") node.className = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (k === "dataset") Object.assign(node.dataset, v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }
  const $ = (id) => document.getElementById(id);
  const main = () => $("main");

  // ---- formatting ---------------------------------------------------------------------------------
  const money = new Intl.NumberFormat(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  function fmtMoney(v) { return v === null || v === undefined ? "—" : money.format(Number(v)); }
  function fmtQty(v) {
    if (v === null || v === undefined) return "—";
    const n = Number(v);
    return n.toLocaleString(undefined, { maximumFractionDigits: 8 });
  }
  function fmtPrice(v) {
    if (v === null || v === undefined) return "—";
    return Number(v).toLocaleString(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 6 });
  }
  function fmtTs(ns) {
    if (!ns) return "—";
    return new Date(Number(ns) / 1e6).toISOString().replace("T", " ").slice(0, 19);
  }
  function signed(v) {
    if (v === null || v === undefined) return h("span", { class: "muted", text: "—" });
    const n = Number(v);
    return h("span", { class: n > 0 ? "good" : n < 0 ? "bad" : "", text: (n > 0 ? "+" : "") + money.format(n) });
  }
  function badge(value) { return h("span", { class: `badge ${value}`, text: value }); }

  let toastTimer = null;
  function toast(message, error) {
    const t = $("toast");
    t.textContent = message;
    t.className = error ? "toast error" : "toast";
    t.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { t.hidden = true; }, error ? 8000 : 3500);
  }

  // ---- session: tokens in this tab's sessionStorage ------------------------------------------------
  const store = window.sessionStorage;
  const session = {
    get access() { return store.getItem("lts.access"); },
    get refresh() { return store.getItem("lts.refresh"); },
    get user() { try { return JSON.parse(store.getItem("lts.user") || "null"); } catch (e) { return null; } },
    save(pair) { store.setItem("lts.access", pair.access_token); store.setItem("lts.refresh", pair.refresh_token); },
    setUser(u) { store.setItem("lts.user", JSON.stringify(u)); },
    clear() { store.removeItem("lts.access"); store.removeItem("lts.refresh"); store.removeItem("lts.user"); },
  };

  class ApiError extends Error {
    constructor(status, detail, body) { super(detail); this.status = status; this.body = body; }
  }

  function detailOf(body, status) {
    if (body && typeof body.detail === "string") return body.detail;
    if (body && Array.isArray(body.detail)) {
      return body.detail.map((d) => `${(d.loc || []).slice(1).join(".") || d.field || ""}: ${d.msg || d.message || ""}`).join("; ");
    }
    if (body && body.message) return `${body.field ? body.field + ": " : ""}${body.message}`;
    return `HTTP ${status}`;
  }

  let refreshing = null;
  async function refreshTokens() {
    if (!session.refresh) return false;
    if (!refreshing) {
      refreshing = fetch("/api/v1/auth/refresh", {
        method: "POST", headers: { "content-type": "application/json" },
        body: JSON.stringify({ refresh_token: session.refresh }),
      }).then(async (r) => {
        if (!r.ok) return false;
        session.save(await r.json());
        return true;
      }).catch(() => false).finally(() => { refreshing = null; });
    }
    return refreshing;
  }

  async function api(method, path, body, retried) {
    const headers = {};
    if (session.access) headers.authorization = `Bearer ${session.access}`;
    if (body !== undefined) headers["content-type"] = "application/json";
    let r;
    try {
      r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (e) {
      throw new ApiError(0, "the engine does not answer");
    }
    if (r.status === 401 && !retried && (await refreshTokens())) return api(method, path, body, true);
    if (r.status === 401) { signOut("Your session ended: log in again."); throw new ApiError(401, "not authenticated"); }
    if (r.status === 204) return null;
    let data = null;
    try { data = await r.json(); } catch (e) { data = null; }
    if (!r.ok) throw new ApiError(r.status, detailOf(data, r.status), data);
    return data;
  }

  // ---- live updates: the WebSocket of committed order events ----------------------------------------
  /* One socket per page; the page says which portfolios it follows and from which seq. The last
   * seq seen per portfolio is kept across reconnects, so a resubscription replays exactly what
   * was missed (the server sends committed events after `since`); a seq of null follows a
   * portfolio from now on, without its history. Reconnects back off (1 s up to 15 s); nothing
   * polls. */
  const live = {
    ws: null, since: {}, handler: null, wanted: false, retry: 0, timer: null, generation: 0,
    follow(since, handler) {
      this.stop();
      this.since = Object.assign({}, since);
      this.handler = handler;
      this.wanted = Object.keys(this.since).length > 0;
      if (this.wanted) { this.indicate(false, "connecting…"); this.connect(); }
    },
    stop() {
      this.wanted = false;
      this.generation++;
      clearTimeout(this.timer);
      if (this.ws) { try { this.ws.close(1000, "page left"); } catch (e) { /* closed */ } }
      this.ws = null;
      this.indicate(false, "offline");
    },
    indicate(on, text) {
      const el = $("live");
      if (!el) return;
      el.hidden = !on && !this.wanted; // shown on the pages that follow events
      el.className = on ? "live on" : "live off";
      el.textContent = text;
      el.dataset.state = on ? "live" : text;
    },
    async connect() {
      const gen = this.generation;
      // a fresh access token first (the socket's session check needs a valid one)
      try { await api("GET", "/api/v1/auth/me"); } catch (e) { if (gen === this.generation) this.later(); return; }
      if (gen !== this.generation || !this.wanted) return;
      const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/orders`;
      const ws = new WebSocket(url);
      this.ws = ws;
      ws.onopen = () => {
        ws.send(JSON.stringify({ action: "auth", token: session.access }));
        // a portfolio followed "from now" (null: nothing seen yet) asks past the journal's end
        const since = {};
        for (const [pid, seq] of Object.entries(this.since)) since[pid] = seq === null ? Number.MAX_SAFE_INTEGER : seq;
        ws.send(JSON.stringify({ action: "subscribe", since }));
      };
      ws.onmessage = (m) => {
        let ev;
        try { ev = JSON.parse(m.data); } catch (e) { return; }
        if (ev.type === "subscribed") {
          this.retry = 0;
          this.indicate(true, "live");
          if (this.handler && this.handler.resumed) this.handler.resumed();
          return;
        }
        if (ev.type === "error") { toast(`live updates: ${ev.detail}`, true); return; }
        const pid = String(ev.portfolio_id);
        if (typeof ev.seq === "number") {
          if (ev.seq <= (this.since[pid] || 0)) return; // seen already
          this.since[pid] = ev.seq;
        }
        if (this.handler) this.handler.event(ev);
      };
      ws.onclose = (e) => {
        if (gen !== this.generation) return;
        this.ws = null;
        if (e.code === 1008 && e.reason === "origin not allowed") {
          this.indicate(false, "refused");
          toast("Live updates refused: this page's origin is not in api.cors_origins.", true);
          return;
        }
        this.later();
      };
    },
    later() {
      if (!this.wanted) return;
      this.indicate(false, "reconnecting…");
      const wait = Math.min(15000, 1000 * Math.pow(2, this.retry++));
      this.timer = setTimeout(() => this.connect(), wait);
    },
  };

  /** Run ``fn`` once ``ms`` after the last of a burst of calls (typing, resizing). */
  function debounce(fn, ms) {
    let t = null;
    return (...args) => { clearTimeout(t); t = setTimeout(() => fn(...args), ms); };
  }

  /** Run ``fn`` ``ms`` after a call, once for every call in between: a steady stream of
   * events (a fill every bar) still refreshes the page every ``ms``. */
  function throttle(fn, ms) {
    let t = null;
    return () => { if (t === null) t = setTimeout(() => { t = null; fn(); }, ms); };
  }

  // ---- confirmation dialog ------------------------------------------------------------------------
  function confirmAction(title, rows, danger) {
    const dlg = $("confirm");
    $("confirm-title").textContent = title;
    const dl = h("dl", {});
    for (const [k, v] of rows) dl.append(h("dt", { text: k }), h("dd", { text: v }));
    $("confirm-body").replaceChildren(dl);
    $("confirm-yes").className = danger ? "danger" : "";
    return new Promise((resolve) => {
      dlg.addEventListener("close", () => resolve(dlg.returnValue === "ok"), { once: true });
      dlg.returnValue = "cancel";
      dlg.showModal();
    });
  }

  // ---- pages ----------------------------------------------------------------------------------------
  const role = () => (session.user ? session.user.role : null);
  const canTrade = () => role() === "admin" || role() === "trader";
  let timers = [];
  let shown = 0; // the page being shown: a page still loading when another is asked for stops
  function onLeave(fn) { timers.push(fn); }
  function leavePage() { shown++; for (const fn of timers) fn(); timers = []; live.stop(); }
  /** A function that says whether the page that called it is still the one shown. */
  function current() { const mine = shown; return () => mine === shown; }

  function showChrome(on) {
    $("topbar").hidden = !on;
    if (!on) return;
    const u = session.user;
    $("who").textContent = u ? `${u.username} · ${u.role}` : "";
    for (const a of document.querySelectorAll("[data-admin]")) a.hidden = role() !== "admin";
  }

  function markNav(name) {
    for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("current", a.dataset.nav === name);
  }

  // -- login
  function loginPage(message) {
    showChrome(false);
    const msg = h("p", { class: "message", id: "login-message", text: message || "" });
    const user = h("input", { name: "username", id: "username", autocomplete: "username", required: true, autofocus: true });
    const pass = h("input", { name: "password", id: "password", type: "password", autocomplete: "current-password", required: true });
    const form = h("form", {
      onsubmit: async (e) => {
        e.preventDefault();
        msg.textContent = "";
        try {
          const r = await fetch("/api/v1/auth/login", {
            method: "POST", headers: { "content-type": "application/json" },
            body: JSON.stringify({ username: user.value, password: pass.value }),
          });
          if (!r.ok) {
            msg.textContent = r.status === 429 ? "Too many failed logins: wait a moment." : "Invalid user name or password.";
            return;
          }
          session.save(await r.json());
          session.setUser(await api("GET", "/api/v1/auth/me"));
          if (location.hash.startsWith("#/login") || !location.hash) location.hash = "#/";
          else route();
        } catch (err) { msg.textContent = err.message; }
      },
    },
    h("label", {}, "User name", user), h("label", {}, "Password", pass),
    h("button", { type: "submit", id: "login-submit" }, "Log in"), msg);
    main().replaceChildren(h("div", { class: "panel login" }, h("h1", { text: "LTS" }),
      h("p", { class: "muted", text: "Log in to watch and control the engine." }), form));
  }

  function signOut(message) {
    leavePage();
    session.clear();
    if (!location.hash.startsWith("#/login")) history.replaceState(null, "", "#/login");
    loginPage(message);
  }

  // -- overview: one request for every portfolio
  const OVERVIEW_COLUMNS = [
    ["id", "ID", true], ["name", "Name", false], ["status", "Status", false],
    ["trading_state", "Trading", false], ["equity", "Equity", true], ["today_pnl", "Today", true],
    ["pnl", "P&L total", true],
    ["open_positions", "Positions", true], ["open_orders", "Open orders", true],
    ["fills", "Fills", true], ["last_tick_ns", "Last tick", true], ["last_error", "Last error", false],
  ];

  async function overviewPage() {
    markNav("overview");
    const filter = h("input", { class: "filter", type: "search", id: "filter", placeholder: "Filter: name, status or trading state" });
    const counts = h("span", { class: "muted", id: "counts" });
    const tbody = h("tbody", { id: "portfolio-rows" });
    const state = { rows: [], sort: "id", desc: false };
    const head = h("tr", {}, OVERVIEW_COLUMNS.map(([key, label, numeric]) => h("th", {
      class: `sortable${numeric ? " num" : ""}`, dataset: { key },
      onclick: () => { state.desc = state.sort === key ? !state.desc : false; state.sort = key; draw(); },
    }, label)));
    main().replaceChildren(
      h("div", { class: "head" }, h("h1", { text: "Portfolios" }), counts, h("span", { class: "spacer" }), filter),
      h("div", { class: "panel" }, h("div", { class: "scroll" }, h("table", { id: "overview" }, h("thead", {}, head), tbody))));

    const value = (r, key) => key === "pnl" ? (r.equity === null ? null : Number(r.equity) - Number(r.initial_cash))
      : ["equity", "last_tick_ns"].includes(key) && r[key] !== null ? Number(r[key]) : r[key];

    function draw() {
      const q = filter.value.trim().toLowerCase();
      const rows = state.rows.filter((r) => !q || `${r.name} ${r.status} ${r.trading_state}`.toLowerCase().includes(q));
      rows.sort((a, b) => {
        const x = value(a, state.sort), y = value(b, state.sort);
        const c = x === y ? 0 : x === null ? 1 : y === null ? -1 : x < y ? -1 : 1;
        return state.desc ? -c : c;
      });
      for (const th of head.children) {
        th.classList.toggle("sorted-asc", th.dataset.key === state.sort && !state.desc);
        th.classList.toggle("sorted-desc", th.dataset.key === state.sort && state.desc);
      }
      const frag = document.createDocumentFragment();
      for (const r of rows) {
        const pnl = value(r, "pnl");
        frag.appendChild(h("tr", { dataset: { portfolio: r.id } },
          h("td", { class: "num", text: r.id }),
          h("td", { class: "name" }, h("a", { href: `#/portfolio/${r.id}`, text: r.name, title: r.name })),
          h("td", {}, badge(r.status)), h("td", {}, badge(r.trading_state)),
          h("td", { class: "num", text: fmtMoney(r.equity) }), h("td", { class: "num today" }, signed(r.today_pnl)),
          h("td", { class: "num" }, signed(pnl)),
          h("td", { class: "num", text: r.open_positions }), h("td", { class: "num", text: r.open_orders }),
          h("td", { class: "num", text: r.fills }), h("td", { class: "num muted", text: fmtTs(r.last_tick_ns) }),
          h("td", { class: "error", text: r.last_error || "", title: r.last_error || "" })));
      }
      if (!rows.length) frag.appendChild(h("tr", {}, h("td", { colspan: OVERVIEW_COLUMNS.length, class: "empty",
        text: state.rows.length ? "No portfolio matches the filter." : "No portfolio yet." })));
      tbody.replaceChildren(frag);
      const running = state.rows.filter((r) => r.status === "running").length;
      const errors = state.rows.filter((r) => r.status === "error").length;
      const halted = state.rows.filter((r) => r.trading_state === "HALTED").length;
      counts.textContent = `${state.rows.length} portfolios · ${running} running · ${errors} in error · ${halted} halted`;
    }
    filter.addEventListener("input", debounce(draw, 120));

    const alive = current();
    async function load() {
      if (!alive()) return;
      try { const rows = await api("GET", "/api/v1/dashboard/overview"); if (alive()) { state.rows = rows; draw(); } }
      catch (e) { if (e.status !== 401 && e.status !== 0 && alive()) toast(`Portfolios: ${e.message}`, true); }
    }
    await load();
    if (!alive()) return;
    // live: any committed event of a listed portfolio refreshes the table (one request, at most
    // every 2 s); equity between fills moves with prices: a slow refresh every 30 s
    const reload = throttle(load, 2000);
    const since = {};
    for (const r of state.rows) since[String(r.id)] = null; // from now on: no history
    live.follow(since, { event: reload, resumed: reload });
    const slow = setInterval(load, 30000);
    onLeave(() => clearInterval(slow));
  }

  // -- one portfolio
  const OPEN = new Set(["pending_submit", "submitted", "accepted", "partially_filled", "pending_cancel", "unknown"]);

  async function portfolioPage(pid) {
    markNav("overview");
    const alive = current();
    let p, assets, positions, orders, activity;
    try {
      [p, assets, positions, orders, activity] = await Promise.all([
        api("GET", `/api/v1/portfolios/${pid}`), api("GET", `/api/v1/portfolios/${pid}/assets`),
        api("GET", `/api/v1/portfolios/${pid}/positions`),
        api("GET", `/api/v1/orders?portfolio_id=${pid}&limit=500`),
        api("GET", `/api/v1/dashboard/portfolios/${pid}/activity`)]);
    } catch (e) {
      if (e.status === 401 || !alive()) return;
      main().replaceChildren(h("div", { class: "panel" }, h("h1", { text: "Portfolio not available" }),
        h("p", { text: e.message }), h("a", { href: "#/" }, "Back to the portfolios")));
      return;
    }
    if (!alive()) return;
    const ordersById = new Map(orders.filter((o) => OPEN.has(o.status)).map((o) => [o.client_order_id, o]));
    const fills = activity.fills.slice();
    const seen = new Set(fills.map((f) => f.trade_id));
    let curve = activity.curve.slice();
    // each asset's latest bars (500 at most, as its feed keeps); a refresh asks for the newer
    const bars = Object.assign({}, activity.bars);
    const lastBar = () => Math.max(0, ...Object.values(bars).map((b) => (b.length ? b[b.length - 1].t : 0)));
    function keepRecent() {
      // the chart shows the bars' span: older fills are not drawn, so not kept (at most 1000)
      const oldest = Math.min(...Object.values(bars).map((b) => (b.length ? b[0].t : Infinity)));
      let drop = fills.findIndex((f) => f.ts_event >= oldest);
      if (drop < 0) drop = Number.isFinite(oldest) ? fills.length : 0;
      drop = Math.max(drop, fills.length - 1000);
      if (drop > 0) for (const f of fills.splice(0, drop)) seen.delete(f.trade_id);
    }

    const title = h("h1", { id: "portfolio-name", text: p.name });
    const statusBadge = h("span", { id: "status" });
    const tradingBadge = h("span", { id: "trading-state" });
    const fig = (label, id) => { const v = h("div", { class: "value", id }); return [h("div", { class: "figure" }, h("div", { class: "label", text: label }), v), v]; };
    const [equityFig, equityVal] = fig("Equity", "equity");
    const [todayFig, todayVal] = fig("Today's P&L", "today-pnl");
    const [totalFig, totalVal] = fig("P&L since start", "total-pnl");
    const [cashFig, cashVal] = fig("Initial cash", "initial-cash");
    const errorLine = h("p", { class: "bad", id: "last-error" });

    function drawHeader() {
      statusBadge.replaceChildren(badge(p.status));
      tradingBadge.replaceChildren(badge(p.trading_state));
      equityVal.textContent = fmtMoney(activity.equity);
      todayVal.replaceChildren(signed(activity.today_pnl));
      totalVal.replaceChildren(signed(activity.equity === null ? null : Number(activity.equity) - Number(p.initial_cash)));
      cashVal.textContent = fmtMoney(p.initial_cash);
      errorLine.textContent = p.last_error ? `Last error: ${p.last_error}` : "";
      for (const b of switchButtons) b.classList.toggle("on", b.dataset.state === p.trading_state);
      if (activateBtn) { activateBtn.hidden = p.is_active; deactivateBtn.hidden = !p.is_active; }
    }

    // controls (trader and admin; the API checks again)
    let switchButtons = [], activateBtn = null, deactivateBtn = null, controls = null;
    let changes = 0; // a refresh that began before a change must not draw what it read
    async function act(fn) {
      changes++;
      try { const r = await fn(); if (r && r.id) { changes++; p = r; drawHeader(); } return r; }
      catch (e) { if (e.status !== 401) toast(e.message, true); return null; }
    }
    if (canTrade()) {
      activateBtn = h("button", { id: "activate", onclick: () => act(() => api("POST", `/api/v1/portfolios/${pid}/activate`)).then(refresh) }, "Activate");
      deactivateBtn = h("button", { id: "deactivate", class: "ghost", onclick: async () => {
        if (await confirmAction("Deactivate the portfolio?", [["Portfolio", p.name], ["Effect", "its runner stops; open orders stay at the venue"]], true)) {
          await act(() => api("POST", `/api/v1/portfolios/${pid}/deactivate`)); refresh();
        }
      } }, "Deactivate");
      switchButtons = ["ACTIVE", "REDUCING", "HALTED"].map((s) => h("button", {
        class: s, dataset: { state: s }, id: `kill-${s.toLowerCase()}`,
        onclick: async () => {
          if (s === p.trading_state) return;
          if (s !== "ACTIVE" && !(await confirmAction(`Set trading to ${s}?`, [["Portfolio", p.name],
            ["Effect", s === "HALTED" ? "every new order is denied; orders not yet sent are canceled" : "only orders that reduce a position go through"]], s === "HALTED"))) return;
          const r = await act(() => api("PUT", `/api/v1/portfolios/${pid}/trading-state`, { state: s }));
          if (r) toast(`Trading state: ${r.trading_state}`);
        },
      }, s));
      controls = h("div", { class: "panel controls", id: "controls" },
        h("div", { class: "group" }, h("span", { class: "label", text: "Runner" }), activateBtn, deactivateBtn),
        h("div", { class: "group" }, h("span", { class: "label", text: "Kill switch" }), h("div", { class: "switch", id: "kill-switch" }, switchButtons)),
        orderForm());
    }

    function orderForm() {
      if (!assets.length) return h("div", { class: "group" }, h("span", { class: "label", text: "Manual order" }), h("span", { class: "muted", text: "no asset to trade" }));
      const symbol = h("select", { name: "symbol", id: "order-symbol" }, assets.map((a) => h("option", { value: a.symbol, text: a.symbol })));
      const side = h("select", { name: "side", id: "order-side" }, h("option", { value: "buy", text: "buy" }), h("option", { value: "sell", text: "sell" }));
      const type = h("select", { name: "order_type", id: "order-type" }, ["market", "limit"].map((t) => h("option", { value: t, text: t })));
      const qty = h("input", { name: "quantity", id: "order-quantity", inputmode: "decimal", size: 8, required: true, placeholder: "1" });
      const price = h("input", { name: "limit_price", id: "order-price", inputmode: "decimal", size: 10, placeholder: "limit price", disabled: true });
      type.addEventListener("change", () => { price.disabled = type.value !== "limit"; });
      return h("form", { class: "inline group", id: "order-form", onsubmit: async (e) => {
        e.preventDefault();
        const body = { portfolio_id: Number(pid), symbol: symbol.value, side: side.value, quantity: qty.value.trim(), order_type: type.value };
        if (type.value === "limit") body.limit_price = price.value.trim();
        const rows = [["Portfolio", p.name], ["Order", `${body.side} ${body.quantity} ${body.symbol}`], ["Type", body.order_type]];
        if (body.limit_price) rows.push(["Limit price", body.limit_price]);
        if (!(await confirmAction("Place this order?", rows, false))) return;
        // a denied order is a 409 (code order_denied) carrying the order and its reason
        const o = await act(() => api("POST", "/api/v1/orders", body).catch((e) => {
          if (e.status === 409 && e.body && e.body.code === "order_denied") return e.body.order;
          throw e;
        }));
        if (o) { upsertOrder(o); toast(o.status === "denied" ? `Order denied: ${o.reason}` : `Order ${o.client_order_id}: ${o.status}`, o.status === "denied"); }
      } }, h("span", { class: "label", text: "Manual order" }), symbol, side, type, qty, price,
      h("button", { type: "submit", id: "order-submit" }, "Place…"));
    }

    // tables
    const positionsBody = h("tbody", { id: "positions" });
    const ordersBody = h("tbody", { id: "open-orders" });
    const fillsBody = h("tbody", { id: "fills" });
    function drawPositions() {
      const rows = positions.filter((r) => Number(r.quantity) !== 0);
      positionsBody.replaceChildren(...(rows.length ? rows.map((r) => h("tr", {},
        h("td", { text: r.symbol }), h("td", { class: "num", text: fmtQty(r.quantity) }),
        h("td", { class: "num", text: fmtPrice(r.avg_price) }),
        h("td", { class: "num", text: fmtPrice(activity.marks[r.symbol]) }),
        h("td", { class: "num" }, signed(r.realized_pnl)), h("td", { class: "num", text: fmtMoney(r.fees) })))
        : [h("tr", {}, h("td", { colspan: 6, class: "empty", text: "No open position." }))]));
    }
    function drawOrders() {
      const open = [...ordersById.values()].filter((o) => OPEN.has(o.status)).sort((a, b) => b.ts_init - a.ts_init);
      ordersBody.replaceChildren(...(open.length ? open.map((o) => h("tr", { dataset: { order: o.client_order_id } },
        h("td", { class: "muted", text: o.client_order_id }), h("td", { text: o.symbol }), h("td", { text: o.side }),
        h("td", { text: o.order_type }), h("td", { class: "num", text: fmtQty(o.quantity) }),
        h("td", { class: "num", text: fmtPrice(o.limit_price) }), h("td", { class: "num", text: fmtQty(o.filled_quantity) }),
        h("td", {}, badge(o.status)),
        h("td", {}, canTrade() ? h("button", { class: "small ghost", onclick: async () => {
          const r = await act(() => api("DELETE", `/api/v1/orders/${encodeURIComponent(o.client_order_id)}`));
          if (r) upsertOrder(r);
        } }, "Cancel") : null)))
        : [h("tr", {}, h("td", { colspan: 9, class: "empty", text: "No open order." }))]));
    }
    function fillRow(f, fresh) {
      return h("tr", { class: fresh ? "flash" : "", dataset: { tradeId: f.trade_id } },
        h("td", { class: "muted", text: fmtTs(f.ts_event) }), h("td", { text: f.symbol }),
        h("td", { class: f.side === "buy" ? "good" : "bad", text: f.side }),
        h("td", { class: "num", text: fmtQty(f.quantity) }), h("td", { class: "num", text: fmtPrice(f.price) }),
        h("td", { class: "num", text: fmtMoney(f.fee) }), h("td", { class: "muted", text: f.client_order_id }));
    }
    function drawFills() {
      const recent = fills.slice(-100).reverse();
      fillsBody.replaceChildren(...(recent.length ? recent.map((f) => fillRow(f, false))
        : [h("tr", {}, h("td", { colspan: 7, class: "empty", text: "No fill yet." }))]));
    }

    // charts
    const equityBox = h("div", { id: "equity-chart" });
    const candleBoxes = new Map(assets.map((a) => [a.symbol, h("div", { class: "candles", dataset: { symbol: a.symbol } })]));
    function drawCharts() {
      keepRecent();
      window.LtsCharts.equity(equityBox, curve.map((c) => ({ t: c.t / 1e6, equity: c.equity })));
      for (const [sym, box] of candleBoxes) {
        const trades = fills.filter((f) => f.symbol === sym).map((f) => ({ t: f.ts_event / 1e6, price: Number(f.price), side: f.side, quantity: f.quantity }));
        // each bar as its open, high, low and close at its time: buildCandles makes candles
        // of several bars when there are more than it draws (fills join them as trades)
        const samples = (bars[sym] || []).flatMap((b) => [b.open, b.high, b.low, b.close]
          .map((price) => ({ t: b.t / 1e6, price })));
        const series = window.LtsCharts.buildCandles(samples.concat(trades).sort((a, b) => a.t - b.t), 60);
        window.LtsCharts.candles(box, series, trades);
      }
    }

    function table(cols, body) {
      return h("table", {}, h("thead", {}, h("tr", {}, cols.map(([c, n]) => h("th", { class: n ? "num" : "", text: c })))), body);
    }

    main().replaceChildren(
      h("div", { class: "head" }, title, statusBadge, tradingBadge, h("span", { class: "muted", text: `#${p.id}` }),
        h("span", { class: "spacer" }), h("a", { href: "#/" }, "← All portfolios")),
      h("div", { class: "panel" }, h("div", { class: "figures" }, equityFig, todayFig, totalFig, cashFig), errorLine),
      controls,
      h("div", { class: "panel" }, h("h2", { text: "Equity" }), equityBox),
      h("div", { class: "panel" }, h("h2", { text: "Prices and fills" }),
        h("div", { class: "charts" }, [...candleBoxes].map(([sym, box]) => h("div", {}, h("h2", { text: sym }), box))),
        assets.length ? h("p", { class: "chart-note", text: "Candles of each asset's latest bars from its feed, with the portfolio's fills: ▲ buy, ▼ sell." })
          : h("p", { class: "empty", text: "No asset yet." })),
      h("div", { class: "row" },
        h("div", { class: "panel" }, h("h2", { text: "Positions" }), table([["Symbol"], ["Quantity", 1], ["Avg price", 1], ["Mark", 1], ["Realized", 1], ["Fees", 1]], positionsBody)),
        h("div", { class: "panel" }, h("h2", { text: "Open orders" }), h("div", { class: "scroll short" },
          table([["Order"], ["Symbol"], ["Side"], ["Type"], ["Qty", 1], ["Limit", 1], ["Filled", 1], ["Status"], [""]], ordersBody)))),
      h("div", { class: "panel" }, h("h2", { text: "Recent fills" }), h("div", { class: "scroll short" },
        table([["Time (UTC)"], ["Symbol"], ["Side"], ["Qty", 1], ["Price", 1], ["Fee", 1], ["Order"]], fillsBody))));
    drawHeader(); drawPositions(); drawOrders(); drawFills(); drawCharts();

    // Live updates are painted together, at most every PAINT_MS. With a fill every bar (tens a
    // second) a page that painted each event at once laid out and painted itself tens of times
    // a second: five such pages took 1.6 of the engine machine's 2 cores (bench/dashboard_load.py).
    const PAINT_MS = 250, FLASH_MS = 1500;
    const arrived = []; // fills received since the last paint, oldest first
    const flashed = []; // [row, until]: new fill rows, highlighted until then
    let ordersDirty = false, flashTimer = null;
    const paintSoon = throttle(paint, PAINT_MS);
    function paint() {
      if (ordersDirty) { ordersDirty = false; drawOrders(); }
      const now = Date.now();
      while (flashed.length && flashed[0][1] <= now) flashed.shift()[0].classList.remove("flash");
      if (arrived.length) {
        if (fillsBody.querySelector(".empty")) fillsBody.replaceChildren();
        const rows = arrived.splice(0).slice(-100).reverse().map((f) => fillRow(f, true));
        fillsBody.prepend(...rows);
        while (fillsBody.children.length > 100) fillsBody.lastChild.remove();
        for (const row of rows) flashed.push([row, now + FLASH_MS]);
      }
      if (flashed.length && flashTimer === null) {
        flashTimer = setTimeout(() => { flashTimer = null; paintSoon(); }, flashed[0][1] - now);
      }
    }
    function upsertOrder(o) {
      const known = ordersById.get(o.client_order_id) || {};
      // only open orders are shown: a final one is forgotten (a page open for days keeps few)
      if (OPEN.has(o.status)) ordersById.set(o.client_order_id, Object.assign({}, known, o));
      else ordersById.delete(o.client_order_id);
      ordersDirty = true;
      paintSoon();
    }

    // the figures that move with fills and prices: re-read after events (debounced)
    const refresh = throttle(async () => {
      if (!alive()) return;
      try {
        const before = changes;
        const [fresh, held, act2] = await Promise.all([api("GET", `/api/v1/portfolios/${pid}`),
          api("GET", `/api/v1/portfolios/${pid}/positions`),
          api("GET", `/api/v1/dashboard/portfolios/${pid}/activity?recent=100&bars_after=${lastBar()}`)]);
        if (!alive()) return;
        if (before === changes) p = fresh;
        positions = held;
        activity = act2;
        curve = activity.curve.slice();
        for (const [sym, added] of Object.entries(activity.bars)) {
          const kept = (bars[sym] || []).concat(added);
          bars[sym] = kept.length > 500 ? kept.slice(kept.length - 500) : kept;
        }
        // a fill this read finds first (the page was away: the 10-s read can come before the
        // reconnected WebSocket's replay, which then skips it as seen) goes in the table too
        let missed = false;
        for (const f of activity.fills) if (!seen.has(f.trade_id)) { seen.add(f.trade_id); fills.push(f); missed = true; }
        fills.sort((a, b) => a.ts_event - b.ts_event);
        if (missed) { arrived.length = 0; drawFills(); }
        drawHeader(); drawPositions(); drawCharts();
      } catch (e) {
        // the engine gone: the live badge says so already (and the page resumes without help)
        if (e.status !== 401 && e.status !== 0 && alive()) toast(e.message, true);
      }
    }, 2000);

    live.follow({ [String(pid)]: activity.last_seq }, {
      resumed: refresh,
      event(ev) {
        upsertOrder({ client_order_id: ev.client_order_id, portfolio_id: ev.portfolio_id, symbol: ev.symbol, side: ev.side,
          order_type: ev.order_type, quantity: ev.quantity, limit_price: ev.limit_price, status: ev.status,
          filled_quantity: ev.filled_quantity, ts_init: (ordersById.get(ev.client_order_id) || {}).ts_init || ev.ts_event });
        const f = ev.fill;
        if (ev.type === "order.filled" && f && !seen.has(f.trade_id)) {
          seen.add(f.trade_id);
          const row = { trade_id: f.trade_id, client_order_id: f.client_order_id, symbol: f.symbol, side: f.side,
            quantity: f.quantity, price: f.price, fee: f.fee, ts_event: f.ts_event };
          fills.push(row);
          arrived.push(row);
          paintSoon();
          refresh(); // the charts, the figures and the positions, read again and drawn once
        }
      },
    });
    // the candles and the equity between fills move with prices: re-read every 10 s
    const slow = setInterval(refresh, 10000);
    const resize = debounce(drawCharts, 200);
    window.addEventListener("resize", resize);
    onLeave(() => { clearInterval(slow); window.removeEventListener("resize", resize); });
  }

  // -- admin: users
  async function usersPage() {
    markNav("users");
    const alive = current();
    const body = h("tbody", { id: "users" });
    main().replaceChildren(h("div", { class: "head" }, h("h1", { text: "Users" })),
      h("div", { class: "panel" }, h("table", {}, h("thead", {}, h("tr", {},
        ["ID", "User", "E-mail", "Role", "Active", "Created (UTC)", ""].map((c) => h("th", { text: c })))), body)));
    async function load() {
      let users;
      try { users = await api("GET", "/api/v1/users?limit=500"); } catch (e) { if (e.status !== 401 && alive()) toast(e.message, true); return; }
      const me = session.user ? session.user.id : null;
      body.replaceChildren(...users.map((u) => {
        const roleSel = h("select", { disabled: u.id === me, "aria-label": `role of ${u.username}`,
          onchange: async () => {
            try { await api("PATCH", `/api/v1/users/${u.id}`, { role: roleSel.value }); toast(`${u.username} is now ${roleSel.value}`); }
            catch (e) { toast(e.message, true); }
            load();
          } }, ["admin", "trader", "viewer"].map((r) => h("option", { value: r, text: r, selected: r === u.role })));
        return h("tr", { dataset: { user: u.username } }, h("td", { class: "num", text: u.id }), h("td", { text: u.username }),
          h("td", { class: "muted", text: u.email || "" }), h("td", {}, roleSel),
          h("td", {}, badge(u.is_active ? "active" : "disabled")), h("td", { class: "muted", text: String(u.created_at).slice(0, 19).replace("T", " ") }),
          h("td", {}, u.id === me ? null : h("button", { class: "small ghost", onclick: async () => {
            try { await api("PATCH", `/api/v1/users/${u.id}`, { is_active: !u.is_active }); } catch (e) { toast(e.message, true); }
            load();
          } }, u.is_active ? "Disable" : "Enable")));
      }));
    }
    await load();
  }

  // -- admin: audit trail
  async function auditPage() {
    markNav("audit");
    const LIMIT = 100;
    let offset = 0;
    const action = h("input", { name: "action", placeholder: "e.g. portfolio.trading_state", size: 26 });
    const actor = h("input", { name: "actor", placeholder: "user name", size: 14 });
    const outcome = h("select", { name: "outcome" }, ["", "success", "failure", "denied"].map((o) => h("option", { value: o, text: o || "any" })));
    const body = h("tbody", { id: "audit" });
    const info = h("span", { class: "muted" });
    const prev = h("button", { class: "ghost small", onclick: () => { offset = Math.max(0, offset - LIMIT); load(); } }, "← Newer");
    const next = h("button", { class: "ghost small", onclick: () => { offset += LIMIT; load(); } }, "Older →");
    const form = h("form", { class: "inline", onsubmit: (e) => { e.preventDefault(); offset = 0; load(); } },
      h("label", {}, "Action", action), h("label", {}, "Actor", actor), h("label", {}, "Outcome", outcome),
      h("button", { type: "submit" }, "Filter"));
    main().replaceChildren(h("div", { class: "head" }, h("h1", { text: "Audit trail" })),
      h("div", { class: "panel" }, form),
      h("div", { class: "panel" }, h("table", {}, h("thead", {}, h("tr", {},
        ["Time (UTC)", "Actor", "Action", "Target", "Outcome", "Address", "Detail"].map((c) => h("th", { text: c })))), body),
      h("div", { class: "pager" }, prev, next, info)));
    async function load() {
      const q = new URLSearchParams({ limit: String(LIMIT), offset: String(offset) });
      if (action.value.trim()) q.set("action", action.value.trim());
      if (actor.value.trim()) q.set("actor", actor.value.trim());
      if (outcome.value) q.set("outcome", outcome.value);
      let page;
      try { page = await api("GET", `/api/v1/audit?${q}`); } catch (e) { if (e.status !== 401) toast(e.message, true); return; }
      body.replaceChildren(...(page.items.length ? page.items.map((a) => h("tr", {},
        h("td", { class: "muted", text: String(a.ts).slice(0, 19).replace("T", " ") }), h("td", { text: a.actor || "—" }),
        h("td", { text: a.action }), h("td", { text: a.target }), h("td", {}, badge(a.outcome)),
        h("td", { class: "muted", text: a.client_address || "" }),
        h("td", { class: "muted", text: Object.keys(a.detail || {}).length ? JSON.stringify(a.detail) : "" })))
        : [h("tr", {}, h("td", { colspan: 7, class: "empty", text: "No entry." }))]));
      info.textContent = `${page.total ? offset + 1 : 0}–${offset + page.items.length} of ${page.total}`;
      prev.disabled = offset === 0;
      next.disabled = offset + page.items.length >= page.total;
    }
    await load();
  }

  // -- reports: the backtests and sweeps of api.reports_dir, each opened in a tab of its own
  /* A report runs plotly, which needs eval: it is served apart, sandboxed (an opaque origin that
   * cannot read this tab's tokens), from a short-lived link the API signs for this session. */
  function fmtPct(v) {
    if (v === null || v === undefined) return "—";
    const n = Number(v);
    // a small figure keeps two significant digits (-0.0032 %, not -0 %)
    const digits = n !== 0 && Math.abs(n) < 1 ? Math.min(8, 1 - Math.floor(Math.log10(Math.abs(n)))) : 2;
    return `${n > 0 ? "+" : ""}${n.toLocaleString(undefined, { maximumFractionDigits: digits })} %`;
  }
  function fmtNum(v) { return v === null || v === undefined ? "—" : Number(v).toLocaleString(undefined, { maximumFractionDigits: 2 }); }
  function fmtBytes(n) {
    const units = ["B", "KB", "MB", "GB"];
    let v = Number(n), i = 0;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return `${v.toLocaleString(undefined, { maximumFractionDigits: i ? 1 : 0 })} ${units[i]}`;
  }
  const fmtIso = (t) => (t ? String(t).slice(0, 16).replace("T", " ") : "—");

  async function reportsPage() {
    markNav("reports");
    const alive = current();
    const counts = h("span", { class: "muted", id: "report-counts" });
    const note = h("div", { class: "panel", id: "reports-note", hidden: true });
    const body = h("tbody", { id: "reports" });
    const table = h("div", { class: "panel" }, h("div", { class: "scroll" }, h("table", {}, h("thead", {}, h("tr", {},
      [["Name"], ["Kind"], ["Title"], ["Period (UTC)"], ["Return", 1], ["Sharpe", 1], ["Max drawdown", 1], ["Trades", 1],
        ["Written (UTC)"], ["Size", 1], [""]].map(([c, n]) => h("th", { class: n ? "num" : "", text: c })))), body)));
    main().replaceChildren(h("div", { class: "head" }, h("h1", { text: "Reports" }), counts), note, table);
    let listing;
    try { listing = await api("GET", "/api/v1/reports"); } catch (e) { if (e.status !== 401 && alive()) toast(`Reports: ${e.message}`, true); return; }
    if (!alive()) return;
    if (!listing.configured || !listing.readable) {
      note.hidden = false;
      table.hidden = true;
      note.replaceChildren(listing.configured
        ? h("p", { text: "The reports directory (setting api.reports_dir) is missing or the engine cannot read it." })
        : h("p", { text: "No reports directory is configured." }),
        h("p", { class: "muted", text: "Set api.reports_dir to the folder that holds the reports, each a folder written by " +
          "'replay … --report DIR' or 'sweep … --out DIR' (for example --set api.reports_dir=reports or " +
          "LTS_API__REPORTS_DIR=reports; a relative path is from the engine's working directory), then restart the engine." }));
      return;
    }
    counts.textContent = listing.total > listing.reports.length
      ? `${listing.total} reports · the newest ${listing.reports.length} shown`
      : `${listing.total} report${listing.total === 1 ? "" : "s"}`;
    body.replaceChildren(...(listing.reports.length ? listing.reports.map((r) => {
      const f = r.figures || {};
      const open = h("button", { class: "small", "aria-label": `open ${r.name}`, onclick: async () => {
        open.disabled = true;
        try {
          const l = await api("POST", `/api/v1/reports/${encodeURIComponent(r.name)}/link`);
          window.open(l.path, "_blank", "noopener");
        } catch (e) { if (e.status !== 401) toast(`${r.name}: ${e.message}`, true); }
        finally { open.disabled = false; }
      } }, "Open");
      return h("tr", { dataset: { report: r.name } },
        h("td", { class: "name", text: r.name, title: r.name }), h("td", {}, badge(r.kind)),
        h("td", { class: "name", text: r.title || (r.kind === "sweep" ? "Parameter sweep" : "—"), title: r.title || "" }),
        h("td", { class: "muted", text: f.start ? `${fmtIso(f.start)} – ${fmtIso(f.end)}` : "—" }),
        h("td", { class: `num ${f.return_pct > 0 ? "good" : f.return_pct < 0 ? "bad" : ""}`, text: fmtPct(f.return_pct) }),
        h("td", { class: "num", text: fmtNum(f.sharpe) }), h("td", { class: "num", text: fmtPct(f.max_drawdown_pct) }),
        h("td", { class: "num", text: f.trades === undefined || f.trades === null ? "—" : f.trades }),
        h("td", { class: "muted", text: fmtIso(r.modified_at) }), h("td", { class: "num muted", text: fmtBytes(r.size_bytes) }),
        h("td", {}, open));
    }) : [h("tr", {}, h("td", { colspan: 11, class: "empty", text: "No report in the reports directory yet." }))]));
  }

  // ---- router ---------------------------------------------------------------------------------------
  async function route() {
    leavePage();
    const hash = location.hash || "#/";
    if (!session.access) { loginPage(); return; }
    if (!session.user) {
      const alive = current();
      try { session.setUser(await api("GET", "/api/v1/auth/me")); } catch (e) { return; }
      if (!alive()) return;
    }
    showChrome(true);
    const m = hash.match(/^#\/portfolio\/(\d+)$/);
    if (m) return portfolioPage(m[1]);
    if (hash === "#/users" && role() === "admin") return usersPage();
    if (hash === "#/audit" && role() === "admin") return auditPage();
    if (hash === "#/reports") return reportsPage();
    if (hash === "#/login") { location.hash = "#/"; return; }
    return overviewPage();
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("logout").addEventListener("click", async () => {
      try { await api("POST", "/api/v1/auth/logout"); } catch (e) { /* the session may be gone already */ }
      signOut("Logged out.");
    });
    window.addEventListener("hashchange", route);
    route();
  });
})();
