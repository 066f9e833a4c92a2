"""Shared fixtures: the real data files from ../shared/data and a real Kafka broker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import strategies as st

pytest_plugins = ["tests.integration.kafka_broker"]

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
BTC_QUOTES = DATA / "binance-futures_quotes_2024-08-08_BTCUSDT.csv.gz"
BTC_TRADES = DATA / "binance-futures_trades_2024-08-08_BTCUSDT.csv.gz"
SOL_QUOTES = DATA / "bybit_quotes_2026-08-09_SOLUSDT.csv.gz"
SOL_TRADES = DATA / "bybit_trades_2026-08-09_SOLUSDT.csv.gz"
BTC_FRAMES = DATA / "raw" / "binance-futures_BTCUSDT_2024-08-08.txt.gz"
ETH_FRAMES = DATA / "raw" / "binance_ETHUSDT_2024-08-09.txt.gz"
EXCHANGE_INFO = DATA / "exchange" / "binance-futures_rest_2021-07-22.txt.gz"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not BTC_QUOTES.exists():
        raise FileNotFoundError(
            f"real market data not found at {DATA} (expected ../shared/data beside the repo)"
        )
    return DATA


def json_values(
    text: int, key: int, width: int, leaves: int
) -> tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]:
    """(scalars, nested values) of arbitrary JSON for the bad-input property tests: strings up to
    ``text`` characters, object keys up to ``key``, lists and objects up to ``width`` items."""
    scalar = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**63), max_value=2**64 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=text),
    )
    value = st.recursive(
        scalar,
        lambda kids: (
            st.lists(kids, max_size=width) | st.dictionaries(st.text(max_size=key), kids, max_size=width)
        ),
        max_leaves=leaves,
    )
    return scalar, value
