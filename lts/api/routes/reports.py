"""``/api/v1/reports`` and ``/reports/...``: the backtest and sweep reports kept in
``api.reports_dir``, listed for the dashboard and opened in a browser tab.

Where it sits: beside the engine, not in it. ``replay ... --report DIR`` and ``sweep ... --out
DIR`` write a folder of files (:mod:`lts.backtest.report`, :mod:`lts.backtest.sweep_report`);
an operator points ``api.reports_dir`` at the folder holding such folders, and the dashboard's
Reports page lists them. Nothing here writes or trades; the files are read in a worker thread
(the API shares the event loop with trading).

- ``GET /api/v1/reports`` (any role): each folder directly under ``api.reports_dir`` whose name
  is :data:`NAME_PATTERN` and that holds ``report.html`` (a backtest) or ``heatmap.html`` (a
  sweep), newest first (by that page's modification time), with its size and, for a backtest,
  its title and key figures from ``summary.json`` (never from the HTML). Without the setting:
  ``configured: false`` and no report (not a 404).
- ``POST /api/v1/reports/{name}/link`` (any role): a capability path to the report's page,
  ``/reports/<token>/<name>/<page>``, valid :data:`LINK_SECONDS`.
- ``GET /reports/{token}/{name}/{file}`` (no bearer header: a browser navigation cannot send
  one; not in the OpenAPI schema, like the dashboard's own pages): a file directly in the
  report's folder, a regular file (no symbolic link) named by :data:`FILE_PATTERN` (html, js,
  css, json, csv, svg, png). The token sits in the path, so the page's relative loads
  (``report-data.js``, ``report.js``, ``plotly.min.js``, the CSV links) carry it too.

The token is a JWT signed with the API's key (``auth.jwt_secret``, HS256) with its own
audience (:data:`AUDIENCE`: it is no access token, and an access token is no link), the report's
name, and the user and session that asked for it: it opens that report only, until it expires
or that session ends (logout, revocation, a disabled user), whichever comes first; any of those
is a 403 saying which. A bad name or file name is a 422 (a slash is no name: 404); a file that
is not there, a 404.

Security (what a reviewer checks): a report page runs plotly, which needs ``eval``, which the
dashboard's policy refuses. So the report is served under a policy of its own
(:data:`lts.api.middleware.REPORT_CSP`): ``sandbox allow-scripts`` gives the page an opaque
origin, so its scripts can never read the dashboard's ``sessionStorage`` or call the API with
its tokens, and it may load scripts, styles and images from this server only. The token never
reaches a log: the server's log filter redacts ``/reports/<token>/``
(:class:`lts.api.server.RedactTickets`); the answers carry ``Referrer-Policy: no-referrer``.
"""

import json
import os
import stat
import time
from datetime import UTC, datetime
from pathlib import Path as FsPath
from typing import Annotated, Any, Literal

import anyio
import jwt
from fastapi import APIRouter, HTTPException, Path
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field, ValidationError

from lts.api.context import ApiContext
from lts.api.deps import ContextDep, CurrentUser
from lts.api.security import ALGORITHM, InvalidToken
from lts.settings import AuthSettings

__all__ = ["AUDIENCE", "FILE_PATTERN", "LINK_SECONDS", "NAME_PATTERN", "ReportEntry",
           "ReportFigures", "ReportLink", "ReportList", "issue_link_token", "router"]

router = APIRouter(tags=["reports"])

#: A report folder's name: what ``--report``/``--out`` make, safe in a URL, never ``.``/``..``.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
#: A file served from a report folder: a plain name with a known extension.
FILE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\.(html|js|css|json|csv|svg|png)$"
AUDIENCE = "lts-report"
LINK_SECONDS = 600
#: The page that makes a folder a report, and its kind.
PAGES = {"report.html": "backtest", "heatmap.html": "sweep"}
MEDIA_TYPES = {"html": "text/html; charset=utf-8", "js": "text/javascript; charset=utf-8",
               "css": "text/css; charset=utf-8", "json": "application/json",
               "csv": "text/csv; charset=utf-8", "svg": "image/svg+xml", "png": "image/png"}
MAX_LISTED = 500
_SUMMARY_MAX_BYTES = 1 << 20
_NOT_CONFIGURED = "no reports directory is configured (setting api.reports_dir)"

ReportName = Annotated[str, Path(pattern=NAME_PATTERN, description="the report's folder name")]
FileName = Annotated[str, Path(pattern=FILE_PATTERN,
                               description="a file directly in the report's folder")]
