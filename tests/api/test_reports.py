"""The reports of ``api.reports_dir`` over real HTTP against the real engine (issue 12 §1): the
list, a link to a report, its files under their own policy, and every way to ask for what is
not the report's (another folder, a path out of it, an expired, foreign or forged link). The
reports are made by the real command line (``replay --report``, ``sweep --out``)."""

import json
import logging
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
import pytest

from lts.api.server import RedactTickets
from tests.e2e.test_replay_cli import make_bars, write_csv

from ._auth import ADMIN, audit_rows, call, login, running_api, user_with_role
from .conftest import Api

pytestmark = pytest.mark.anyio

BACKTEST_FILES = {"summary.json", "fills.csv", "trades.csv", "equity.csv", "report.html",
                  "report-data.js", "report.js", "plotly.min.js"}
#: The backtest page's mtime: newer than the sweep's, so listed first.
NEWER, OLDER = 1_767_225_600, 1_767_222_000  # 2026-01-01 00:00 and 23:00 the day before, UTC


def lts_cli(cwd: Path, *args: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LTS_")}
    done = subprocess.run([sys.executable, "-m", "lts.engine", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def reports_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``sma-x`` (a backtest), ``sweep-a`` (a sweep), and folders that are no report: one
    without a page, a link to a report, a name that is not a report name; a secret beside."""
    work = tmp_path_factory.mktemp("reports")
    write_csv(work / "bars.csv", make_bars(400))
    root = work / "reports"
    lts_cli(work, "replay", "bars.csv", "--symbol", "X", "--strategy", "sma_crossover",
            "--param", "fast=5", "--param", "slow=20", "--quantity", "2",
            "--report", str(root / "sma-x"))
    lts_cli(work, "sweep", "bars.csv", "--strategy", "sma_crossover", "--grid", "fast=3:4:1",
            "--grid", "slow=10:11:1", "--quantity", "2", "--workers", "1",
            "--out", str(root / "sweep-a"))
    os.utime(root / "sma-x" / "report.html", (NEWER, NEWER))
    os.utime(root / "sweep-a" / "heatmap.html", (OLDER, OLDER))
    (root / "notes").mkdir()
    (root / "notes" / "readme.csv").write_text("a,b\n")
    (root / "linked").symlink_to(root / "sma-x", target_is_directory=True)
    (root / "bad name").mkdir()
    (root / "bad name" / "report.html").write_text("<p>no</p>")
    (work / "secret.json").write_text('{"secret": "do-not-serve"}')
    (root / "sma-x" / "escape.json").symlink_to(work / "secret.json")
    return root


async def link(api: Api, token: str, name: str) -> str:
    reply = await call(api, "POST", f"/api/v1/reports/{name}/link", token=token)
    assert reply.status == 200, reply.body
    body: dict[str, Any] = reply.json()
    assert body["expires_in"] == 600
    path: str = body["path"]
    return path


def signed(api: Api, **claims: Any) -> str:
    secret = api.engine.settings.auth.jwt_secret.get_secret_value()
    return jwt.encode(claims, secret, algorithm="HS256")


async def test_without_a_reports_dir_the_list_is_empty_and_says_so(tmp_path: Path) -> None:
    async with running_api(tmp_path) as api:
        _, viewer = await user_with_role(api, "vic", "viewer")
        reply = await call(api, "GET", "/api/v1/reports", token=viewer)
        assert reply.status == 200, reply.body
        assert reply.json() == {"configured": False, "readable": False, "reports": [],
                                "total": 0}
        reply = await call(api, "POST", "/api/v1/reports/sma-x/link", token=viewer)
        assert reply.status == 404
        assert "api.reports_dir" in reply.json()["detail"]
        assert (await call(api, "GET", "/api/v1/reports")).status == 401
        schema = (await call(api, "GET", "/openapi.json")).json()
        listed = schema["paths"]["/api/v1/reports"]["get"]["responses"]
        assert listed["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
            "/ReportList")
        assert {"401", "429", "503"} <= set(listed)
        assert "404" in schema["paths"]["/api/v1/reports/{name}/link"]["post"]["responses"]
        assert not any(p.startswith("/reports/") for p in schema["paths"])


async def test_a_missing_reports_dir_reads_as_unreadable(tmp_path: Path) -> None:
    async with running_api(tmp_path, api={"reports_dir": str(tmp_path / "none")}) as api:
        viewer = (await user_with_role(api, "vic", "viewer"))[1]
        reply = await call(api, "GET", "/api/v1/reports", token=viewer)
        assert reply.json() == {"configured": True, "readable": False, "reports": [],
                                "total": 0}


async def test_a_viewer_lists_the_reports_newest_first(tmp_path: Path,
                                                       reports_dir: Path) -> None:
    async with running_api(tmp_path, api={"reports_dir": str(reports_dir)}) as api:
        _, viewer = await user_with_role(api, "vic", "viewer")
        assert (await call(api, "GET", "/api/v1/reports")).status == 401
        reply = await call(api, "GET", "/api/v1/reports", token=viewer)
        assert reply.status == 200, reply.body
        listing = reply.json()
        assert (listing["configured"], listing["readable"], listing["total"]) == (True, True, 2)
        backtest, sweep = listing["reports"]
        summary = (reports_dir / "sma-x" / "summary.json").read_text()
        stats = json.loads(summary)["statistics"]
        assert backtest == {
            "name": "sma-x", "kind": "backtest", "page": "report.html",
            "title": "sma_crossover on X",
            "figures": {"strategy": "sma_crossover", "symbols": ["X"],
                        "start": stats["start"], "end": stats["end"],
                        "return_pct": stats["return_pct"], "sharpe": stats["sharpe"],
                        "max_drawdown_pct": stats["max_drawdown_pct"],
                        "trades": stats["trades"], "win_rate_pct": stats["win_rate_pct"],
                        "equity_final": stats["equity_final"]},
            "modified_at": "2026-01-01T00:00:00Z",
            "size_bytes": sum(p.stat().st_size for p in (reports_dir / "sma-x").iterdir()
                              if p.is_file() and not p.is_symlink())}
        assert backtest["figures"]["trades"] > 0
        assert {p.name for p in (reports_dir / "sma-x").iterdir()} >= BACKTEST_FILES
        assert sweep["name"] == "sweep-a"
        assert (sweep["kind"], sweep["page"], sweep["title"], sweep["figures"]) == (
            "sweep", "heatmap.html", None, None)
        assert sweep["modified_at"] == datetime.fromtimestamp(OLDER, UTC).isoformat().replace(
            "+00:00", "Z")


async def test_a_link_opens_the_reports_files_under_their_own_policy(
        tmp_path: Path, reports_dir: Path) -> None:
    async with running_api(tmp_path, api={"reports_dir": str(reports_dir)}) as api:
        _, viewer = await user_with_role(api, "vic", "viewer")
        assert (await call(api, "POST", "/api/v1/reports/sma-x/link")).status == 401
        path = await link(api, viewer, "sma-x")
        token = path.split("/")[2]
        assert path == f"/reports/{token}/sma-x/report.html"
        page = await api.request("GET", path)
        assert page.status == 200
        assert page.body == (reports_dir / "sma-x" / "report.html").read_bytes()
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        csp = page.headers["content-security-policy"]
        assert csp.startswith("sandbox allow-scripts;")
        assert "script-src 'self' 'unsafe-eval'" in csp
        assert "frame-ancestors 'none'" in csp
        assert "allow-same-origin" not in csp
        assert page.headers["referrer-policy"] == "no-referrer"
        assert page.headers["x-content-type-options"] == "nosniff"
        base = path.rsplit("/", 1)[0]
        for name, media in (("report-data.js", "text/javascript"), ("report.js", "text/javascript"),
                            ("plotly.min.js", "text/javascript"),
                            ("summary.json", "application/json"), ("fills.csv", "text/csv")):
            reply = await api.request("GET", f"{base}/{name}")
            assert reply.status == 200, name
            assert reply.headers["content-type"].startswith(media), name
            assert reply.body == (reports_dir / "sma-x" / name).read_bytes(), name
        # the dashboard's own pages keep their policy: no eval there
        dashboard = await api.request("GET", "/")
        assert "unsafe-eval" not in dashboard.headers["content-security-policy"]
        sweep = await link(api, viewer, "sweep-a")
        assert sweep.endswith("/sweep-a/heatmap.html")
        assert (await api.request("GET", sweep)).status == 200


async def test_nothing_outside_the_report_is_served(tmp_path: Path, reports_dir: Path) -> None:
    async with running_api(tmp_path, api={"reports_dir": str(reports_dir)}) as api:
        _, viewer = await user_with_role(api, "vic", "viewer")
        path = await link(api, viewer, "sma-x")
        base = path.rsplit("/", 1)[0]
        token = path.split("/")[2]
        answers: dict[str, int] = {}
        for name in ("escape.json", "nothere.js", "..%2f..%2fsecret.json", "..", "%2e%2e",
                     ".hidden.json", "report.html%00.js", "report.py", "README",
                     "a%5cb.json", "x" * 300 + ".js"):
            reply = await api.request("GET", f"{base}/{name}")
            answers[name] = reply.status
            assert b"do-not-serve" not in reply.body
        assert answers == {"escape.json": 404, "nothere.js": 404,
                           "..%2f..%2fsecret.json": 404, "..": 422, "%2e%2e": 422,
                           ".hidden.json": 422, "report.html%00.js": 422, "report.py": 422,
                           "README": 422, "a%5cb.json": 422, "x" * 300 + ".js": 422}
        for name, status in (("..", 422), ("%2e%2e", 422), ("bad%20name", 422),
                             ("notes", 404), ("linked", 404), ("nope", 404), ("a%00b", 422),
                             ("..%2f..", 404)):
            reply = await call(api, "POST", f"/api/v1/reports/{name}/link", token=viewer)
            assert reply.status == status, (name, reply.body)
            # the link of one report opens no other folder, even one holding a report
            reply = await api.request("GET", f"/reports/{token}/{name}/report.html")
            assert reply.status in (403, 404, 422), (name, reply.status)
            assert reply.status < 500
        reply = await api.request("GET", f"/reports/{token}/linked/report.html")
        assert reply.status == 403  # the link names sma-x


async def test_expired_foreign_forged_and_ended_links_are_refused(
        tmp_path: Path, reports_dir: Path) -> None:
    async with running_api(tmp_path, api={"reports_dir": str(reports_dir)}) as api:
        viewer_id, viewer = await user_with_role(api, "vic", "viewer")
        path = await link(api, viewer, "sma-x")
        token = path.split("/")[2]
        sid = jwt.decode(viewer, options={"verify_signature": False})["sid"]
        now = int(time.time())
        good = {"aud": "lts-report", "report": "sma-x", "sub": str(viewer_id), "sid": sid,
                "iat": now}

        async def refused(tok: str, name: str = "sma-x") -> str:
            reply = await api.request("GET", f"/reports/{tok}/{name}/report.html")
            assert reply.status == 403, reply.body
            assert reply.json()["code"] == "forbidden"
            assert "content-security-policy" in reply.headers
            detail: str = reply.json()["detail"]
            return detail

        assert "expired" in await refused(signed(api, **good, exp=now - 5))
        assert "another report" in await refused(token, "sweep-a")
        assert "not a valid report link" in await refused(viewer)  # an access token
        assert "not a valid report link" in await refused(
            jwt.encode({**good, "exp": now + 60}, "another-key-" * 4, algorithm="HS256"))
        assert "not a valid report link" in await refused(
            signed(api, **{**good, "aud": "lts-api"}, exp=now + 60))
        assert "not a valid report link" in await refused("not-a-token")
        # a link is no access token either
        assert (await call(api, "GET", "/api/v1/reports", token=token)).status == 401
        # a link lasts as long as the session that asked for it
        assert (await api.request("GET", path)).status == 200
        assert (await call(api, "POST", "/api/v1/auth/logout", token=viewer)).status == 204
        assert "session" in await refused(token)
        # an admin's link works the same
        admin = (await login(api, *ADMIN))["access_token"]
        assert (await api.request("GET", await link(api, admin, "sweep-a"))).status == 200


def test_a_report_links_token_never_reaches_a_log_line() -> None:
    token = "eyJhbGciOiJIUzI1NiJ9.eyJhdWQiOiJsdHMtcmVwb3J0In0.c2lnbmF0dXJl"
    record = logging.LogRecord("lts.api", logging.ERROR, __file__, 1,
                               "internal error on %s %s (correlation id %s)",
                               ("GET", f"/reports/{token}/sma-x/report.html", "cid"), None)
    assert RedactTickets().filter(record)
    message = record.getMessage()
    assert token not in message
    assert "/reports/<redacted>/sma-x/report.html" in message


async def test_a_report_links_token_never_reaches_the_audit_trail(
        tmp_path: Path, reports_dir: Path) -> None:
    """A refused mutating call is audited with its path: a link's token is not written."""
    async with running_api(tmp_path, api={"reports_dir": str(reports_dir)}) as api:
        _, viewer = await user_with_role(api, "vic", "viewer")
        path = await link(api, viewer, "sma-x")
        token = path.split("/")[2]
        assert (await api.request("POST", path)).status == 405
        assert (await api.request("POST", path + "/more")).status == 404  # no route: audited
        [row] = await audit_rows(api, "request.unrouted")
        assert row["target"] == "/reports/<redacted>/sma-x/report.html/more"
        assert token not in json.dumps(row, default=str)
