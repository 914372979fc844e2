"""Readers of the deployment files (docker-compose.yml, the Dockerfile, Prometheus and Grafana
provisioning) and of the PromQL in the dashboard, for the deploy tests. No Docker needed: the
files are loaded the way compose, Prometheus and Grafana load them (YAML, JSON, Dockerfile
instruction lines)."""

import json
import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"
GRAFANA = ROOT / "deploy" / "grafana"
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS = GRAFANA / "provisioning" / "dashboards" / "lts.yml"
DASHBOARD = GRAFANA / "dashboards" / "lts.json"

SECRETS_MOUNT = "/run/secrets"


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def compose() -> dict[str, Any]:
    return dict(load_yaml(COMPOSE))


def service(name: str) -> dict[str, Any]:
    return dict(compose()["services"][name])


def environment(svc: dict[str, Any]) -> dict[str, str]:
    """A service's environment as strings, from the mapping or the ``KEY=VALUE`` list form."""
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): "" if v is None else str(v).lower() if isinstance(v, bool) else str(v)
            for k, v in env.items()}


def secret_targets(svc: dict[str, Any]) -> dict[str, str]:
    """``target file name -> top-level secret`` of a service (the short form mounts a secret
    under its own name)."""
    out: dict[str, str] = {}
    for ref in svc.get("secrets") or []:
        if isinstance(ref, str):
            out[ref] = ref
        else:
            out[str(ref.get("target", ref["source"]))] = str(ref["source"])
    return out


def engine_port() -> int:
    """The port the engine's API listens on inside its container (``LTS_API__PORT``)."""
    return int(environment(service("engine"))["LTS_API__PORT"])


def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


# -- Dockerfile --------------------------------------------------------------------------------

def dockerfile_instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` pairs, comments dropped and continuation lines joined."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        word, _, rest = line.partition(" ")
        out.append((word.upper(), " ".join(rest.split())))
    assert not pending, "the Dockerfile ends in a continuation line"
    return out


# -- PromQL of the dashboard -------------------------------------------------------------------

_METRIC = re.compile(r"\blts_[a-z0-9_]+")
_SELECTOR = re.compile(r"\b(lts_[a-z0-9_]+)\s*\{([^}]*)\}")
_MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
_GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")


def dashboard_queries(dash: dict[str, Any]) -> list[str]:
    """Every PromQL text of the dashboard: panel targets and template variable queries."""
    queries = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    for var in dash.get("templating", {}).get("list", []):
        query = var.get("query")
        queries.append(query["query"] if isinstance(query, dict) else str(query))
    return queries


def metric_names(expr: str) -> set[str]:
    return set(_METRIC.findall(expr))


def selector_labels(expr: str) -> dict[str, set[str]]:
    """``metric -> label names matched in its {...} selectors``."""
    out: dict[str, set[str]] = {}
    for metric, body in _SELECTOR.findall(expr):
        out.setdefault(metric, set()).update(_MATCHER.findall(body))
    return out


def grouping_labels(expr: str) -> set[str]:
    """Label names of ``by (...)`` / ``without (...)`` clauses."""
    return {name.strip() for group in _GROUPING.findall(expr) for name in group.split(",")
            if name.strip()}


_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"),
             "summary": ("_count", "_sum", ""), "gauge": ("",), "info": ("_info",),
             "unknown": ("",)}


def exported_series(families: Any) -> dict[str, set[str] | None]:
    """``series name -> its label names`` from parsed Prometheus text. A family without samples
    (a labelled counter nothing has counted yet) still declares its series names, by type
    (counter ``_total``; histogram ``_bucket``, ``_count``, ``_sum``), with labels unknown
    (``None``)."""
    out: dict[str, set[str] | None] = {}
    for family in families:
        if not family.samples:
            for suffix in _SUFFIXES[family.type]:
                out.setdefault(family.name + suffix, None)
            continue
        for sample in family.samples:
            labels = out.get(sample.name) or set()
            labels.update(sample.labels)
            out[sample.name] = labels
    return out