LinkToken = Annotated[str, Path(max_length=2048, description="from POST .../link")]


class ReportFigures(BaseModel):
    """A backtest's key figures, from its ``summary.json`` (null: undefined for the run)."""

    strategy: str | None = None
    symbols: list[str] = Field(default_factory=list)
    start: datetime | None = Field(None, description="first bar (UTC)")
    end: datetime | None = Field(None, description="last bar (UTC)")
    return_pct: float | None = Field(None, description="percent")
    sharpe: float | None = None
    max_drawdown_pct: float | None = Field(None, description="percent, 0 or negative")
    trades: int | None = None
    win_rate_pct: float | None = Field(None, description="percent")
    equity_final: float | None = None


class ReportEntry(BaseModel):
    name: str = Field(description="the folder's name (use it to ask for a link)")
    kind: Literal["backtest", "sweep"]
    page: str = Field(description="the report's page in its folder")
    title: str | None = Field(None, description="from summary.json; null for a sweep")
    figures: ReportFigures | None = Field(None, description="null for a sweep, or when the "
                                          "folder has no readable summary.json")
    modified_at: datetime = Field(description="when the page was written (UTC)")
    size_bytes: int = Field(description="the files directly in the folder")


class ReportList(BaseModel):
    configured: bool = Field(description="false: api.reports_dir is not set")
    readable: bool = Field(description="false: the directory is set but missing or unreadable")
    reports: list[ReportEntry] = Field(description=f"newest first, at most {MAX_LISTED}")
    total: int = Field(description="reports found (more than listed when over the cap)")


class ReportLink(BaseModel):
    path: str = Field(description="/reports/<token>/<name>/<page>: open it in a new tab")
    expires_in: int = Field(description="seconds the link opens the report's files")


# -- the folder -------------------------------------------------------------------------------

def _reports_dir(ctx: ApiContext) -> FsPath | None:
    configured = ctx.engine.settings.api.reports_dir
    return None if configured is None else configured.expanduser()


def _regular(path: FsPath) -> os.stat_result | None:
    """The file's stat when it is a regular file (not a link, not a folder), else None."""
    try:
        found = path.lstat()
    except OSError:
        return None
    return found if stat.S_ISREG(found.st_mode) else None


def _folder(root: FsPath, name: str) -> FsPath | None:
    """The report folder ``name`` when it is a folder directly in ``root`` (not a link)."""
    folder = root / name
    try:
        return folder if stat.S_ISDIR(folder.lstat().st_mode) else None
    except OSError:
        return None


def _report_page(root: FsPath, name: str) -> tuple[str, os.stat_result] | None:
    folder = _folder(root, name)
    return None if folder is None else _page_of(folder)


def _page_of(folder: FsPath) -> tuple[str, os.stat_result] | None:
    for page in PAGES:
        found = _regular(folder / page)
        if found is not None:
            return page, found
    return None


def _file(root: FsPath, name: str, file: str) -> os.stat_result | None:
    folder = _folder(root, name)
    return None if folder is None else _regular(folder / file)


def _figures(folder: FsPath) -> tuple[str | None, ReportFigures | None]:
    """Title and figures from ``summary.json``; (None, None) when it is missing or unreadable
    (an older or hand-made report is still listed)."""
    path = folder / "summary.json"
    found = _regular(path)
    if found is None or found.st_size > _SUMMARY_MAX_BYTES:
        return None, None
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None, None
    if not isinstance(data, dict):
        return None, None
    meta = _mapping(data.get("meta"))
    statistics = _mapping(data.get("statistics"))
    title = data.get("title")
    picked: dict[str, Any] = {k: statistics.get(k) for k in ReportFigures.model_fields
                              if k in statistics}
    if isinstance(meta.get("strategy"), str):
        picked["strategy"] = meta["strategy"]
    symbols = meta.get("symbols")
    if isinstance(symbols, list) and all(isinstance(s, str) for s in symbols):
        picked["symbols"] = symbols
    try:
        figures = ReportFigures.model_validate(picked)
    except ValidationError:
        figures = None
    return (title[:200] if isinstance(title, str) else None), figures


