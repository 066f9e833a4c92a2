"""What one market's stateful step holds: the maker, optionally the paper venue, and statistics.

No Bytewax here either: the dataflow's step, the plain-loop benchmark and the tests all drive
``MarketRuntime.process`` the same way, so they cannot disagree.

Outputs go to the typed lists of an ``Outputs`` (``mmflow.outputs``): intents, the paper venue's
fills and order updates, journal entries (a fill or control that arrived as input after the market's n-th market
event), dead letters (an event refused before it touched any state), timeline views and, at the
end, the summary.

The venue, when there is one, is any ``ExecutionVenue`` (mmflow/execution.py): the paper
venue in replays. Ordering inside one market event: the venue carries out what was due before
it and matches the event, the reports it delivers by then (fills, order updates) are applied,
then the maker decides on the event, then its intents go to the venue. Reports arriving as
input events (live, or a live journal replayed) are applied and decided on as they come, in
stream order.
"""

from __future__ import annotations

from typing import Any

from mmflow.config import Settings
from mmflow.execution import ExecutionVenue, Report
from mmflow.ids import REPLAY
from mmflow.markouts import MarkoutTracker
from mmflow.models import (
    BookTick,
    Control,
    DeadLetter,
    Depth,
    Fill,
    Incarnation,
    InputEvent,
    Intent,
    OrderUpdate,
    Position,
    Timer,
    Trade,
)
from mmflow.outputs import Journaled, Outputs
from mmflow.stats import MarketStats
from mmflow.strategy.dedup import RecentIds
from mmflow.strategy.market import MarketMaker
from mmflow.view import MarketView
from mmflow.wire import encode


