"""What one market's stateful step holds: the maker, optionally the paper venue, and statistics.

No Bytewax here either: the dataflow's step, the plain-loop benchmark and the tests all drive
``MarketRuntime.process`` the same way, so they cannot disagree.

Outputs are ``(kind, payload)`` pairs: ``("intent", Intent)``, ``("fill", Fill)``,
``("journal", (event, n))`` for a fill or control that arrived as input after the market's n-th
market event, ``("dead", DeadLetter)`` for an event refused before it touched any state,
``("timeline", dict)`` and, at the end, ``("summary", dict)``.

Ordering inside one event (paper mode): the venue matches the event against the orders live
at that instant, its fills are booked, then the maker decides on the event, then its intents go
to the venue. Fills arriving as input events (live or faithful mode) are booked and decided on
as they come, in stream order.
"""

from __future__ import annotations

from typing import Any

from mmflow.connectors.paper_venue import PaperVenue

from mmflow.config import Settings
from mmflow.models import BookTick, Control, DeadLetter, Fill, InputEvent, Intent, Trade
from mmflow.stats import MarketStats
from mmflow.strategy.dedup import RecentIds
from mmflow.strategy.market import MarketMaker
from mmflow.wire import encode

Output = tuple[str, Any]


class MarketRuntime:
    def __init__(self, market: str, settings: Settings, paper: bool = True) -> None:
        spec = settings.markets.get(market)
        if spec is None:
            raise KeyError(f"market {market!r} has no instrument spec in settings.markets")
        self.market = market
        self.maker = MarketMaker(market, spec, settings.strategy)
        window = settings.strategy.safety.dedup_window
        self.venue = PaperVenue(market, spec, settings.venue, window) if paper else None
        self.stats = MarketStats()
        self._timeline_us = max(1, int(settings.replay.timeline_interval_s * 1_000_000))
        self._next_timeline: int | None = None
        self._trade_ids = RecentIds(settings.strategy.safety.dedup_window)
        self._stale_us = int(settings.strategy.safety.stale_after_s * 1_000_000)
        self._last_market_us: int | None = None

    def reject_reason(self, event: InputEvent) -> str | None:
        """Why ``event`` must not touch this market's state, or None. Checked before any change."""
        cls = type(event)
        if cls is BookTick or cls is Trade:
            last = self._last_market_us
            if last is not None and event.ts_recv < last:  # type: ignore[union-attr]
                return f"out of order: ts_recv {event.ts_recv} < {last} already processed"  # type: ignore[union-attr]
            if cls is Trade and event.trade_id and event.trade_id in self._trade_ids:  # type: ignore[union-attr]
                return f"duplicate trade id {event.trade_id!r}"  # type: ignore[union-attr]
        elif cls is Fill and event.fill_id in self.maker.dedup:  # type: ignore[union-attr]
            return f"duplicate fill id {event.fill_id!r}"
        return None

    # -- events ---------------------------------------------------------------------------------
    def process(self, event: InputEvent, out: list[Output], origin: tuple[bytes, str] | None = None) -> None:
        """Feed one event, appending every resulting output to ``out``.

        ``origin`` is the record's original bytes and source, kept for a refusal's dead letter;
        without it (files, synthetic data) the dead letter holds the event's canonical encoding.
        """
        reason = self.reject_reason(event)
        if reason is not None:
            raw, source = origin if origin is not None else (encode(event), "flow")
            out.append(("dead", DeadLetter(source=source, reason=reason, raw=raw, market=self.market)))
            return
        maker, venue, stats = self.maker, self.venue, self.stats
        cls = type(event)
        if cls is BookTick or cls is Trade:
            now = self._last_market_us = event.ts_recv
            stats.advance(now)
            last = maker.safety.last_data_us
            if venue is not None and last is not None and now - last > self._stale_us:
                # A gap in the data pulls the quotes first: the venue gets the cancel (stamped when
                # the data went stale) before it matches the event that ends the gap, as it would
                # have from the live timer; within the cancel latency they can still fill.
                stale = maker.check_stale(now)
                if stale:
                    self._emit(stale, out)
            if cls is BookTick:
                stats.books += 1
                if venue is not None:
                    self._book_fills(venue.on_book(event), out)
                intents = maker.on_book(event)
            else:
                stats.trades += 1
                self._trade_ids.seen(event.trade_id)
                if venue is not None:
                    self._book_fills(venue.on_trade(event), out)
                intents = maker.on_trade(event)
        else:
            # A control acts at the market's clock; a fill may carry a later timestamp.
            now = (
                stats.last_us
                if cls is Control and stats.first_us is not None
                else max(event.ts, stats.last_us)
            )
            stats.advance(now)
            intents = []
            if cls is Control:
                intents = maker.on_control(event)  # type: ignore[arg-type]
            elif maker.book_fill(event):  # type: ignore[arg-type]
                self._count_fill(event, out)
                intents = maker.decide(now)
            # Where this input fell among the market's events: replay re-inserts it there.
            out.append(("journal", (event, stats.books + stats.trades)))
        if intents:
            self._emit(intents, out)
        if self._next_timeline is None or now >= self._next_timeline:
            out.append(("timeline", self.timeline_row(now)))
            self._next_timeline = (now // self._timeline_us + 1) * self._timeline_us

    def check_stale(self, now: int, out: list[Output]) -> None:
        """Fire the stale-data guard from a timer (live runs), as the next event would."""
        intents = self.maker.check_stale(now)
        if intents:
            self._emit(intents, out)

    def _book_fills(self, fills: list[Fill], out: list[Output]) -> None:
        for fill in fills:
            self.maker.book_fill(fill)
            self._count_fill(fill, out)

    def _count_fill(self, fill: Fill, out: list[Output]) -> None:
        self.stats.on_fill(fill, self.maker.inventory, self.maker.mid)
        out.append(("fill", fill))

    def _emit(self, intents: list[Intent], out: list[Output]) -> None:
        for intent in intents:
            self.stats.on_intent(intent)
            if self.venue is not None:
                self.venue.submit(intent)
            out.append(("intent", intent))

    # -- views ----------------------------------------------------------------------------------
    def timeline_row(self, now: int) -> dict[str, Any]:
        m = self.maker
        q = m.last_quote
        return {
            "ts": now,
            "market": self.market,
            "mid": m.mid,
            "best_bid": m.best_bid,
            "best_ask": m.best_ask,
            "bid_px": q.bid_px if q else None,
            "ask_px": q.ask_px if q else None,
            "volatility_bps": round(m.vol.value_bps, 9),
            "regime": m.regime.state,
            "trend_guard": int(m.trend.active(now)),
            "pnl_guard": int(m.pnl_guard.active),
            "inventory": m.inventory,
            "realized_pnl": m.realized,
            "spread_bps": round(m.quoted_spread_bps, 9),
            "stale_guard": int(m.safety.stale),
            "operator_halt": int(m.safety.operator_halted),
            "loss_halt": int(m.safety.loss_halted),
        }

    def summary(self) -> dict[str, Any]:
        m, s = self.maker, self.stats
        return {
            "quotes": s.books,
            "trades": s.trades,
            "maker_fills": s.maker_fills,
            "hedge_fills": s.hedge_fills,
            "realized_pnl_quote": str(m.realized),
            "fees_quote": str(s.fees),
            "final_inventory_base": str(m.inventory),
            "max_abs_inventory_base": str(s.max_abs_inventory),
            "inventory_time_share_below": s.time_shares(),
            "pnl_guard_engagements": m.pnl_guard.engagements,
            "trend_guard_engagements": m.trend.engagements,
            "regime_switches": m.regime.switches,
            "hedge_volume_base": str(s.hedge_volume),
            "hedge_cost_quote": str(s.hedge_cost),
            "quote_intents": s.quote_intents,
            "hedge_intents": s.hedge_intents,
            "unrealized_pnl_quote": str(m.fifo.unrealized(m.mid)) if m.mid is not None else "0",
            "stale_guard_engagements": m.safety.stale_engagements,
            "loss_limit_halts": m.safety.loss_halts,
            "operator_halts": m.safety.operator_halts,
            "halted_at_end": m.safety.operator_halted or m.safety.loss_halted,
            "open_lots": [[str(q), str(p)] for q, p in m.fifo.lots],
        }

    def finish(self, out: list[Output]) -> None:
        if self.stats.first_us is not None:
            out.append(("timeline", self.timeline_row(self.stats.last_us)))
        out.append(("summary", {"market": self.market, **self.summary()}))