def _mapping(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _entry(folder: FsPath) -> ReportEntry | None:
    page = _page_of(folder)
    if page is None:
        return None
    name, page_stat = page
    size = 0
    try:
        with os.scandir(folder) as files:
            for f in files:
                if f.is_file(follow_symlinks=False):
                    size += f.stat(follow_symlinks=False).st_size
    except OSError:
        return None
    kind: Literal["backtest", "sweep"] = "backtest" if PAGES[name] == "backtest" else "sweep"
    title, figures = _figures(folder) if kind == "backtest" else (None, None)
    return ReportEntry(name=folder.name, kind=kind, page=name, title=title, figures=figures,
                       modified_at=datetime.fromtimestamp(page_stat.st_mtime, UTC),
                       size_bytes=size)


def _list(root: FsPath) -> ReportList:
    try:
        with os.scandir(root) as entries:
            folders = [FsPath(e.path) for e in entries
                       if e.is_dir(follow_symlinks=False) and _named(e.name)]
    except OSError:
        return ReportList(configured=True, readable=False, reports=[], total=0)
    found = [entry for folder in folders if (entry := _entry(folder)) is not None]
    found.sort(key=lambda r: (r.modified_at, r.name), reverse=True)
    return ReportList(configured=True, readable=True, reports=found[:MAX_LISTED],
                      total=len(found))


def _named(name: str) -> bool:
    return len(name) <= 128 and name[:1].isascii() and name[:1].isalnum() and all(
        c.isascii() and (c.isalnum() or c in "._-") for c in name)


# -- links ------------------------------------------------------------------------------------

def issue_link_token(auth: AuthSettings, name: str, user_id: int, session_id: str) -> str:
    now = int(time.time())
    claims = {"aud": AUDIENCE, "report": name, "sub": str(user_id), "sid": session_id,
              "iat": now, "exp": now + LINK_SECONDS}
    return jwt.encode(claims, auth.jwt_secret.get_secret_value(), algorithm=ALGORITHM)


def _forbidden(detail: str) -> HTTPException:
    return HTTPException(403, detail)


async def _check_link(ctx: ApiContext, token: str, name: str) -> None:
    """Raise a 403 unless ``token`` is a live link to report ``name``."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token, ctx.engine.settings.auth.jwt_secret.get_secret_value(),
            algorithms=[ALGORITHM], audience=AUDIENCE,
            options={"require": ["exp", "aud", "sub", "sid", "report"]})
        user_id, session_id = int(claims["sub"]), str(claims["sid"])
    except jwt.ExpiredSignatureError:
        raise _forbidden("this report link expired: open the report again from the "
                         "dashboard") from None
    except (jwt.InvalidTokenError, ValueError, TypeError):
        raise _forbidden("this is not a valid report link: open the report from the "
                         "dashboard") from None
    if claims["report"] != name:
        raise _forbidden("this report link is for another report")
    try:
        await ctx.sessions.user(user_id, session_id)
    except InvalidToken:
        raise _forbidden("the session that opened this report link has ended: log in and "
                         "open the report again") from None


# -- routes -----------------------------------------------------------------------------------

@router.get("/api/v1/reports", response_model=ReportList)
async def list_reports(caller: CurrentUser) -> ReportList:
    root = _reports_dir(caller.ctx)
    if root is None:
        return ReportList(configured=False, readable=False, reports=[], total=0)
    return await anyio.to_thread.run_sync(_list, root)


@router.post("/api/v1/reports/{name}/link", response_model=ReportLink)
async def report_link(name: ReportName, caller: CurrentUser) -> ReportLink:
    ctx, who = caller
    root = _reports_dir(ctx)
    if root is None:
        raise HTTPException(404, _NOT_CONFIGURED)
    page = await anyio.to_thread.run_sync(_report_page, root, name)
    if page is None:
        raise HTTPException(404, "no such report")
    token = issue_link_token(ctx.engine.settings.auth, name, who.user_id, who.session_id)
    return ReportLink(path=f"/reports/{token}/{name}/{page[0]}", expires_in=LINK_SECONDS)


@router.get("/reports/{token}/{name}/{file}", include_in_schema=False)
async def report_file(token: LinkToken, name: ReportName, file: FileName,
                      ctx: ContextDep) -> FileResponse:
    await _check_link(ctx, token, name)
    root = _reports_dir(ctx)
    if root is None:
        raise HTTPException(404, _NOT_CONFIGURED)
    path = root / name / file
    found = await anyio.to_thread.run_sync(_file, root, name, file)
    if found is None:
        raise HTTPException(404, "no such file in this report")
    return FileResponse(path, media_type=MEDIA_TYPES[file.rsplit(".", 1)[1]],
                        stat_result=found)
