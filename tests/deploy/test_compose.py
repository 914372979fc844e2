"""The deployment stack of issue 4, without Docker: docker-compose.yml, the Dockerfile,
.dockerignore, the Prometheus configuration and the Grafana provisioning and dashboard are
loaded and checked against each other; then the compose services' commands, environments and
secret files are run for real (``migrate`` then ``engine`` on a fresh PostgreSQL database, the
engine's healthcheck command against it), and every series the dashboard queries is looked up
in a real engine's ``/metrics``."""

import base64
import json
import os
import posixpath
import re
import secrets
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from api.conftest import free_port, running_api
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import make_url

from lts.persistence.migrations import head_revision

from ._engine import http, processes, scrape_while_trading, wait_until
from ._stack import (
    COMPOSE,
    DASHBOARD,
    DASHBOARD_PROVIDERS,
    DATASOURCES,
    DOCKERIGNORE,
    PROMETHEUS,
    ROOT,
    SECRETS_MOUNT,
    compose,
    dashboard,
    dashboard_queries,
    dockerfile_instructions,
    engine_port,
    environment,
    exported_series,
    grouping_labels,
    load_yaml,
    metric_names,
    secret_targets,
    selector_labels,
    service,
)

SERVICES = {"postgres", "migrate", "engine", "prometheus", "grafana"}
#: The engine's secret files (lts/settings.py: named like the environment variables).
ENGINE_SECRETS = {"LTS_DATABASE__URL", "LTS_AUTH__JWT_SECRET", "LTS_ADMIN_PASSWORD",
                  "LTS_MASTER_KEY"}
SECRET_KEY = re.compile(r"PASSWORD|SECRET|KEY|TOKEN|CREDENTIAL|DATABASE__URL", re.IGNORECASE)
URL_WITH_PASSWORD = re.compile(r"://[^/\s:@]+:[^/\s@]+@")


def _mounts(svc: dict[str, Any]) -> dict[str, str]:
    """``container path -> host path`` of a service's short-form volumes."""
    out: dict[str, str] = {}
    for entry in svc.get("volumes") or []:
        source, target = str(entry).split(":")[:2]
        out[target] = source
    return out


def _published(entry: Any) -> tuple[str, int]:
    """``(host ip, container port)`` of one ``ports`` entry, short or long form."""
    if isinstance(entry, dict):
        return str(entry.get("host_ip", "")), int(entry["target"])
    parts = str(entry).split(":")
    host_ip = parts[0] if len(parts) == 3 else ""
    return host_ip, int(parts[-1].split("/")[0])


# -- docker-compose.yml ------------------------------------------------------------------------

def test_compose_has_the_five_services() -> None:
    assert set(compose()["services"]) == SERVICES


def test_postgres_healthcheck_is_pg_isready_over_tcp() -> None:
    """Over TCP to 127.0.0.1: the image's first-start initialisation server listens on the
    socket only, so the check passes once the real server runs."""
    pg = service("postgres")
    test = pg["healthcheck"]["test"]
    assert test[0] == "CMD"
    assert test[1] == "pg_isready"
    assert test[test.index("-h") + 1] == "127.0.0.1"
    env = environment(pg)
    assert test[test.index("-U") + 1] == env["POSTGRES_USER"]
    assert test[test.index("-d") + 1] == env["POSTGRES_DB"]


def test_migrate_runs_db_upgrade_once_with_the_engine_image() -> None:
    migrate, engine = service("migrate"), service("engine")
    assert migrate["command"] == ["db", "upgrade"]
    assert migrate["restart"] == "no"  # a string: YAML's bare no would be false
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert migrate["image"] == engine["image"]
    assert migrate["build"] == engine["build"] == {"context": ".", "dockerfile": "Dockerfile"}
    assert (ROOT / "Dockerfile").is_file()


def test_engine_waits_for_a_healthy_database_and_a_finished_migration() -> None:
    depends = service("engine")["depends_on"]
    assert depends["postgres"]["condition"] == "service_healthy"
    assert depends["migrate"]["condition"] == "service_completed_successfully"


