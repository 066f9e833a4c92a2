"""Structure checks for the container stack in infra/: compose, Prometheus, Grafana provisioning
and dashboard. No Docker needed: the files are parsed and cross-checked against each other and
against the metric names actually registered by each process' metrics (mmflow.connectors.metrics;
tests/integration/test_dashboard_metrics.py checks the same against real scrapes)."""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from mmflow.connectors.metrics import ExecMetrics, FlowMetrics, IngestMetrics, VenueMetrics
from tests.integration.test_metrics_http import free_port

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
COMPOSE = INFRA / "docker-compose.yml"
DOCKERFILE = INFRA / "Dockerfile"
PROMETHEUS = INFRA / "prometheus" / "prometheus.yml"
DATASOURCE = INFRA / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
PROVIDERS = INFRA / "grafana" / "provisioning" / "dashboards" / "dashboards.yml"
DASHBOARD = INFRA / "grafana" / "dashboards" / "mmflow.json"

SERVICES = {"kafka", "topics", "recovery-init", "flow", "venue", "feeder", "prometheus", "grafana"}
MMFLOW_SERVICES = ("topics", "recovery-init", "flow", "venue", "feeder")
RUNTIME_USER = ("mmflow", "10001")
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


def test_compose_has_the_eight_services(compose):
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
    cmd = _command(s["prometheus"])
    mounts = {str(v).split(":")[1]: str(v).split(":")[0] for v in s["prometheus"]["volumes"]}
    config = PurePosixPath(_option(cmd, "--config.file") or "")
    # The config's directory is mounted from infra/prometheus, so its rule files come along.
    assert (INFRA / mounts[str(config.parent)]).resolve() == PROMETHEUS.parent
    assert config.name == PROMETHEUS.name
    g = s["grafana"]
    assert g["image"].startswith("grafana/grafana")
    assert any(str(p).startswith("3000:3000") for p in g["ports"])
    env = _env(g)
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true" and env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    mounts = {str(v).split(":")[1]: str(v).split(":")[0] for v in g["volumes"]}
    assert (INFRA / mounts["/etc/grafana/provisioning"]).resolve() == (INFRA / "grafana" / "provisioning")
    provider_path = _yaml(PROVIDERS)["providers"][0]["options"]["path"]
    assert (INFRA / mounts[provider_path]).resolve() == DASHBOARD.parent


def _instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions, (KEYWORD, arguments), continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1]) for ln in lines]


def _instruction(keyword: str) -> str:
    return [args for kw, args in _instructions() if kw == keyword][-1]


def test_dockerfile():
    assert re.match(r"python:3\.12-slim\b", _instruction("FROM"))
    assert any(kw == "RUN" and args.startswith("pip install .") for kw, args in _instructions())
    assert json.loads(_instruction("ENTRYPOINT"))[-1] == "mmflow"


def test_mmflow_is_not_pid_1(compose):
    """mmflow as PID 1 let `docker stop`'s SIGTERM pass (no default action for PID 1): waited the
    grace period, then SIGKILL. An init must start it and pass signals on."""
    entrypoint = json.loads(_instruction("ENTRYPOINT"))  # exec form: no shell in between either
    image_init = (
        Path(entrypoint[0]).name in {"tini", "docker-init", "dumb-init"} and entrypoint[-1] == "mmflow"
    )
    if image_init:
        assert any(kw == "RUN" and Path(entrypoint[0]).name in args for kw, args in _instructions())
    for name in MMFLOW_SERVICES:
        service = compose["services"][name]
        assert "entrypoint" not in service, name  # would drop the image's init
        assert image_init or service.get("init") is True, name


def _seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", duration))


def test_flow_and_venue_get_time_to_stop(compose):
    for name in ("flow", "venue"):
        grace = compose["services"][name].get("stop_grace_period")
        assert grace and _seconds(str(grace)) >= 20, name  # docker's default is 10 s


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    return {str(v).split(":")[1]: str(v).split(":")[0] for v in service.get("volumes") or []}


def test_flow_runs_with_recovery_on_a_volume(compose):
    s = compose["services"]
    recovery = _option(_command(s["flow"]), "--recovery-dir")
    assert recovery, "the flow restarts from scratch without --recovery-dir"
    volume = _mounts(s["flow"]).get(recovery)
    assert volume in (compose.get("volumes") or {}), "the recovery dir is not on a named volume"
    # Partitions first, by a one-shot that leaves existing ones alone (mmflow recovery-init).
    inits = [n for n, svc in s.items() if _command(svc)[:2] == ["recovery-init", recovery]]
    assert len(inits) == 1 and _mounts(s[inits[0]]).get(recovery) == volume
    assert _depends(s["flow"]).get(inits[0]) == "service_completed_successfully"
    assert s[inits[0]].get("restart") == "no"
    # An empty named volume takes the owner of the image's directory: it must be the user's.
    workdir = _instruction("WORKDIR")
    assert PurePosixPath(recovery).is_relative_to(workdir)


