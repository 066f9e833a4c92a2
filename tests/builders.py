"""Shared test builders: market ids, clocks, events, settings and warmed-up makers.

Unit tests build their inputs here instead of each file redefining its own tick and fill.
``SOL`` is a market whose spec is the analysis' (tick 0.01, lot 0.001, 2/5 bps fees).
"""

from __future__ import annotations

from decimal import Decimal as D
from typing import TYPE_CHECKING

from mmflow.config import Settings, load_settings
from mmflow.models import BookTick, Control, Fill, QuoteIntent, Trade
from mmflow.strategy.market import MarketMaker

if TYPE_CHECKING:
    from mmflow.flows.runtime import MarketRuntime

#: Instrument ids (venue:symbol) of the shipped specs the tests use.
SOL = "binance-futures:SOLUSDT"
BTC = "binance-futures:BTCUSDT"
BYBIT_SOL = "bybit:SOLUSDT"
SYNTH = "synthetic:SYNTH-SOL"

S = 1_000_000  # one second in microseconds
T0 = 1_700_000_000 * S


def settings(*overrides: str, preset: str | None = None) -> Settings:
    return load_settings(preset, overrides=list(overrides))


def maker(*overrides: str, preset: str | None = "phase2", market: str = SOL) -> MarketMaker:
    """A fresh maker with the market's spec and effective strategy."""
    s = settings(*overrides, preset=preset)
    return MarketMaker(market, s.spec(market), s.strategy_for(market))


def tick(
    ts: int,
    bid: str = "150.00",
    ask: str = "150.01",
    ts_exchange: int | None = None,
    market: str = SOL,
    qty: str = "10",
    bid_qty: str | None = None,
    ask_qty: str | None = None,
) -> BookTick:
    return BookTick(
        market=market,
        ts_exchange=ts if ts_exchange is None else ts_exchange,
        ts_recv=ts,
        bid_px=D(bid),
        bid_qty=D(bid_qty or qty),
        ask_px=D(ask),
        ask_qty=D(ask_qty or qty),
    )


def trade(
    ts: int, trade_id: str, side: str = "sell", px: str = "150.00", qty: str = "1", market: str = SOL
) -> Trade:
    return Trade(
        market=market, ts_exchange=ts, ts_recv=ts, trade_id=trade_id, side=side, px=D(px), qty=D(qty)
    )


def fill(
    ts: int,
    fill_id: str,
    side: str,
    px: str,
    qty: str,
    fee: str = "0",
    source: str = "maker",
    intent_id: str | None = None,
    market: str = SOL,
) -> Fill:
    return Fill(
        market=market,
        ts=ts,
        fill_id=fill_id,
        intent_id=f"{market}-000000001" if intent_id is None else intent_id,
        side=side,
        px=D(px),
        qty=D(qty),
        fee=D(fee),
        liquidity="maker" if source == "maker" else "taker",
        source=source,
    )


def quote(
    ts: int,
    intent_id: str,
    bid: str | None = None,
    bid_qty: str | None = None,
    ask: str | None = None,
    ask_qty: str | None = None,
    market: str = SOL,
    best_bid: str = "77.00",
    best_ask: str = "77.10",
) -> QuoteIntent:
    """A quote intent as the maker sends it; a side without a price is not quoted."""
    return QuoteIntent(
        market=market,
        ts=ts,
        intent_id=intent_id,
        bid_px=D(bid) if bid else None,
        bid_qty=D(bid_qty) if bid_qty else None,
        ask_px=D(ask) if ask else None,
        ask_qty=D(ask_qty) if ask_qty else None,
        best_bid=D(best_bid),
        best_ask=D(best_ask),
        inventory=D(0),
    )


def control(
    ts: int, action: str, command_id: str = "c1", market: str = SOL, clear_loss_limit: bool = False
) -> Control:
    return Control(
        market=market,
        ts=ts,
        command_id=command_id,
        action=action,
        reason="test",
        clear_loss_limit=clear_loss_limit,
    )


def warm(mm: MarketMaker) -> list:
    """Six 1-s spaced ticks (5 returns, the default warm-up); return the intents of the last one."""
    for i in range(5):
        assert mm.on_book(tick(T0 + i * S, market=mm.market)) == []
    return mm.on_book(tick(T0 + 5 * S, market=mm.market))


def paper_runtime(market: str, cfg: Settings) -> MarketRuntime:
    """A market's runtime with its paper venue, as a replay builds it."""
    from mmflow.connectors.paper_venue import paper_venues
    from mmflow.flows.runtime import MarketRuntime

    return MarketRuntime(market, cfg, paper_venues(cfg)(market))