def test_engine_healthcheck_asks_healthz_on_the_api_port() -> None:
    engine = service("engine")
    env = environment(engine)
    assert env["LTS_API__HOST"] == "0.0.0.0"  # reachable by Prometheus and the published port
    test = engine["healthcheck"]["test"]
    assert test[0] == "CMD"
    urls = re.findall(r"http://127\.0\.0\.1:(\d+)(/\S*?)['\"]", " ".join(test[1:]))
    assert urls == [(env["LTS_API__PORT"], "/healthz")]
    assert "lts.engine" not in engine["command"]  # the image's entrypoint runs the engine
    assert engine["command"] == ["run"]
    assert env["LTS_PROFILE"] == "prod"
    assert env["LTS_DEMO__ENABLED"] == "false"


def test_published_ports_bind_loopback_only() -> None:
    published = 0
    for name, svc in compose()["services"].items():
        assert "network_mode" not in svc, name
        for entry in svc.get("ports") or []:
            host_ip, _ = _published(entry)
            assert host_ip == "127.0.0.1", f"{name} publishes {entry!r} beyond loopback"
            published += 1
    assert published >= 3  # the engine's API, Prometheus and Grafana
    engine_ports = [_published(p)[1] for p in service("engine")["ports"]]
    assert engine_ports == [engine_port()]


def test_secrets_are_compose_secret_files_mounted_by_target_name() -> None:
    spec = compose()
    declared = spec["secrets"]
    for name, secret in declared.items():
        assert set(secret) == {"file"}, name
        assert secret["file"].startswith("./secrets/"), name
    used: set[str] = set()
    for name, svc in spec["services"].items():
        targets = secret_targets(svc)
        assert set(targets.values()) <= set(declared), name
        assert all("/" not in t for t in targets), f"{name}: targets live in {SECRETS_MOUNT}"
        used.update(targets.values())
        env = environment(svc)
        if any(t.startswith("LTS_") for t in targets):
            assert env["LTS_SECRETS_DIR"] == SECRETS_MOUNT, name
        for key, value in env.items():
            if key.endswith("_FILE"):
                assert value.startswith(SECRETS_MOUNT + "/"), (name, key)
                assert value.removeprefix(SECRETS_MOUNT + "/") in targets, (name, key)
    assert used == set(declared), "a declared secret no service mounts"
    assert set(secret_targets(service("engine"))) == ENGINE_SECRETS
    assert "LTS_DATABASE__URL" in secret_targets(service("migrate"))
    assert "POSTGRES_PASSWORD_FILE" in environment(service("postgres"))


def test_no_environment_value_is_a_secret() -> None:
    """A setting that names a password, secret, key or the database URL only ever points at a
    file under /run/secrets; no value carries credentials."""
    for name, svc in compose()["services"].items():
        for key, value in environment(svc).items():
            if SECRET_KEY.search(key):
                assert value == SECRETS_MOUNT or value.startswith(SECRETS_MOUNT + "/"), (
                    f"{name}: {key} is set inline")
            assert not URL_WITH_PASSWORD.search(value), f"{name}: {key} holds a password"
    text = COMPOSE.read_text()
    for variable in ENGINE_SECRETS:
        assert f"{variable}:" not in text, variable
        assert f"{variable}=" not in text, variable


# -- Prometheus and Grafana --------------------------------------------------------------------

