"""One set of bounds: a value that passes validation can always be written (issue "books" §4).

Each case used to kill the replay at the end with ``decimal.InvalidOperation`` or a 20-decimal fee,
leaving no outputs (or only some of them)."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import polars as pl

from mmflow.flows.replay import replay
from mmflow.models import BookTick, Fill
from mmflow.wire import encode
from tests.builders import SOL, T0, S, settings, tick, trade

FILES = ("intents.parquet", "fills.parquet", "timeline.parquet", "dead_letters.parquet", "summary.json")


def quiet_market(n: int = 40, market: str = SOL, bid: str = "150.00", ask: str = "150.01") -> list:
    return [tick(T0 + i * S // 2, bid, ask, market=market) for i in range(n)]


def test_an_absurd_ask_is_a_dead_letter_not_a_dead_run(tmp_path: Path) -> None:
    absurd = BookTick(
        market=SOL, ts_exchange=T0 + 30 * S, ts_recv=T0 + 30 * S, bid_px=D("150"), bid_qty=D("1"),
        ask_px=D("99999999999.9"), ask_qty=D("1"),
    )  # fmt: skip
    huge_fill = Fill(
        market=SOL, ts=T0 + 31 * S, fill_id="x", intent_id=f"{SOL}-0-000000001", side="buy", px=D("150"),
        qty=D("99999999999"), fee=D("0"), liquidity="maker", source="maker",
    )  # fmt: skip
    raws = [encode(e) for e in quiet_market()] + [encode(absurd), encode(huge_fill)]
    result = replay(raws, settings(), tmp_path / "out", report=False)
    assert all((tmp_path / "out" / f).exists() for f in FILES)
    reasons = sorted(d.detail.split(":")[1].strip() for d in result.outputs.dead)
    assert reasons == ["book.ask_px", "fill.qty"]


def test_fees_and_pnl_at_a_tiny_tick_and_lot_are_written(tmp_path: Path) -> None:
    """A market with tick and lot 1e-8: a fee is price x size x rate with 20 and more places."""
    market = "test:TINY"
    s = settings(
        f"markets.{market}.tick_size=0.00000001",
        f"markets.{market}.lot_size=0.00000001",
        f"markets.{market}.min_qty=0.00000001",
        f"markets.{market}.maker_fee_rate=0.00013",
        f"markets.{market}.taker_fee_rate=0.00047",
        f"markets.{market}.strategy.quoting.base_size=0.00012345",
        "strategy.spreads.min_bps=1",
        "strategy.spreads.max_bps=2",
    )
    events: list = []
    for i in range(40):
        ts = T0 + i * S // 2
        events.append(tick(ts, "0.12345678", "0.12345679", market=market))
        events.append(
            trade(
                ts + 1,
                f"t{i}",
                "sell" if i % 2 else "buy",
                "0.12300001" if i % 2 else "0.12400001",
                "1",
                market=market,
            )
        )
    result = replay(events, s, tmp_path / "out", report=False)
    fills = pl.read_parquet(tmp_path / "out" / "fills.parquet")
    assert fills.height > 0 and result.outputs.fills
    for f in result.outputs.fills:
        assert -f.fee.as_tuple().exponent <= 18


def test_a_fill_price_with_18_decimals_is_written(tmp_path: Path) -> None:
    """Faithful mode books recorded fills: a price of 18 decimals makes a PnL term of 21."""
    book = quiet_market(12)
    fills = [
        Fill(
            market=SOL,
            ts=T0 + 7 * S,
            fill_id=f"f{k}",
            intent_id=f"{SOL}-old-000000001",
            side=side,
            px=D(px),
            qty=D("0.013"),
            fee=D("0.000000000000000001"),
            liquidity="maker",
            source="maker",
        )  # fmt: skip
        for k, (side, px) in enumerate(
            [("buy", "150.123456789012345678"), ("sell", "150.223456789012345671")]
        )
    ]
    result = replay([*book, *fills], settings(), tmp_path / "out", venue=None, report=False)
    summary = result.summary["markets"][SOL]
    realized = D(summary["realized_pnl_quote"])
    assert -realized.as_tuple().exponent <= 18 and realized > 0
    assert all((tmp_path / "out" / f).exists() for f in FILES)
