"""The operator's web dashboard, served by the API at ``/`` (same origin, auth and roles).

Where it sits: pages and their assets, added to the API app by :func:`add_dashboard`; the pages
read the REST API (and the two summary routes of :mod:`lts.api.dashboard_data`) and follow the
WebSocket of committed order events, as any client does. Nothing here trades or decides: a
button is a REST call, and the API checks the role again.

One HTML page (``index.html``) with hash routes (``#/``, ``#/portfolio/ID``, ``#/users``,
``#/audit``, ``#/reports``) and hand-written assets in ``static/dashboard`` (no build step, no
CDN, no third-party code): ``app.js`` (pages, API and WebSocket clients), ``charts.js`` (SVG equity
curve and candles, drawn by hand: plotly's bundle, a runtime dependency for the backtest
reports, calls ``new Function`` and ``eval``, which this policy refuses), ``dashboard.css`` and
``favicon.svg``.

Live: the pages follow the WebSocket of committed order events and resume after a reconnect
with the last ``seq`` seen per portfolio (the server replays what came after: no gap); the
portfolio page subscribes from the ``last_seq`` its snapshot was read at. Figures that move
with prices are read again after events (throttled) and every 10 s on the portfolio page,
30 s on the overview; nothing polls each second. The WebSocket takes the page's own origin (the
Host it was opened at); any other must be listed in ``api.cors_origins``. Candles are the
assets' latest bars, kept by their live feeds (:meth:`lts.engine.feeds.FeedLease.bars`).

Security (what a reviewer checks):

- **Tokens** live in the tab's ``sessionStorage`` (access and refresh token): gone when the tab
  closes, never shared with other tabs or sites, never in a cookie. Every API call sends the
  access token as an ``Authorization: Bearer`` header set by the script, so the browser never
  attaches a credential on its own: a forged cross-site request carries no credential and CSRF
  has nothing to ride on (the login form itself is a script's ``fetch``: a cross-site page
  can post it, but cannot read the tokens it answers with). The WebSocket authenticates with
  its first message (the token), never a URL. Logging out revokes the session on the server
  and clears the storage. The pages cannot be framed (``frame-ancestors 'none'``).
- **XSS**: the pages never parse data as HTML. Every value from the API is put into the page
  with ``textContent`` or as an SVG attribute through the DOM (``createElement`` /
  ``createElementNS``); no ``innerHTML``, ``insertAdjacentHTML``, ``document.write`` or ``eval``
  anywhere in the assets (a test greps them). The pages' Content-Security-Policy
  (:data:`lts.api.middleware.DASHBOARD_CSP`) allows scripts and styles from this origin only:
  no inline script, no ``eval``, no other origin; so even an injection that slipped through
  could run nothing. ``sessionStorage`` is readable by a script of this origin, which is why that
  policy, not the storage, is the line of defence.
- **Reports** (``#/reports``, :mod:`lts.api.routes.reports`): a backtest report runs plotly,
  which this policy refuses, so it never runs in these pages. "Open" asks the API for a
  short-lived link signed for this session and opens it in a new tab (``noopener``); the
  report is served under its own policy, ``sandbox allow-scripts`` (an opaque origin: its
  scripts cannot read this origin's ``sessionStorage`` or call the API with its tokens).
- Roles: the pages hide what the role may not do, but only as a convenience; the API refuses it
  anyway (403), and the page shows the refusal.
"""

from pathlib import Path

from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse

from lts.api import dashboard_data
from lts.api.dashboard_bars import BarCharts
from lts.api.dashboard_curve import EquityCurves
from lts.api.dashboard_opening import OpeningEquity

__all__ = ["ASSETS", "add_dashboard"]

ASSETS = Path(__file__).resolve().parent / "static" / "dashboard"
#: Every file the dashboard serves (nothing else under its folder is reachable).
_FILES = {"app.js": "text/javascript", "charts.js": "text/javascript",
          "dashboard.css": "text/css", "favicon.svg": "image/svg+xml"}


def add_dashboard(app: FastAPI) -> None:
    """Put the dashboard's routes on ``app``: the page at ``/``, its assets at
    ``/dashboard/{asset}`` (the files of :data:`_FILES` only: any other name is a 404), and the
    summary routes of :mod:`lts.api.dashboard_data`. Both page routes are public: the page and
    its scripts hold no data; everything they show comes from the API with the user's token."""
    app.state.dashboard_openings = OpeningEquity()
    app.state.dashboard_curves = EquityCurves(dashboard_data.CURVE_POINTS)
    app.state.dashboard_bars = BarCharts()
    app.router.routes.extend(dashboard_data.router.routes)

    async def page() -> FileResponse:
        return FileResponse(ASSETS / "index.html", media_type="text/html; charset=utf-8")

    async def asset(asset: str) -> FileResponse:
        media_type = _FILES.get(asset)
        if media_type is None:
            raise HTTPException(404, "no such file")
        return FileResponse(ASSETS / asset, media_type=media_type)

    # (the edge marks every answer ``no-store``: a new version is never hidden by a cache)
    app.add_api_route("/", page, methods=["GET"], include_in_schema=False)
    app.add_api_route("/dashboard/{asset}", asset, methods=["GET"], include_in_schema=False)