class MarketRuntime:
    def __init__(
        self,
        market: str,
        settings: Settings,
        venue: ExecutionVenue | None = None,
        incarnation: str = REPLAY,
        order_reports: bool | None = None,
    ) -> None:
        """``venue``: the market's own execution venue (replays), or None when the execution side
        runs elsewhere. ``order_reports``: whether order updates will reach the maker (default:
        with a venue), so it can count what is out; without them it counts the position only."""
        spec = settings.spec(market)
        self.market = market
        # The market's effective strategy: the shared one with the market's own overrides.
        strategy = settings.strategy_for(market)
        track = venue is not None if order_reports is None else order_reports
        self.maker = MarketMaker(market, spec, strategy, incarnation, track_orders=track)
        window = strategy.safety.dedup_window
        self.venue = venue
        self.stats = MarketStats()
        self._timeline_us = max(1, int(settings.replay.timeline_interval_s * 1_000_000))
        self._next_timeline: int | None = None
        self._trade_ids = RecentIds(window)
        self._last_market_us: int | None = None
        # Mark-outs and PnL attribution (mmflow/markouts.py): fed mids and fills, read at the end.
        self.marks = MarkoutTracker(
            market, settings.replay.markout_horizons_s, settings.replay.attribution_horizon_s
        )

    def reject_reason(self, event: InputEvent) -> str | None:
        """Why market data must not touch this market's state, or None. Checked before any
        change; a fill is checked by the maker (``MarketMaker.book``)."""
        cls = type(event)
        if cls is BookTick or cls is Trade or cls is Depth:
            last = self._last_market_us
            if last is not None and event.ts_recv < last:  # type: ignore[union-attr]
                return f"out of order: ts_recv {event.ts_recv} < {last} already processed"  # type: ignore[union-attr]
            if cls is Trade and event.trade_id and event.trade_id in self._trade_ids:  # type: ignore[union-attr]
                return f"duplicate trade id {event.trade_id!r}"  # type: ignore[union-attr]
        return None

    def _refuse(self, event: InputEvent, reason: str, out: Outputs, origin: tuple[bytes, str] | None) -> None:
        raw, source = origin if origin is not None else (encode(event), "flow")
        out.dead.append(DeadLetter.of(source, reason, raw, self.market))

    # -- events ---------------------------------------------------------------------------------
    def process(self, event: InputEvent, out: Outputs, origin: tuple[bytes, str] | None = None) -> None:
        """Feed one event, appending every resulting output to ``out``.

        ``origin`` is the record's original bytes and source, kept for a refusal's dead letter;
        without it (files, synthetic data) the dead letter holds the event's canonical encoding.
        """
        reason = self.reject_reason(event)
        if reason is not None:
            self._refuse(event, reason, out, origin)
            return
        maker, venue, stats = self.maker, self.venue, self.stats
        cls = type(event)
        if cls is BookTick or cls is Trade:
            now = self._last_market_us = event.ts_recv
            stats.advance(now)
            last = maker.safety.last_data_us
            if venue is not None and last is not None and now - last > maker.safety.stale_after_us:
                # A gap in the data pulls the quotes first: the venue gets the cancel (stamped when
                # the data went stale) before it matches the event that ends the gap, as it would
                # have from the live timer; within the cancel latency they can still fill.
                stale = maker.check_stale(now)
                if stale:
                    self._emit(stale, out)
            if cls is BookTick:
                stats.books += 1
                if venue is not None:
                    reports = venue.on_book(event)  # type: ignore[arg-type]
                    if reports:
                        self._apply_reports(reports, out)
                mid = maker.mid
                intents = maker.on_book(event)  # type: ignore[arg-type]
                if maker.mid is not mid:  # mark-outs: the maker's mid changed
                    done = self.marks.on_mid(now, maker.mid)  # type: ignore[arg-type]
                    if done:
                        out.marks.extend(done)
            else:
                stats.trades += 1
                self._trade_ids.seen(event.trade_id)  # type: ignore[union-attr]
                if venue is not None:
                    reports = venue.on_trade(event)  # type: ignore[arg-type]
                    if reports:
                        self._apply_reports(reports, out)
                intents = maker.on_trade(event)  # type: ignore[arg-type]
        elif cls is Depth:
            # Depth is the venue's (its queue model); the maker quotes off the touch.
            self._last_market_us = event.ts_recv  # type: ignore[union-attr]
            if venue is not None:
                self._apply_reports(venue.on_depth(event), out)  # type: ignore[arg-type]
            return
        else:
            if cls is Fill:
                refused = maker.book(event)  # type: ignore[arg-type]
                if refused is not None:
                    self._refuse(event, refused, out, origin)
                    return
            # A fill may carry a later timestamp; the others act at the market's own clock.
            now = (
                max(event.ts, stats.last_us)  # type: ignore[union-attr]
                if cls is Fill or stats.first_us is None
                else stats.last_us
            )
            stats.advance(now)
            if cls is Fill:  # booked above
                self._count_fill(event, out)  # type: ignore[arg-type]
                intents = maker.decide(now)
            elif cls is OrderUpdate:
                intents = maker.on_order(event)  # type: ignore[arg-type]
            elif cls is Control:
                intents = maker.on_control(event)  # type: ignore[arg-type]
            elif cls is Position:
                intents = maker.on_position(event)  # type: ignore[arg-type]
            elif cls is Timer:
                intents = maker.check_stale(event.ts)  # type: ignore[union-attr]
            else:
                intents = self._restart(event)  # type: ignore[arg-type]
            # Where this input fell among the market's events: replay re-inserts it there.
            out.journal.append(Journaled(event, stats.books + stats.trades))  # type: ignore[arg-type]
        if intents:
            self._emit(intents, out)
        if self._next_timeline is None or now >= self._next_timeline:
            out.timeline.append(maker.view(now))
            self._next_timeline = (now // self._timeline_us + 1) * self._timeline_us

    def _restart(self, event: Incarnation) -> list[Intent]:
        if self.venue is not None:
            self.venue.incarnation = event.incarnation
        return self.maker.restart(event.incarnation, event.ts)

    def take_over(self, incarnation: str, ts: int, out: Outputs) -> None:
        """This process takes the market over (a live start or restart, recovered or not): a
        journalled ``Incarnation`` event, so a replay of the session restarts at the same place."""
        if self.maker.incarnation != incarnation:
            self.process(Incarnation(market=self.market, ts=ts, incarnation=incarnation), out)

    def check_stale(self, now: int, out: Outputs) -> None:
        """Fire the stale-data guard from a timer (live runs), as the next event would."""
        intents = self.maker.check_stale(now)
        if intents:
            self._emit(intents, out)

    def _apply_reports(self, reports: list[Report], out: Outputs) -> None:
        """The venue's reports, in its order: fills booked, order updates to the maker's count."""
        for report in reports:
            if type(report) is Fill:
                self.maker.book_fill(report)
                self._count_fill(report, out)
            else:
                self.maker.apply_order(report)  # type: ignore[arg-type]
                out.orders.append(report)  # type: ignore[arg-type]

    def _count_fill(self, fill: Fill, out: Outputs) -> None:
        self.stats.on_fill(fill, self.maker.inventory, self.maker.mid)
        self.marks.on_fill(fill, self.maker.mid)
        out.fills.append(fill)

    def _emit(self, intents: list[Intent], out: Outputs) -> None:
        for intent in intents:
            self.stats.on_intent(intent)
            if self.venue is not None:
                self.venue.submit(intent)
        out.intents.extend(intents)

    # -- views ----------------------------------------------------------------------------------
    def view(self) -> MarketView:
        return self.maker.view()

    def summary(self) -> dict[str, Any]:
        """The analysis' validation metrics and the final state, plus the thresholds the
        report draws (this market's effective settings, so a ``--set`` is drawn as it ran)."""
        v, s, cfg = self.maker.view(), self.stats, self.maker.cfg
        return {
            "quotes": s.books,
            "trades": s.trades,
            "maker_fills": s.maker_fills,
            "hedge_fills": s.hedge_fills,
            "realized_pnl_quote": str(v.realized_pnl),
            "fees_quote": str(s.fees),
            "final_inventory_base": str(v.inventory),
            "max_abs_inventory_base": str(s.max_abs_inventory),
            "inventory_time_share_below": s.time_shares(),
            "pnl_guard_engagements": v.pnl_guard_engagements,
            "trend_guard_engagements": v.trend_guard_engagements,
            "regime_switches": v.regime_switches,
            "hedge_volume_base": str(s.hedge_volume),
            "hedge_cost_quote": str(s.hedge_cost),
            "quote_intents": s.quote_intents,
            "hedge_intents": s.hedge_intents,
            "unrealized_pnl_quote": str(v.unrealized_pnl) if v.unrealized_pnl is not None else "0",
            "stale_guard_engagements": v.stale_guard_engagements,
            "post_only_rejects": v.post_only_rejects,
            "requotes": v.requotes,
            "loss_limit_halts": v.loss_limit_halts,
            "operator_halts": v.operator_halts,
            "halted_at_end": v.operator_halt or v.loss_halt,
            "open_lots": [[str(q), str(p)] for q, p in v.open_lots],
            # The analysis' "0.027 held for 15 s": the longest stretch with |inventory| above 0.02.
            "inventory_longest_above_s": s.longest_above_s(),
            "markouts": self.marks.aggregates(),
            "attribution": self.marks.attribution(v.realized_pnl + (v.unrealized_pnl or 0)),
            "thresholds": {
                "pnl_guard_trigger_quote": str(cfg.pnl_guard.trigger_quote),
                "regime_threshold_bps": cfg.regime.threshold_bps,
                "asymmetric_base": str(cfg.inventory.asymmetric_base),
                "soft_cap_base": str(cfg.inventory.soft_cap_base),
                "max_position_base": str(cfg.safety.max_position_base),
            },
        }

    def finish(self, out: Outputs) -> None:
        if self.stats.first_us is not None:
            out.timeline.append(self.maker.view(self.stats.last_us))
        out.marks.extend(self.marks.finish(self.stats.last_us))
        out.summaries.append({"market": self.market, **self.summary()})
