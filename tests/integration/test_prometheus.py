"""The real Prometheus (Debian's package, no Docker) with the project's config and alerting rules,
scraping a running flow and paper venue: the analysis' metrics arrive through its HTTP API, and an
operator's kill switch makes MakerKillSwitchHalt fire."""

from __future__ import annotations

import json
import shutil
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import SOL_QUOTES, SOL_TRADES
from tests.integration.kafka_broker import create_topic
from tests.integration.test_kafka_e2e import mmflow, run_ok, start, stop, topic_sets
from tests.integration.test_kafka_kill_switch import gauge, wait_for
from tests.integration.test_metrics_http import free_port

pytestmark = pytest.mark.kafka

PROM_DIR = Path(__file__).resolve().parents[2] / "infra" / "prometheus"
MARKET = "bybit:SOLUSDT"
ANALYSIS_METRICS = (
    "maker_inventory_base",
    "maker_fifo_realized_quote",
    "maker_pnl_guard_active",
    "maker_regime_state",
    "maker_volatility_bps",
    "maker_kill_switch_active",
)


def alert_names() -> set[str]:
    """The alerts of alerts.yml."""
    groups = yaml.safe_load((PROM_DIR / "alerts.yml").read_text())["groups"]
    return {rule["alert"] for group in groups for rule in group["rules"]}


def prometheus_binary() -> str:
    """The binary, or a failure saying where to get it (never a skip)."""
    found = shutil.which("prometheus")
    if found is None:
        pytest.fail(
            "prometheus not found on PATH: install Debian's prometheus package (apt-get install prometheus)",
            pytrace=False,
        )
    return found


def scrape_config(targets: dict[str, str]) -> dict[str, Any]:
    """The project's prometheus.yml with its rules (by absolute path), each job's target replaced
    by this test's 127.0.0.1 port and 1 s intervals, so a scrape and an evaluation take a second."""
    config = yaml.safe_load((PROM_DIR / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(PROM_DIR / name) for name in config["rule_files"]]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(targets) <= set(jobs), f"jobs missing from prometheus.yml: {set(targets) - set(jobs)}"
    config["scrape_configs"] = [
        {**jobs[name], "scrape_interval": "1s", "static_configs": [{"targets": [target]}]}
        for name, target in targets.items()
    ]
    return config


def api(port: int, path: str, **params: str) -> Any:
    """GET ``/api/v1/<path>``; its ``data`` (a failed query raises)."""
    url = f"http://127.0.0.1:{port}/api/v1/{path}?{urllib.parse.urlencode(params)}"
    body = json.loads(urllib.request.urlopen(url, timeout=5).read())
    assert body["status"] == "success", body
    return body["data"]


def ready(port: int) -> bool:
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=2).status == 200
    except OSError:
        return False


def samples(port: int, query: str) -> list[dict[str, Any]]:
    try:
        return api(port, "query", query=query)["result"]
    except OSError:
        return []


def alerts(port: int, name: str) -> list[dict[str, Any]]:
    return [a for a in api(port, "alerts")["alerts"] if a["labels"]["alertname"] == name]


def start_prometheus(binary: str, targets: dict[str, str], tmp_path: Path) -> tuple[Any, int]:
    """Prometheus on a free port with :func:`scrape_config`, its storage in ``tmp_path``; once ready."""
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump(scrape_config(targets)))
    proc = start(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        tmp_path / "prometheus.log",
    )
    try:
        wait_for(lambda: ready(port), timeout=30)
    except TimeoutError:
        stop(proc)
        raise AssertionError((tmp_path / "prometheus.log").read_text()[-2000:]) from None
    return proc, port


def test_real_prometheus_scrapes_the_flow_and_fires_the_kill_switch_alert(
    kafka_bootstrap, unique_topic_prefix, tmp_path, data_dir
) -> None:
    binary = prometheus_binary()
    prefix = unique_topic_prefix
    sets = [*topic_sets(prefix), f"kafka.bootstrap_servers={kafka_bootstrap}"]
    for name in ("md", "fills", "control", "intents", "dlq", "fills.journal"):
        create_topic(kafka_bootstrap, f"{prefix}.{name}", partitions=1)
    args = [a for s in sets for a in ("--set", s)]
    flow_port, venue_port = free_port(), free_port()
    procs = [
        start(mmflow("venue", "--metrics-port", str(venue_port), *args), tmp_path / "venue.log"),
        start(mmflow("run", "--metrics-port", str(flow_port), *args), tmp_path / "flow.log"),
    ]
    try:
        run_ok("feed", "--quotes", str(SOL_QUOTES), "--trades", str(SOL_TRADES), *args, timeout=120)
        wait_for(lambda: (gauge(flow_port, "maker_events_total", MARKET) or 0) >= 383 + 165)
        targets = {"mmflow-flow": f"127.0.0.1:{flow_port}", "mmflow-venue": f"127.0.0.1:{venue_port}"}
        prom, prom_port = start_prometheus(binary, targets, tmp_path)
        procs.append(prom)

        # Both targets are up and the analysis' metrics are there for the market.
        wait_for(lambda: len(samples(prom_port, "up == 1")) == 2, timeout=30)
        for metric in ANALYSIS_METRICS:
            wait_for(lambda m=metric: samples(prom_port, f'{m}{{market="{MARKET}"}}'), timeout=15)
        # Every rule of alerts.yml is loaded; with a few evaluations done, the halt alert is silent.
        rules = {r["name"] for g in api(prom_port, "rules")["groups"] for r in g["rules"]}
        assert rules == alert_names()
        time.sleep(3)
        assert alerts(prom_port, "MakerKillSwitchHalt") == []

        run_ok("control", "halt", "--market", MARKET, "--reason", "prometheus test", *args, timeout=60)
        wait_for(lambda: any(a["state"] == "firing" for a in alerts(prom_port, "MakerKillSwitchHalt")), 30)
        response = api(prom_port, "alerts")
    finally:
        for proc in reversed(procs):
            stop(proc)

    print("\n/api/v1/alerts:", json.dumps(response, indent=2))
    (fired,) = [a for a in response["alerts"] if a["labels"]["alertname"] == "MakerKillSwitchHalt"]
    assert fired["state"] == "firing"
    assert fired["labels"]["market"] == MARKET and fired["labels"]["severity"] == "warning"
    assert fired["labels"]["job"] == "mmflow-flow"
    assert fired["annotations"]["summary"] == f"{MARKET}: halted by the kill switch"
