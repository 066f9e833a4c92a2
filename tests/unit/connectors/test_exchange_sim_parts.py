"""The exchange simulator's pure parts: signatures, rate-limit windows, faults, positions,
exchangeInfo from the specs, and the frames' lines."""

from __future__ import annotations

import gzip
from decimal import Decimal
from pathlib import Path

import pytest

from mmflow.config import load_settings
from mmflow.connectors.binance_frames import frame_lines
from mmflow.connectors.exchange_sim import auth, exchange_info
from mmflow.connectors.exchange_sim.errors import ApiError
from mmflow.connectors.exchange_sim.faults import Faults
from mmflow.connectors.exchange_sim.limits import RateLimiter
from mmflow.connectors.exchange_sim.records import Position
from mmflow.models import BookTick

D = Decimal

# Binance's own worked example (spot API docs, "SIGNED endpoint examples for POST /api/v3/order").
DOC_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
DOC_QUERY = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
DOC_SIGNATURE = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"


def test_signature_matches_binances_worked_example() -> None:
    assert auth.sign(DOC_SECRET, DOC_QUERY) == DOC_SIGNATURE
    auth.check_signature(DOC_SECRET, f"{DOC_QUERY}&signature={DOC_SIGNATURE}", "")


def test_signature_over_query_and_body_concatenated() -> None:
    query, body = (
        "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC",
        "quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559",
    )
    signature = auth.sign(DOC_SECRET, query + body)
    auth.check_signature(DOC_SECRET, query, f"{body}&signature={signature}")
    with pytest.raises(ApiError) as err:
        auth.check_signature(DOC_SECRET, query, f"{body}&signature={'0' * 64}")
    assert err.value.code == -1022


def test_recv_window() -> None:
    auth.check_timestamp({"timestamp": "10000"}, 14_000)
    for params, now in (({"timestamp": "10000"}, 15_001), ({"timestamp": "10000"}, 9_000)):
        with pytest.raises(ApiError) as err:
            auth.check_timestamp(params, now)
        assert err.value.code == -1021
    auth.check_timestamp({"timestamp": "10000", "recvWindow": "60000"}, 60_000)
    with pytest.raises(ApiError) as err:
        auth.check_timestamp({"timestamp": "10000", "recvWindow": "60001"}, 10_000)
    assert err.value.code == -1131


def test_secret_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIM_TEST_SECRET", "abc")
    assert auth.load_secret("env:SIM_TEST_SECRET") == "abc"
    (tmp_path / "s").write_text("from-file\n")
    assert auth.load_secret(f"file:{tmp_path / 's'}") == "from-file"
    with pytest.raises(auth.SecretError) as err:
        auth.load_secret("plain-secret-value")
    assert "plain-secret-value" not in str(err.value)


def test_weight_window_answers_429_with_retry_after_and_resets() -> None:
    limiter = RateLimiter.from_exchange_info(
        [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 10},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 1},
        ]
    )
    assert limiter.charge(10, 0, 60_000) == {"X-MBX-USED-WEIGHT-1M": "10"}
    with pytest.raises(ApiError) as err:
        limiter.charge(1, 0, 90_000)
    assert (err.value.status, err.value.code, err.value.headers["Retry-After"]) == (429, -1003, "30")
    assert limiter.charge(1, 1, 120_000) == {"X-MBX-USED-WEIGHT-1M": "1", "X-MBX-ORDER-COUNT-10S": "1"}
    with pytest.raises(ApiError) as err:
        limiter.charge(1, 1, 121_000)
    assert err.value.code == -1015


def test_faults_expire_and_refuse_unknown_switches() -> None:
    faults = Faults()
    faults.fail_for(503, 60)
    failure = faults.failure()
    assert failure is not None and (failure.status, failure.code) == (503, -1001)
    faults.fail_for(503, 0)
    assert faults.failure() is None
    with pytest.raises(ValueError):
        faults.update({"drop": 1})
    with pytest.raises(ValueError):
        faults.fail_for(404, 1)


def test_position_average_entry_and_realized_pnl() -> None:
    pos = Position()
    assert pos.apply(D("1"), D("100")) == 0
    assert pos.apply(D("1"), D("110")) == 0 and pos.entry == D("105")
    assert pos.apply(D("-0.5"), D("115")) == D("5")
    assert pos.apply(D("-2"), D("100")) == D("-7.5") and (pos.amount, pos.entry) == (D("-0.5"), D("100"))


def test_exchange_info_from_specs_carries_the_specs_filters() -> None:
    info = exchange_info.from_specs(load_settings(), "binance-futures", spot=False)
    btc = next(s for s in info["symbols"] if s["symbol"] == "BTCUSDT")
    rules = exchange_info.rules(btc)
    assert (rules.tick, rules.step, rules.min_notional, rules.base) == (D("0.1"), D("0.001"), D("5"), "BTC")
    assert info["rateLimits"] == exchange_info.DEFAULT_RATE_LIMITS[False]
    spot = exchange_info.from_specs(load_settings(), "binance", spot=True)
    assert {s["symbol"] for s in spot["symbols"]} == {"BTCUSDT", "ETHUSDT", "SOLUSDT"}


def test_recorded_exchange_info_must_be_the_venues(tmp_path: Path) -> None:
    path = tmp_path / "rest.txt.gz"
    path.write_bytes(
        gzip.compress(b'https://x/fapi/v1/exchangeInfo -> 1.0: {"futuresType":"U_MARGINED","symbols":[]}\n')
    )
    assert exchange_info.read_recorded(path, spot=False)["futuresType"] == "U_MARGINED"
    with pytest.raises(exchange_info.ExchangeInfoError):
        exchange_info.read_recorded(path, spot=True)


def test_frame_lines_pairs_each_body_with_its_events(tmp_path: Path) -> None:
    path = tmp_path / "binance-futures_BTCUSDT_x.txt"
    frame = b'{"stream":"btcusdt@bookTicker","data":{"e":"bookTicker","u":1,"s":"BTCUSDT","b":"1.0","B":"2","a":"1.1","A":"3","T":5,"E":5}}'
    path.write_bytes(b"2000000 " + frame + b"\n\n3000000 not json\n")
    lines = list(frame_lines(path))
    assert [(recv, body) for recv, body, _ in lines] == [(2000, frame), (3000, b"not json")]
    [tick] = lines[0][2]
    assert isinstance(tick, BookTick) and tick.ask_px == D("1.1")
    assert lines[1][2] == []
