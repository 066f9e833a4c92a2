"""Shared fixtures: the real data files from ../shared/data and a real Kafka broker."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["tests.kafka_broker"]

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
BTC_QUOTES = DATA / "binance-futures_quotes_2024-08-08_BTCUSDT.csv.gz"
BTC_TRADES = DATA / "binance-futures_trades_2024-08-08_BTCUSDT.csv.gz"
SOL_QUOTES = DATA / "bybit_quotes_2026-08-09_SOLUSDT.csv.gz"
SOL_TRADES = DATA / "bybit_trades_2026-08-09_SOLUSDT.csv.gz"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not BTC_QUOTES.exists():
        raise FileNotFoundError(
            f"real market data not found at {DATA} (expected ../shared/data beside the repo)"
        )
    return DATA