def test_the_runtime_user_owns_the_working_directory():
    """/app was root's while the container ran as uid 10001: `record` or `replay --out` failed."""
    instructions = _instructions()
    workdir = _instruction("WORKDIR")
    user = _instruction("USER")
    assert user in RUNTIME_USER
    assert any(kw == "RUN" and re.search(r"useradd\b.*--uid 10001 mmflow\b", a) for kw, a in instructions)
    last_copy = max(i for i, (kw, _) in enumerate(instructions) if kw == "COPY")
    chowns = [
        a
        for kw, a in instructions[last_copy:]
        if kw == "RUN"
        and re.search(rf"chown -R ({'|'.join(RUNTIME_USER)})(:\S+)? ({re.escape(workdir)}|\.)(\s|$)", a)
    ]
    assert chowns, f"no chown -R of {workdir} to {user} after the last COPY"
    assert [kw for kw, _ in instructions].index("USER") > last_copy


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


# ---------------------------------------------------------------- alerts

ALERTS = INFRA / "prometheus" / "alerts.yml"
ALERT_TESTS = INFRA / "prometheus" / "alerts.test.yml"
# The metrics without a market label: their alerts name the topic, source, venue or target instead.
UNMARKETED = (
    "up",
    "mmflow_ingest_",
    "mmflow_exec_user_stream_connected",
    "mmflow_exec_rate_budget_used",
    "maker_dead_letters_total",
    "maker_kafka_errors_total",
    "maker_consumer_lag",
)


def _alert_rules() -> list[dict[str, Any]]:
    return [rule for group in _yaml(ALERTS)["groups"] for rule in group["rules"]]


def _series_names(expr: str) -> set[str]:
    expr = re.sub(r'"[^"]*"', '""', expr)
    expr = re.sub(r"\b(by|on|ignoring|without)\s*\([^)]*\)", "", expr)
    words = set(re.findall(r"\b[a-zA-Z_][a-zA-Z0-9_:]*\b(?!\s*\()", expr))
    return {w for w in words if w == "up" or w.startswith(("maker_", "mmflow_"))}


def test_prometheus_loads_the_alerts():
    assert _yaml(PROMETHEUS)["rule_files"] == [ALERTS.name]


def test_every_alert_has_severity_summary_and_description():
    rules = _alert_rules()
    assert len(rules) >= 12 and len({r["alert"] for r in rules}) == len(rules)
    for rule in rules:
        name, expr = rule["alert"], rule["expr"]
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
        if not any(n.startswith(UNMARKETED) for n in _series_names(expr)):
            for text in rule["annotations"].values():
                assert "{{ $labels.market }}" in text, name


def test_alert_metrics_exist():
    used = {n for r in _alert_rules() for n in _series_names(r["expr"])}
    missing = used - _exposed_names() - {"up"}
    assert not missing, f"unknown metrics in alerts.yml: {sorted(missing)}"


def test_every_scrape_job_has_a_down_alert():
    jobs = {job["job_name"] for job in _yaml(PROMETHEUS)["scrape_configs"]}
    down = " ".join(r["expr"] for r in _alert_rules() if r["expr"].startswith("up{"))
    for job in jobs:
        assert re.search(rf"\b{re.escape(job)}\b", down), job


def test_every_alert_is_tested_firing_and_silent():
    cases = [c for t in _yaml(ALERT_TESTS)["tests"] for c in t.get("alert_rule_test", [])]
    for name in (r["alert"] for r in _alert_rules()):
        mine = [c for c in cases if c["alertname"] == name]
        assert any(c.get("exp_alerts") for c in mine), f"{name}: no case where it fires"
        assert any(not c.get("exp_alerts") for c in mine), f"{name}: no case where it stays silent"


def test_halt_alerts_fire_without_delay():
    """A halt is known the moment the flow applies it (the real-Prometheus test relies on it)."""
    rules = {r["alert"]: r for r in _alert_rules()}
    for name in ("MakerKillSwitchHalt", "MakerLossLimitHalt", "MakerReconcileHalt"):
        assert "for" not in rules[name], name


# ---------------------------------------------------------------- local broker script

KAFKA_SH = INFRA / "kafka" / "kafka.sh"


@pytest.mark.parametrize("busy", ["KAFKA_PORT", "KAFKA_CONTROLLER_PORT"])
def test_kafka_sh_port_in_use_names_the_variables_that_move_it(tmp_path, busy):
    """It said "set KAFKA_PORT or KAFKA_BOOTSTRAP_SERVERS": the second changes no port of the script,
    and a second broker also needs its own KAFKA_DATA_DIR."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ports = {"KAFKA_PORT": str(free_port()), "KAFKA_CONTROLLER_PORT": str(free_port())}
        ports[busy] = str(taken.getsockname()[1])
        env = {**os.environ, **ports, "KAFKA_DATA_DIR": str(tmp_path / "kafka")}
        env.pop("KAFKA_SECURITY", None)
        done = subprocess.run(
            ["bash", str(KAFKA_SH), "up"], env=env, capture_output=True, text=True, timeout=60
        )
    assert done.returncode == 1
    message = done.stderr.strip()
    assert ports[busy] in message and "already in use" in message, message
    for name in ("KAFKA_PORT", "KAFKA_CONTROLLER_PORT", "KAFKA_DATA_DIR"):
        assert name in message, message
    assert "KAFKA_BOOTSTRAP_SERVERS" not in message
