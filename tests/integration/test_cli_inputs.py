"""The command line on the inputs a new user brings: other venues' files, partial overrides, bad
configuration. Each case runs ``mmflow`` in a subprocess, as a user would, and reads its exit code,
its one-line error and its outputs."""

from __future__ import annotations

import csv
import gzip
import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from tests.conftest import BTC_QUOTES, BTC_TRADES, SOL_QUOTES, SOL_TRADES

ROWS = 6_000  # about 25 s of the BTC recording: enough to warm up, quote and fill


def mmflow(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mmflow.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("MMFLOW_")}, **(env or {})},
        cwd=cwd,
    )


def rewrite(src: Path, dst: Path, rows: int | None = None, **columns: str) -> Path:
    """A copy of a Tardis CSV with some columns replaced (another venue, another symbol)."""
    with gzip.open(src, "rt", newline="") as fh:
        reader = csv.DictReader(fh)
        fields = reader.fieldnames or []
        out = [dict(row, **columns) for n, row in enumerate(reader) if rows is None or n < rows]
    with gzip.open(dst, "wt", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(out)
    return dst


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    """Exit 2, no traceback, and exactly one line on stderr."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-500:], proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def replay(tmp_path: Path, quotes: Path, trades: Path, *extra: str, env: dict[str, str] | None = None):
    out = tmp_path / "out"
    proc = mmflow(
        "replay", "--quotes", str(quotes), "--trades", str(trades), "--out", str(out), "--quiet",
        "--no-report", *extra, env=env,
    )  # fmt: skip
    return proc, out


@pytest.fixture(scope="module")
def btc_small(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("btc_small")
    return rewrite(BTC_QUOTES, d / "q.csv.gz", ROWS), rewrite(BTC_TRADES, d / "t.csv.gz", ROWS // 3)


# -- instruments are venue + symbol ---------------------------------------------------------------


def test_binance_spot_file_uses_the_spot_spec(btc_small, tmp_path: Path) -> None:
    """Spot BTCUSDT (exchange `binance`) trades at spot's 10 bps maker fee on spot's 0.01 tick; it
    used to take the USD-M spec (2 bps, tick 0.1) because markets were keyed by symbol alone."""
    q = rewrite(btc_small[0], tmp_path / "spot_q.csv.gz", exchange="binance")
    t = rewrite(btc_small[1], tmp_path / "spot_t.csv.gz", exchange="binance")
    proc, out = replay(
        tmp_path, q, t, "--set", "strategy.spreads.min_bps=2", "--set", "strategy.spreads.max_bps=3"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["markets"]) == ["binance:BTCUSDT"]
    fills = pl.read_parquet(out / "fills.parquet").filter(pl.col("source") == "maker")
    assert fills.height > 0
    for px, qty, fee in fills.select("price", "qty", "fee").iter_rows():
        assert fee == px * qty * Decimal("0.001")
    quotes = pl.read_parquet(out / "intents.parquet").filter(pl.col("kind") == "quote")
    prices = [p for p in quotes.get_column("bid_px").drop_nulls().to_list()]
    assert prices and any(p % Decimal("0.1") != 0 for p in prices)  # on the 0.01 grid, not 0.1


def test_ftx_file_with_its_own_symbol_replays(data_dir: Path, tmp_path: Path) -> None:
    """FTX names its spot market `SOL/USD`; the shipped spec is `ftx:SOL/USD` (the old `SOL-USD`
    matched no row, so every row was a dead letter and the replay said 0 events, exit 0)."""
    q = rewrite(SOL_QUOTES, tmp_path / "ftx_q.csv.gz", exchange="ftx", symbol="SOL/USD")
    t = rewrite(SOL_TRADES, tmp_path / "ftx_t.csv.gz", exchange="ftx", symbol="SOL/USD")
    proc, out = replay(tmp_path, q, t)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["events"] == 383 + 165 and summary["dead_letters"] == 0
    assert list(summary["markets"]) == ["ftx:SOL/USD"]


def test_instrument_without_spec_stops_at_start(data_dir: Path, tmp_path: Path) -> None:
    q = rewrite(SOL_QUOTES, tmp_path / "k_q.csv.gz", exchange="kraken")
    line = one_line_error(replay(tmp_path, q, SOL_TRADES)[0])
    assert "k_q.csv.gz" in line and "'kraken:SOLUSDT'" in line


def test_a_run_that_processed_nothing_does_not_exit_zero(data_dir: Path, tmp_path: Path) -> None:
    quotes, trades = tmp_path / "q.csv", tmp_path / "t.csv"
    quotes.write_text("exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,bid_amount\n")
    trades.write_text("exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n")
    proc, _ = replay(tmp_path, quotes, trades)
    assert proc.returncode == 1, proc.stdout
    assert "processed no event" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("missing", "nope.csv.gz: no such file"),
        ("truncated", "truncated or corrupt gzip"),
        ("empty", "empty file"),
        ("no_column", "missing column(s) ask_price"),
        ("swapped", "a quotes file given as --trades"),
    ],
)
def test_a_file_that_cannot_be_read_is_one_line(
    data_dir: Path, tmp_path: Path, case: str, needle: str
) -> None:
    """Each of these failed the whole file with a polars traceback."""
    quotes, trades = tmp_path / "q.csv.gz", SOL_TRADES
    if case == "missing":
        quotes = tmp_path / "nope.csv.gz"
    elif case == "truncated":
        quotes.write_bytes(SOL_QUOTES.read_bytes()[:2000])
    elif case == "empty":
        quotes.write_bytes(b"")
    elif case == "no_column":
        rows = gzip.decompress(SOL_QUOTES.read_bytes()).decode().splitlines()
        cut = [",".join(c for i, c in enumerate(r.split(",")) if i != 5) for r in rows]
        quotes.write_bytes(gzip.compress("\n".join(cut).encode()))
    else:
        quotes, trades = SOL_QUOTES, SOL_QUOTES
    line = one_line_error(replay(tmp_path, quotes, trades)[0])
    assert needle in line, line


def test_a_ragged_or_undecodable_row_is_one_dead_letter(data_dir: Path, tmp_path: Path) -> None:
    """A ragged row and a row with an invalid UTF-8 byte are dead letters with their row number;
    every other row is replayed (each failed the whole file)."""
    lines = gzip.decompress(SOL_QUOTES.read_bytes()).split(b"\n")
    lines[10] = lines[10].rstrip(b"\r") + b",extra\r"  # the file has CRLF line ends
    lines[20] = lines[20].replace(b"bybit", b"byb\xffit")
    quotes = tmp_path / "q.csv.gz"
    quotes.write_bytes(gzip.compress(b"\n".join(lines)))
    proc, out = replay(tmp_path, quotes, SOL_TRADES)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["events"] == 383 - 2 + 165
    dead = pl.read_parquet(out / "dead_letters.parquet")
    details = sorted(dead.get_column("detail").to_list())
    assert details == ["not UTF-8 text at byte 3 (row 21)", "ragged row: 9 fields, the header has 8 (row 11)"]
    assert dead.get_column("reason").to_list() == ["malformed_row", "malformed_row"]


# -- per-market settings, partial overrides ---------------------------------------------------------


def test_partial_market_override_changes_one_field(btc_small, tmp_path: Path) -> None:
    """`--set markets.X.maker_fee_rate=...` changes that fee and keeps the tick, lot and the other
    markets (it replaced the market's whole spec: exit 2, tick_size missing)."""
    proc, out = replay(
        tmp_path, *btc_small, "--set", "markets.binance-futures:BTCUSDT.maker_fee_rate=0.0001",
        "--set", "strategy.spreads.min_bps=2", "--set", "strategy.spreads.max_bps=3",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    fills = pl.read_parquet(out / "fills.parquet").filter(pl.col("source") == "maker")
    assert fills.height > 0
    assert all(
        fee == px * qty * Decimal("0.0001")
        for px, qty, fee in fills.select("price", "qty", "fee").iter_rows()
    )


@pytest.mark.parametrize("source", ["yaml", "env"])
def test_adding_a_market_keeps_the_shipped_ones(btc_small, tmp_path: Path, source: str) -> None:
    """A market added in YAML or MMFLOW_MARKETS joins the shipped ones (it replaced them all: the
    BTC replay ended with 0 events, every row a dead letter, exit 0)."""
    new = {"kraken:XBTUSD": {"tick_size": "0.1", "lot_size": "0.0001", "min_qty": "0.0001"}}
    extra: list[str] = []
    env: dict[str, str] = {}
    if source == "yaml":
        cfg = tmp_path / "extra.yaml"
        cfg.write_text(json.dumps({"markets": new}))  # JSON is YAML
        extra = ["--config", str(cfg)]
    else:
        env = {"MMFLOW_MARKETS": json.dumps(new)}
    proc, out = replay(tmp_path, *btc_small, *extra, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["events"] > 0 and summary["dead_letters"] == 0
    assert list(summary["markets"]) == ["binance-futures:BTCUSDT"]


def test_btc_ships_its_own_quote_thresholds(btc_small, tmp_path: Path) -> None:
    """The SOL-sized -0.20 PnL-guard trigger tripped on the first BTC hedge's taker fee; BTC now
    carries its own (scaled) trigger, and the report draws that one."""
    proc, out = replay(tmp_path, *btc_small)
    assert proc.returncode == 0, proc.stderr[-2000:]
    th = json.loads((out / "summary.json").read_text())["markets"]["binance-futures:BTCUSDT"]["thresholds"]
    assert Decimal(th["pnl_guard_trigger_quote"]) == Decimal("-20")


def test_report_lines_follow_the_runs_settings(btc_small, tmp_path: Path) -> None:
    """The report's reference lines are the run's settings (they were hard-coded -0.20, 6.0 and
    0.01/0.05, wrong after any --set)."""
    from mmflow.connectors.report import reference_lines

    proc, out = replay(
        tmp_path, *btc_small, "--set", "markets.binance-futures:BTCUSDT.strategy.pnl_guard.trigger_quote=-7",
        "--set", "strategy.regime.threshold_bps=4.5", "--set", "strategy.inventory.soft_cap_base=0.07",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    th = json.loads((out / "summary.json").read_text())["markets"]["binance-futures:BTCUSDT"]["thresholds"]
    assert reference_lines(th) == {"inventory": [0.01, 0.07], "pnl": [-7.0], "volatility": [4.5]}


# -- configuration that cannot be wrong quietly: one line, exit 2, no traceback --------------------


def _bad_yaml(tmp_path: Path) -> list[str]:
    (tmp_path / "bad.yaml").write_text("strategy: {hedger: [1, 2\n")
    return ["--config", str(tmp_path / "bad.yaml")]


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("bad_yaml", "bad.yaml: invalid YAML"),
        ("missing_file", "nope.yaml: no such file"),
        ("bad_env_json", "MMFLOW_KAFKA__EXTRA: invalid JSON"),
        ("unknown_env", "MMFLOW_STRATEGY__HEDGR__TRIGGER_BASE: unknown setting"),
        ("cross_field", "min_returns"),
        ("secret", "kafka.extra"),
    ],
)
def test_bad_configuration_is_one_line_and_exit_2(btc_small, tmp_path: Path, case: str, needle: str) -> None:
    extra, env = [], {}
    if case == "bad_yaml":
        extra = _bad_yaml(tmp_path)
    elif case == "missing_file":
        extra = ["--config", str(tmp_path / "nope.yaml")]
    elif case == "bad_env_json":
        env = {"MMFLOW_KAFKA__EXTRA": "{not json"}
    elif case == "unknown_env":
        env = {"MMFLOW_STRATEGY__HEDGR__TRIGGER_BASE": "0.02"}
    elif case == "cross_field":
        extra = ["--set", "strategy.volatility.min_returns=100", "--set", "strategy.volatility.window=10"]
    else:  # a bad value under kafka.extra must not be echoed
        env = {"MMFLOW_KAFKA__EXTRA": json.dumps({"sasl.password": ["s3cret-12345678"]})}
    proc, _ = replay(tmp_path, *btc_small, *extra, env=env)
    line = one_line_error(proc)
    assert needle in line, line
    assert "s3cret" not in proc.stderr + proc.stdout
    if case == "cross_field":
        assert "window" in line


def test_recovery_init_twice_leaves_the_partitions(tmp_path: Path) -> None:
    """The second run panicked in Bytewax (a traceback, exit 1); the compose flow runs it before
    every start of the same volume."""
    recovery = tmp_path / "recovery"
    first = mmflow("recovery-init", str(recovery))
    assert first.returncode == 0, first.stderr
    part = recovery / "part-0.sqlite3"
    before = part.read_bytes()
    again = mmflow("recovery-init", str(recovery))
    assert again.returncode == 0, again.stderr
    assert "already has recovery partitions" in again.stdout
    assert "Traceback" not in again.stderr and "panicked" not in again.stderr
    assert part.read_bytes() == before
