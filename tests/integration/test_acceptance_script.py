"""The exchange acceptance script (``tests/acceptance/exchange.py``, for Binance's testnet) runs
its checks against ``mmflow exchange-sim`` here, so the script a user runs with testnet keys is
itself tested; it is never pointed at the testnet in CI."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.integration.test_kafka_e2e import REPO
from tests.integration.trading_loop import BTC_FRAMES

pytestmark = pytest.mark.kafka


def _script(target: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.acceptance.exchange", "--target", target],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def test_the_acceptance_script_passes_every_check_on_the_simulator(kafka_bootstrap: str) -> None:
    if not BTC_FRAMES.exists():
        pytest.fail("the BTCUSDT frames are not under ../shared/data")
    done = _script("sim", {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap})
    passed = [ln for ln in done.stdout.splitlines() if ln.startswith("PASS")]
    assert done.returncode == 0 and "all checks passed" in done.stdout, done.stdout + done.stderr[-2000:]
    assert len(passed) == 10 and not [ln for ln in done.stdout.splitlines() if ln.startswith("FAIL")]


def test_the_testnet_target_without_keys_is_one_line_and_exit_2() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("MMFLOW_API_KEY", "MMFLOW_API_SECRET")}
    done = _script("testnet", env)
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0, done.stderr
    assert "MMFLOW_API_KEY" in done.stderr