def test_prometheus_scrapes_the_engine_metrics_on_its_api_port() -> None:
    config = load_yaml(PROMETHEUS)
    [job] = config["scrape_configs"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert job.get("scheme", "http") == "http"
    [static] = job["static_configs"]
    assert static["targets"] == [f"engine:{engine_port()}"]
    prom = service("prometheus")
    assert _mounts(prom)["/etc/prometheus/prometheus.yml"] == "./deploy/prometheus/prometheus.yml"
    assert "--config.file=/etc/prometheus/prometheus.yml" in prom["command"]
    assert not any(arg.startswith("--web.listen-address") for arg in prom["command"])


def test_grafana_provisions_the_prometheus_datasource_and_the_dashboard_folder() -> None:
    grafana = service("grafana")
    mounts = _mounts(grafana)
    assert mounts["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"
    [datasource] = load_yaml(DATASOURCES)["datasources"]
    assert datasource["type"] == "prometheus"
    prometheus_port = 9090  # Prometheus' default listen port (no --web.listen-address)
    assert datasource["url"] == f"http://prometheus:{prometheus_port}"
    assert prometheus_port in [_published(p)[1] for p in service("prometheus")["ports"]]
    scrape = load_yaml(PROMETHEUS)["global"]["scrape_interval"]
    assert datasource["jsonData"]["timeInterval"] == scrape
    [provider] = load_yaml(DASHBOARD_PROVIDERS)["providers"]
    assert provider["type"] == "file"
    folder = provider["options"]["path"]
    assert mounts[folder] == "./deploy/grafana/dashboards"
    assert (ROOT / mounts[folder] / DASHBOARD.name).is_file()
    assert environment(grafana)["GF_SECURITY_ADMIN_PASSWORD__FILE"].startswith(SECRETS_MOUNT)


def test_every_dashboard_query_uses_the_provisioned_datasource() -> None:
    uids = {d["uid"] for d in load_yaml(DATASOURCES)["datasources"]}
    dash = dashboard()
    panels = dash["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        assert panel["datasource"]["uid"] in uids, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] in uids, panel["title"]
            assert target["expr"].strip(), panel["title"]
    for var in dash["templating"]["list"]:
        assert var["datasource"]["uid"] in uids, var["name"]


def test_dashboard_has_the_panels_of_the_issue() -> None:
    """Equity per portfolio, orders and fills per second, tick-to-order latency, event-loop
    lag, errors: each panel queries the series that measures it."""
    wanted = {
        "Equity per portfolio": {"lts_portfolio_equity"},
        "Orders per second": {"lts_orders_total"},
        "Fills per second": {"lts_fills_total"},
        "Tick-to-order latency": {"lts_tick_to_order_seconds_bucket"},
        "Event-loop lag": {"lts_event_loop_lag_seconds_bucket"},
        "Errors": {"lts_portfolio_restarts_total", "lts_portfolio_in_error",
                   "lts_http_requests_total"},
    }
    by_title = {p["title"]: p for p in dashboard()["panels"]}
    for title, series in wanted.items():
        assert title in by_title, f"no panel {title!r}"
        used = set().union(*(metric_names(t["expr"]) for t in by_title[title]["targets"]))
        assert series <= used, (title, used)
    assert 'status=~"5.."' in json.dumps(by_title["Errors"]).replace('\\"', '"')


# -- Dockerfile and .dockerignore --------------------------------------------------------------

def _copies(instructions: list[tuple[str, str]]) -> dict[str, str]:
    """``COPY`` source -> its path in the image (relative destinations under WORKDIR)."""
    out: dict[str, str] = {}
    workdir = "/"
    for word, args in instructions:
        if word == "WORKDIR":
            workdir = posixpath.join(workdir, args)
        elif word == "COPY":
            *sources, dest = args.split()
            assert not any(s.startswith("--") for s in sources), args
            dest = posixpath.join(workdir, dest)
            into_dir = len(sources) > 1 or args.endswith("/")
            for source in sources:
                path = posixpath.join(dest, posixpath.basename(source)) if into_dir else dest
                out[source] = posixpath.normpath(path)
    return out


def test_dockerfile_installs_the_lock_with_hashes_and_runs_unprivileged() -> None:
    ins = dockerfile_instructions()
    words = [w for w, _ in ins]
    assert ins[0] == ("FROM", "python:3.11-slim")
    runs = [(i, a) for i, (w, a) in enumerate(ins) if w == "RUN"]
    [(lock_at, _)] = [(i, a) for i, a in runs
                      if "pip install --no-cache-dir --require-hashes -r requirements.lock" in a]
    [(project_at, _)] = [(i, a) for i, a in runs
                         if "pip install" in a and "--no-deps" in a
                         and "--no-build-isolation" in a and a.split("&&")[0].strip()
                         .endswith("-e .")]
    copied_at = {src: i for i, (w, a) in enumerate(ins) if w == "COPY" for src in a.split()[:-1]}
    assert copied_at["requirements.lock"] < lock_at < project_at
    assert max(copied_at["lts"], copied_at["alembic"], copied_at["alembic.ini"]) < project_at

    # alembic.ini and alembic/ sit next to the lts package (found as lts/'s parent)
    copies = _copies(ins)
    root = posixpath.dirname(copies["lts"])
    assert copies["alembic"] == posixpath.join(root, "alembic")
    assert copies["alembic.ini"] == posixpath.join(root, "alembic.ini")
    workdirs = [a for w, a in ins if w == "WORKDIR"]
    assert workdirs[-1] == root

    [user] = [a for w, a in ins if w == "USER"]
    name = user.split(":")[0]
    assert name not in {"root", "0"}
    assert words.index("USER") > max(i for i, _ in runs)
    assert any(("useradd" in a and (f"--uid {name}" in a or a.endswith(f" {name}")))
               for _, a in runs), "the USER is not created in the image"

    port = engine_port()
    [expose] = [a for w, a in ins if w == "EXPOSE"]
    assert expose.split() == [str(port)]
    [env] = [a for w, a in ins if w == "ENV"]
    assert f"LTS_API__PORT={port}" in env.split()
    assert "LTS_API__HOST=0.0.0.0" in env.split()
    [health] = [a for w, a in ins if w == "HEALTHCHECK"]
    assert "urllib.request.urlopen" in health
    assert f"http://127.0.0.1:{port}/healthz" in health
    [entrypoint] = [a for w, a in ins if w == "ENTRYPOINT"]
    assert json.loads(entrypoint) == ["python", "-m", "lts.engine"]


def test_dockerignore_sends_only_the_copied_sources() -> None:
    """The build context is what the COPY lines need: the secrets, the virtualenv and local
    databases never reach the image."""
    patterns = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert patterns[0] == "*"
    included = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    sources = set(_copies(dockerfile_instructions()))
    assert sources <= included
    assert included <= sources | {"README.md"}  # README.md: pyproject's readme, copied too
    for path in included:
        assert not path.startswith(("secrets", ".venv", "data", ".git")), path


# -- the services run: migrate, then the engine with its healthcheck ---------------------------

def _secret_values(db_url: str) -> dict[str, str]:
    """The secret files' contents, the master key made as deploy/README.md says (``v1:`` and
    ``openssl rand -base64 32``). The database
    URL carries a password as in production (the test server trusts loopback and ignores it),
    so the test can see that it is never printed."""
    with_password = make_url(db_url).set(password="Db-" + secrets.token_hex(12))
    return {
        "LTS_DATABASE__URL": with_password.render_as_string(hide_password=False),
        "LTS_AUTH__JWT_SECRET": secrets.token_urlsafe(48),
        "LTS_ADMIN_PASSWORD": "Deploy-" + secrets.token_urlsafe(12),
        "LTS_MASTER_KEY": "v1:" + base64.b64encode(os.urandom(32)).decode(),
    }


def _as_run_here(name: str, values: dict[str, str], tmp_path: Path,
                 port: int) -> tuple[list[str], dict[str, str]]:
    """A compose service's command and environment, its secrets written as files into a
    directory of their own (what compose mounts at /run/secrets), the API on loopback."""
    svc = service(name)
    folder = tmp_path / f"secrets-{name}"
    folder.mkdir()
    for target in secret_targets(svc):
        (folder / target).write_text(values[target] + "\n")
    env = environment(svc)
    assert env["LTS_SECRETS_DIR"] == SECRETS_MOUNT
    env.update(LTS_SECRETS_DIR=str(folder), LTS_API__HOST="127.0.0.1", LTS_API__PORT=str(port))
    return list(svc["command"]), env


def _healthcheck(port: int) -> list[str]:
    """The engine's compose healthcheck command, aimed at ``port``."""
    test = service("engine")["healthcheck"]["test"][1:]
    here = f"127.0.0.1:{port}/"
    return [sys.executable if arg == "python" else
            arg.replace(f"127.0.0.1:{engine_port()}/", here) for arg in test]


def _healthy(port: int) -> bool:
    return subprocess.run(_healthcheck(port), capture_output=True, timeout=30).returncode == 0


@pytest.mark.postgres
def test_migrate_then_engine_serve_with_the_compose_settings(
        tmp_path: Path, pg_databases: Any, run_in_thread: Any) -> None:
    """``migrate`` (``db upgrade``) and ``engine`` (``run``) with their compose environments
    (profile prod) and only their own secret files, on a fresh PostgreSQL database: the
    migration reaches the database named in the URL secret, the healthcheck fails before the
    engine runs and passes after, the admin password from its secret file logs in, /metrics
    answers, SIGTERM stops it cleanly and no secret shows in the output."""
    db_url = pg_databases.create()
    values = _secret_values(db_url)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    try:
        with processes(tmp_path) as procs:
            args, env = _as_run_here("migrate", values, tmp_path, port)
            migrate = procs.start(args, env)
            assert procs.wait(migrate, "migrate") == 0, procs.output(migrate)[-3000:]

            async def revision() -> Any:
                conn = await asyncpg.connect(db_url.replace("+asyncpg", ""))
                try:
                    return await conn.fetchval("SELECT version_num FROM alembic_version")
                finally:
                    await conn.close()

            assert run_in_thread(revision) == head_revision(), "migrate did not reach head"

            assert not _healthy(port), "the healthcheck passes with no engine running"
            args, env = _as_run_here("engine", values, tmp_path, port)
            engine = procs.start(args, env)
            wait_until(lambda: _healthy(port), "the engine's healthcheck to pass", engine)

            login = json.dumps({"username": "admin",
                                "password": values["LTS_ADMIN_PASSWORD"]}).encode()
            status, _ = http(base + "/api/v1/auth/login", login,
                             {"content-type": "application/json"})
            assert status == 200
            status, body = http(base + "/metrics")
            assert status == 200
            names = {f.name for f in text_string_to_metric_families(body.decode())}
            assert "lts_build_info" in names
            assert http(base + "/docs")[0] == 404

            engine.send_signal(signal.SIGTERM)
            stopped = procs.wait(engine, "the engine to stop after SIGTERM")
            assert stopped == 0, procs.output(engine)[-3000:]
            output = procs.output(migrate) + procs.output(engine)
            password = make_url(values["LTS_DATABASE__URL"]).password
            assert password
            assert password not in output, "the database password in the output"
            for target in ("LTS_AUTH__JWT_SECRET", "LTS_ADMIN_PASSWORD", "LTS_MASTER_KEY"):
                assert values[target] not in output, f"{target} in the output"
            assert "Traceback" not in output, output[-3000:]
    finally:
        pg_databases.drop(db_url)


# -- the dashboard queries what the engine exports ---------------------------------------------

@pytest.mark.anyio
async def test_dashboard_queries_only_series_the_engine_exports(tmp_path: Path) -> None:
    """Every ``lts_*`` series of every dashboard query (``_total``, ``_bucket``, ``_sum``,
    ``_count`` as Prometheus names them) is in a trading engine's /metrics, and every label the
    query matches or groups by is a label of that series."""
    async with running_api(tmp_path, demo={"interval": 0.05}) as api:
        families = await scrape_while_trading(api.base)
    series = exported_series(families)
    queries = dashboard_queries(dashboard())
    assert len(queries) > 8
    for expr in queries:
        names = metric_names(expr)
        assert names, f"no lts_ series in {expr!r}"
        missing = names - series.keys()
        assert not missing, f"{expr!r}: the engine exports no {sorted(missing)}"
        for metric, labels in selector_labels(expr).items():
            known = series[metric]
            if known is not None:
                assert labels <= known, f"{expr!r}: {metric} has labels {sorted(known)}"
        if all(series[n] is not None for n in names):
            known_all = set().union(*(series[n] or set() for n in names))
            assert grouping_labels(expr) <= known_all, (
                f"{expr!r}: the labels are {sorted(known_all)}")
        for metric, label in re.findall(r"label_values\((lts_[a-z0-9_]+),\s*(\w+)\)", expr):
            assert label in (series[metric] or set()), expr
