"""Processes behave (issue "books" §6): signals reach the flow and stop it cleanly, and a broker
that is missing or refuses the credentials is one line, not a hang or a lie."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import SOL_QUOTES, SOL_TRADES
from tests.integration.test_kafka_e2e import REPO, mmflow, topic_sets
from tests.integration.test_metrics_http import free_port, scrape


def nobody() -> str:
    return f"127.0.0.1:{free_port()}"  # a free port: no broker listens there


def test_feed_to_an_unreachable_broker_says_how_many_were_lost(data_dir: Path) -> None:
    """It printed "fed 548 events" and exited 0."""
    proc = subprocess.run(
        mmflow("feed", "--quotes", str(SOL_QUOTES), "--trades", str(SOL_TRADES), "--bootstrap", nobody()),
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout
    assert "548 of 548 events not delivered" in proc.stderr
    assert "fed " not in proc.stdout and "Traceback" not in proc.stderr


def test_run_without_a_broker_is_one_line() -> None:
    proc = subprocess.run(
        mmflow("run", "--bootstrap", nobody()), cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mmflow run: cannot use the Kafka broker at"), lines


@pytest.mark.kafka
def test_run_against_a_broker_refusing_its_credentials_is_one_line(kafka_bootstrap: str) -> None:
    """SASL settings a PLAINTEXT broker cannot speak: one line, no password."""
    secret = "s3cret-pw-123"
    sasl = ["security.protocol=SASL_PLAINTEXT", "sasl.mechanism=SCRAM-SHA-256", "sasl.username=flow"]
    args = [a for s in [*sasl, f"sasl.password={secret}"] for a in ("--set", f"kafka.extra.{s}")]
    proc = subprocess.run(
        mmflow("run", "--bootstrap", kafka_bootstrap, *args),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot use the Kafka broker" in lines[0], lines
    assert secret not in proc.stderr + proc.stdout


@pytest.mark.kafka
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_run_is_the_flow_and_stops_cleanly(kafka_bootstrap: str, unique_topic_prefix: str, sig: int) -> None:
    """`kill` of `mmflow run` left `python -m bytewax.run` running, consuming and serving metrics;
    now `mmflow run` is that process (exec), and a signal stops it without a traceback or panic."""
    port = free_port()
    sets = [*topic_sets(unique_topic_prefix), f"kafka.bootstrap_servers={kafka_bootstrap}"]
    proc = subprocess.Popen(
        mmflow("run", "--metrics-port", str(port), *[a for s in sets for a in ("--set", s)]),
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                scrape(port)
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, (
                    proc.stdout.read() if proc.stdout else ""
                )
                time.sleep(0.3)
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().replace(b"\0", b" ")
        assert b"mmflow.flows.live" in cmdline, cmdline  # the pid we started is the flow itself
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out[-2000:]
    assert "Traceback" not in out and "panicked" not in out, out[-2000:]
    with pytest.raises(OSError):
        scrape(port)  # nothing left serving metrics
