"""Structure checks for the container stack in infra/: compose, Prometheus, Grafana provisioning
and dashboard. No Docker needed: the files are parsed and cross-checked against each other and
against the metric names actually registered by each process' metrics (mmflow.connectors.metrics;
tests/integration/test_dashboard_metrics.py checks the same against real scrapes)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from mmflow.connectors.metrics import ExecMetrics, FlowMetrics, IngestMetrics, VenueMetrics

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
COMPOSE = INFRA / "docker-compose.yml"
DOCKERFILE = INFRA / "Dockerfile"
PROMETHEUS = INFRA / "prometheus.yml"
DATASOURCE = INFRA / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
PROVIDERS = INFRA / "grafana" / "provisioning" / "dashboards" / "dashboards.yml"
DASHBOARD = INFRA / "grafana" / "dashboards" / "mmflow.json"

SERVICES = {"kafka", "topics", "flow", "venue", "feeder", "prometheus", "grafana"}
MMFLOW_SERVICES = ("topics", "flow", "venue", "feeder")
BOOTSTRAP = "MMFLOW_KAFKA__BOOTSTRAP_SERVERS"

REQUIRED_PANEL_METRICS = [
    "maker_fifo_realized_quote",
    "maker_inventory_base",
    "maker_volatility_bps",
    "maker_regime_state",
    "maker_trend_down_guard",
    "maker_pnl_guard_active",
    "maker_hedge_volume_base_total",
    "maker_hedge_cost_quote_total",
    "maker_intents_total",
    "maker_dead_letters_total",
    "maker_processing_latency_seconds_bucket",
]


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return _yaml(COMPOSE)


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def _command(service: dict[str, Any]) -> list[str]:
    cmd = service.get("command") or []
    return shlex.split(cmd) if isinstance(cmd, str) else [str(c) for c in cmd]


def _option(cmd: list[str], name: str) -> str | None:
    for i, arg in enumerate(cmd):
        if arg == name and i + 1 < len(cmd):
            return cmd[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def _depends(service: dict[str, Any]) -> dict[str, str]:
    dep = service.get("depends_on") or {}
    if isinstance(dep, list):
        return {name: "service_started" for name in dep}
    return {name: (spec or {}).get("condition", "service_started") for name, spec in dep.items()}


def _panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for p in panels:
        out.append(p)
        out.extend(_panels(p.get("panels") or []))
    return out


def _metric_names(expr: str) -> set[str]:
    # Strip label matchers ({...}) and strings so label values never look like metric names.
    expr = re.sub(r'"[^"]*"', '""', expr)
    return set(re.findall(r"\b(?:maker|mmflow)_[a-zA-Z0-9_:]+\b", expr))


def _exposed_names() -> set[str]:
    """Every series name the processes' metrics expose: counters as *_total, histograms as
    *_bucket/_sum/_count."""
    names: set[str] = set()
    roles = (FlowMetrics, IngestMetrics, ExecMetrics, VenueMetrics)
    for family in (f for role in roles for f in role().registry.collect()):
        if family.type == "counter":
            names |= {family.name + "_total", family.name + "_created"}
        elif family.type == "histogram":
            names |= {family.name + s for s in ("_bucket", "_sum", "_count", "_created")}
        else:
            names.add(family.name)
    return names


# ---------------------------------------------------------------- compose


def test_compose_has_the_seven_services(compose):
    assert set(compose["services"]) == SERVICES


def test_mmflow_services_share_image_and_bootstrap(compose):
    services = compose["services"]
    envs = {name: _env(services[name]) for name in MMFLOW_SERVICES}
    for name in MMFLOW_SERVICES:
        svc = services[name]
        assert svc["build"]["dockerfile"] == "infra/Dockerfile", name
        assert (INFRA / svc["build"]["context"] / svc["build"]["dockerfile"]).resolve() == DOCKERFILE, name
        assert envs[name].get(BOOTSTRAP) == "kafka:9092", name
    assert len({envs[n][BOOTSTRAP] for n in ("flow", "venue", "feeder")}) == 1
    assert len({services[n].get("image") for n in MMFLOW_SERVICES}) == 1


def test_kafka_listeners(compose):
    kafka = compose["services"]["kafka"]
    assert kafka["image"] == "apache/kafka:4.1.1"
    env = _env(kafka)
    assert "broker" in env["KAFKA_PROCESS_ROLES"] and "controller" in env["KAFKA_PROCESS_ROLES"]
    advertised = env["KAFKA_ADVERTISED_LISTENERS"]
    assert "//kafka:9092" in advertised and "//localhost:29092" in advertised
    listeners = env["KAFKA_LISTENERS"]
    assert ":9092" in listeners and ":29092" in listeners
    assert any(str(p).startswith("29092:29092") for p in kafka.get("ports", []))
    assert "healthcheck" in kafka


def test_commands_and_ordering(compose):
    s = compose["services"]
    topics, flow, venue, feeder = (_command(s[n]) for n in ("topics", "flow", "venue", "feeder"))
    assert topics[0] == "topics" and _option(topics, "--partitions") == "4"
    assert flow[0] == "run" and _option(flow, "--metrics-port") == "9100"
    assert venue[0] == "venue" and _option(venue, "--metrics-port") == "9101"
    assert feeder[0] == "feed" and _option(feeder, "--speed") == "1"
    assert _depends(s["topics"]) == {"kafka": "service_healthy"}
    for name in ("flow", "venue", "feeder"):
        assert _depends(s[name]).get("topics") == "service_completed_successfully", name


def test_feeder_mounts_the_recorded_data(compose):
    feeder = compose["services"]["feeder"]
    mounts = [str(v).split(":") for v in feeder["volumes"]]
    data = [m for m in mounts if m[1] == "/data"]
    assert data and data[0][0] == "../../shared/data" and data[0][2:] == ["ro"]
    host_dir = (INFRA / data[0][0]).resolve()
    cmd = _command(feeder)
    files = [_option(cmd, "--quotes"), _option(cmd, "--trades")]
    assert all(f and f.startswith("/data/") for f in files)
    if host_dir.is_dir():
        for f in files:
            assert (host_dir / Path(f).name).is_file(), f


def test_grafana_and_prometheus_services(compose):
    s = compose["services"]
    assert s["prometheus"]["image"].startswith("prom/prometheus")
    assert any(str(p).startswith("9090:9090") for p in s["prometheus"]["ports"])
    assert any(
        str(v).startswith("./prometheus.yml:/etc/prometheus/prometheus.yml")
        for v in s["prometheus"]["volumes"]
    )
    g = s["grafana"]
    assert g["image"].startswith("grafana/grafana")
    assert any(str(p).startswith("3000:3000") for p in g["ports"])
    env = _env(g)
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true" and env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    mounts = {str(v).split(":")[1]: str(v).split(":")[0] for v in g["volumes"]}
    assert (INFRA / mounts["/etc/grafana/provisioning"]).resolve() == (INFRA / "grafana" / "provisioning")
    provider_path = _yaml(PROVIDERS)["providers"][0]["options"]["path"]
    assert (INFRA / mounts[provider_path]).resolve() == DASHBOARD.parent


def test_dockerfile():
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.12-slim\b", text, re.M)
    assert re.search(r"^RUN pip install \.", text, re.M)
    assert re.search(r'^ENTRYPOINT \["mmflow"\]', text, re.M)


# ---------------------------------------------------------------- prometheus


def test_prometheus_targets_match_compose_ports(compose):
    prom = _yaml(PROMETHEUS)
    jobs = {job["job_name"]: job for job in prom["scrape_configs"]}
    assert {"mmflow-flow", "mmflow-venue"} <= set(jobs)
    s = compose["services"]
    for job, service in (("mmflow-flow", "flow"), ("mmflow-venue", "venue")):
        targets = [t for sc in jobs[job]["static_configs"] for t in sc["targets"]]
        port = _option(_command(s[service]), "--metrics-port")
        assert targets == [f"{service}:{port}"], job
        assert jobs[job].get("scrape_interval", prom["global"]["scrape_interval"]) == "5s"


# ---------------------------------------------------------------- grafana


def test_datasource_provisioning():
    ds = _yaml(DATASOURCE)["datasources"]
    assert len(ds) == 1
    assert ds[0]["type"] == "prometheus" and ds[0]["uid"] == "prometheus"
    assert ds[0]["url"] == "http://prometheus:9090"


def test_dashboard_provider():
    providers = _yaml(PROVIDERS)["providers"]
    assert providers[0]["type"] == "file"
    assert providers[0]["options"]["path"] == "/var/lib/grafana/dashboards"


def test_dashboard_basics(dashboard):
    assert dashboard["schemaVersion"] == 39
    var = {v["name"]: v for v in dashboard["templating"]["list"]}["market"]
    query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
    assert query == "label_values(maker_inventory_base, market)"
    assert var["multi"] is True and var["includeAll"] is True
    assert var["datasource"]["uid"] == "prometheus"
    ids = [p["id"] for p in _panels(dashboard["panels"])]
    assert len(ids) == len(set(ids))


def test_every_panel_uses_the_prometheus_uid(dashboard):
    for p in _panels(dashboard["panels"]):
        if p["type"] == "row":
            continue
        assert p["datasource"]["uid"] == "prometheus", p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["datasource"]["uid"] == "prometheus", p["title"]


def test_dashboard_metric_names_exist(dashboard):
    exposed = _exposed_names()
    used: set[str] = set()
    for p in _panels(dashboard["panels"]):
        for t in p.get("targets", []):
            used |= _metric_names(t["expr"])
    for v in dashboard["templating"]["list"]:
        q = v.get("query")
        used |= _metric_names(q["query"] if isinstance(q, dict) else str(q or ""))
    assert used, "no metric names found in the dashboard"
    assert used <= exposed, f"unknown metrics: {sorted(used - exposed)}"


@pytest.mark.parametrize("metric", REQUIRED_PANEL_METRICS)
def test_dashboard_has_a_panel_for(dashboard, metric):
    panels = [
        p
        for p in _panels(dashboard["panels"])
        if any(metric in _metric_names(t["expr"]) for t in p.get("targets", []))
    ]
    assert panels, f"no panel queries {metric}"


def test_dashboard_queries(dashboard):
    exprs = {t["expr"] for p in _panels(dashboard["panels"]) for t in p.get("targets", [])}
    assert any("rate(maker_intents_total" in e and "[1m]" in e for e in exprs)
    assert any("increase(maker_dead_letters_total[5m])" in e and "reason" in e for e in exprs)
    assert any(e.startswith("histogram_quantile(0.5,") and "by (le, market)" in e for e in exprs)
    assert any(e.startswith("histogram_quantile(0.99,") and "by (le, market)" in e for e in exprs)
    assert any("rate(maker_events_total" in e for e in exprs)
    by_metric = {
        m: p
        for p in _panels(dashboard["panels"])
        for t in p.get("targets", [])
        for m in _metric_names(t["expr"])
    }
    guards = by_metric["maker_trend_down_guard"]
    assert guards["type"] == "state-timeline" and by_metric["maker_pnl_guard_active"] is guards
    steps = by_metric["maker_inventory_base"]["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert {s["value"] for s in steps} >= {-0.05, -0.01, 0.01, 0.05}
    vol = by_metric["maker_volatility_bps"]
    assert by_metric["maker_regime_state"] is vol
    regime_ref = next(t["refId"] for t in vol["targets"] if "maker_regime_state" in t["expr"])
    right = [o for o in vol["fieldConfig"]["overrides"] if o["matcher"]["options"] == regime_ref]
    assert any(
        pr["id"] == "custom.axisPlacement" and pr["value"] == "right" for o in right for pr in o["properties"]
    )
