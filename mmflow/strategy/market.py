"""One market's maker: every rule of the analysis composed into a single decision per event.

``MarketMaker`` owns all per-market state (book, volatility, trend, regime, FIFO inventory, guards,
hedger, fill de-duplication) and turns events into intents. It is a plain object: a dataflow
holds one per market key, a benchmark drives it in a loop, a unit test calls it by hand.

The decision order, on each book change (and after fills, and when a timer expires):
1. guards: PnL guard from FIFO realized PnL, trend cooldown, volatility regime;
2. hedger: an IOC when |inventory| is past the trigger;
3. quote: spread = volatility spread + regime + trend + PnL guard + inventory bonus; size =
   base x volatility x PnL guard x inventory reduction (x soft cap on the adding side); sides
   allowed by asymmetric quoting and the trend bid pause; priced off the mid and post-only;
   sent only when it differs materially from the quote already resting.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TypeVar

from mmflow.config import InstrumentSpec, StrategyConfig
from mmflow.ids import REPLAY, HighWater, make_id, split_id
from mmflow.models import (
    POST_ONLY_REJECT,
    BookTick,
    CancelAllIntent,
    Control,
    Fill,
    HedgeIntent,
    Intent,
    OrderUpdate,
    Position,
    QuoteIntent,
    Trade,
)
from mmflow.strategy import inventory as inv_rules
from mmflow.strategy.fifo import FifoBook
from mmflow.strategy.hedger import Hedger
from mmflow.strategy.orders import OrderTracker
from mmflow.strategy.pnl_guard import PnlGuard
from mmflow.strategy.quoting import floor_to, moved, price_quotes
from mmflow.strategy.reconcile import Reconciler
from mmflow.strategy.regime import RegimeSwitch
from mmflow.strategy.safety import SafetyGuards
from mmflow.strategy.spreads import vol_spread
from mmflow.strategy.trend import TrendFilter
from mmflow.strategy.volatility import MidSampler, RealizedVolatility
from mmflow.view import MarketView

_TWO = Decimal(2)
_I = TypeVar("_I", QuoteIntent, HedgeIntent, CancelAllIntent)


class MarketMaker:
    def __init__(
        self,
        market: str,
        spec: InstrumentSpec,
        cfg: StrategyConfig,
        incarnation: str = REPLAY,
        track_orders: bool = False,
    ) -> None:
        self.market = market
        self.incarnation = incarnation
        self._stream = f"{market}-{incarnation}"
        self.spec = spec
        self.cfg = cfg
        self.fifo = FifoBook()
        self.pnl_guard = PnlGuard(cfg.pnl_guard)
        self.sampler = MidSampler(cfg.volatility.sample_interval_s)
        self.vol = RealizedVolatility(cfg.volatility, cfg.volatility.min_returns)
        self.regime = RegimeSwitch(cfg.regime)
        self.trend = TrendFilter(cfg.trend)
        self.hedger = Hedger(cfg.hedger, spec)
        self.fill_ids = HighWater(window=cfg.safety.dedup_window)
        self.fills_received = 0  # distinct fills received, booked or refused (reconciliation)
        self.safety = SafetyGuards(cfg.safety)
        self.reconciler = Reconciler(
            cfg.safety.reconcile_enabled, cfg.safety.reconcile_grace_s, spec.lot_size
        )
        self.best_bid: Decimal | None = None
        self.best_ask: Decimal | None = None
        self.mid: Decimal | None = None
        self.now_us = 0
        self.seq = 0
        self.last_quote: QuoteIntent | None = None
        self.pnl_active = False
        self.trend_active = False
        self.quoted_spread_bps = 0.0
        #: The orders out, when the execution side reports their life (a paper venue, a venue
        #: service's order topic); without reports (recorded fills only) only the position counts.
        self.orders = OrderTracker() if track_orders else None
        self.post_only_rejects = 0
        self.requotes = 0
        self.position_limited = False
        self._requote = False
        self._dirty = True
        self._wake_us: int | None = None
        q = cfg.quoting
        self._price_tol = Decimal(repr(q.refresh_tolerance_bps)) / 10_000
        self._size_tol = Decimal(repr(q.refresh_size_tolerance))

    # -- state read by metrics, the timeline and the summary -------------------------------------
    @property
    def inventory(self) -> Decimal:
        return self.fifo.position

    @property
    def realized(self) -> Decimal:
        return self.fifo.realized

    def view(self, now: int | None = None) -> MarketView:
        """A read-only snapshot of this market's state at ``now`` (default: its own clock)."""
        now = self.now_us if now is None else now
        quote, safety, mid, position = self.last_quote, self.safety, self.mid, self.fifo.position
        bid_ok, ask_ok = safety.position_sides(position)
        return MarketView(
            ts=now,
            market=self.market,
            mid=mid,
            best_bid=self.best_bid,
            best_ask=self.best_ask,
            bid_px=quote.bid_px if quote else None,
            ask_px=quote.ask_px if quote else None,
            volatility_bps=self.vol.value_bps,
            regime=self.regime.state,
            trend_guard=self.trend.active(now),
            pnl_guard=self.pnl_guard.active,
            inventory=position,
            realized_pnl=self.fifo.realized,
            unrealized_pnl=self.fifo.unrealized(mid) if mid is not None else None,
            spread_bps=self.quoted_spread_bps,
            stale_guard=safety.stale,
            operator_halt=safety.operator_halted,
            loss_halt=safety.loss_halted,
            position_limit=self.position_limited or not (bid_ok and ask_ok),
            reconcile_halt=safety.reconcile_halted,
            position_mismatch=self.reconciler.difference,
            pnl_guard_engagements=self.pnl_guard.engagements,
            trend_guard_engagements=self.trend.engagements,
            regime_switches=self.regime.switches,
            stale_guard_engagements=safety.stale_engagements,
            loss_limit_halts=safety.loss_halts,
            operator_halts=safety.operator_halts,
            reconcile_halts=safety.reconcile_halts,
            open_lots=tuple((q, p) for q, p in self.fifo.lots),
            open_orders=self.orders.open_quotes() if self.orders is not None else 0,
            hedge_in_flight=self.orders.hedging() if self.orders is not None else Decimal(0),
            post_only_rejects=self.post_only_rejects,
            requotes=self.requotes,
        )

    # -- events ---------------------------------------------------------------------------------
    def on_book(self, tick: BookTick) -> list[Intent]:
        now = tick.ts_recv
        out = self._arrival(now, tick.ts_exchange)
        bid, ask = tick.bid_px, tick.ask_px
        if bid != self.best_bid or ask != self.best_ask:
            self.best_bid, self.best_ask = bid, ask
            self.mid = (bid + ask) / _TWO
            self._dirty = True
        self._clock(now)
        if not self._dirty and (self._wake_us is None or now < self._wake_us):
            return out
        return out + self._decide(now)

    def on_trade(self, trade: Trade) -> list[Intent]:
        """Public trades move the clock only; the paper venue is what matches them."""
        out = self._arrival(trade.ts_recv, trade.ts_exchange)
        self._clock(trade.ts_recv)
        if self.mid is None or (not self._dirty and (self._wake_us is None or self.now_us < self._wake_us)):
            return out
        return out + self._decide(self.now_us)

    def check_stale(self, now: int) -> list[Intent]:
        """Cancel everything once market data is older than the limit (a timer or the next event
        calls this); the cancel is stamped at the instant the data went stale."""
        became = self.safety.stale_since(now)
        return [self._cancel_all(became, "stale_data")] if became is not None else []

    def on_control(self, cmd: Control) -> list[Intent]:
        """The operator's kill switch: halt cancels all and stops; resume is explicit.

        It acts at the market's own clock: a command's wall-clock stamp must not move the time of
        a market whose data runs behind (or of a replay of old data).
        """
        now = self.now_us or cmd.ts
        if cmd.action == "halt":
            return [self._cancel_all(now, "operator_halt")] if self.safety.halt() else []
        if self.safety.resume(cmd.clear_loss_limit):
            self.reconciler.reset()
            self._dirty = True
            return self.decide(now)
        return []

    def restart(self, incarnation: str, ts: int) -> list[Intent]:
        """A new process took this market over: its ids carry the new incarnation, and whatever
        an earlier one left resting is cancelled before anything else is sent."""
        self.incarnation = incarnation
        self._stream = f"{self.market}-{incarnation}"
        self.now_us = max(self.now_us, ts)
        return [self._cancel_all(self.now_us, "restart")]

    def on_position(self, pos: Position) -> list[Intent]:
        """The venue's own count of the position: a mismatch that outlives the in-flight window
        halts the market (cancel all) until an operator resumes it."""
        if not self.reconciler.report(
            pos.position, pos.fills, self.fifo.position, self.fills_received, pos.ts
        ):
            return []
        if not self.safety.reconcile_halt():
            return []
        return [
            self._cancel_all(
                self.now_us or pos.ts,
                "reconcile_mismatch",
                f"venue={pos.position}",
                f"books={self.fifo.position}",
            )
        ]

    def apply_order(self, update: OrderUpdate) -> None:
        """An order's step as the venue reports it. A post-only order rejected for crossing is
        no error: the book moved while it travelled, so the quote is priced again."""
        if self.orders is None or update.market != self.market:
            return
        self.orders.update(update)
        if update.status == "rejected":
            if update.reason == POST_ONLY_REJECT:
                self.post_only_rejects += 1
                self._requote = True
            self.last_quote = None
            self._dirty = True
        elif update.status in ("cancelled", "expired") and (self.position_limited or update.kind == "hedge"):
            # Room came back under the hard limit, or a hedge ended short: worth deciding again.
            self._dirty = True

    def on_order(self, update: OrderUpdate) -> list[Intent]:
        """An order update that arrived on its own (live): apply it and decide right away."""
        self.apply_order(update)
        return self.decide(max(self.now_us, update.ts)) if self._dirty else []

    def fill_refusal(self, fill: Fill) -> str | None:
        """Why ``fill`` must not be booked, or None: a duplicate id, a size no order of ours can
        have, or an intent this market never sent. The one place a fill is checked."""
        if fill.fill_id in self.fill_ids:
            return f"duplicate fill id {fill.fill_id!r}"
        limit = self.cfg.safety.max_position_base
        if self.cfg.safety.position_limit_enabled and fill.qty > limit:
            return f"fill of {fill.qty} is larger than the hard position limit {limit}"
        parts = split_id(fill.intent_id)
        stream = parts[0] if parts is not None else ""
        if parts is None or not (stream == self.market or stream.startswith(self.market + "-")):
            return f"fill for an intent this market never sent: {fill.intent_id!r}"
        if stream == self._stream and parts[1] > self.seq:
            return f"fill for intent {fill.intent_id!r}, not sent yet (last sent: {self.seq})"
        return None

    def book(self, fill: Fill) -> str | None:
        """Account for a fill once; return why it was refused, or None when booked. A fill refused
        for anything but being a duplicate still counts as received (reconciliation)."""
        refused = self.fill_refusal(fill)
        if refused is not None:
            if fill.fill_id not in self.fill_ids:
                self.fill_ids.seen(fill.fill_id)
                self.fills_received += 1
            return refused
        self.fill_ids.seen(fill.fill_id)
        self.fills_received += 1
        self.fifo.apply(fill.side, fill.px, fill.qty, fill.fee)
        if self.orders is not None:
            self.orders.filled(fill)
        # The venue consumed (part of) a resting order: the next decision must re-send the quote.
        self.last_quote = None
        self._dirty = True
        return None

    def book_fill(self, fill: Fill) -> bool:
        """``book``, as True when booked."""
        return self.book(fill) is None

    def on_fill(self, fill: Fill) -> list[Intent]:
        """Book a fill that arrived on its own (live or recorded) and decide again right away."""
        if not self.book_fill(fill):
            return []
        return self.decide(max(self.now_us, fill.ts))

    def decide(self, now: int) -> list[Intent]:
        """Decide at ``now`` whatever the cached state says (after a fill, a control command)."""
        if now > self.now_us:
            self.now_us = now
        return self._decide(self.now_us) if self.mid is not None else []

    # -- internals ------------------------------------------------------------------------------
    def _arrival(self, now: int, ts_exchange: int) -> list[Intent]:
        safety = self.safety
        last, limit = safety.last_data_us, safety.stale_after_us
        if last is not None and not safety.stale and now - last <= limit and now - ts_exchange <= limit:
            # SafetyGuards.fresh, inlined: the common case (fresh data, nothing to latch or lift)
            # on the hot path, where a call per event costs a tenth of the budget.
            safety.last_data_us = now
            return []
        out = self.check_stale(now)
        change = self.safety.data_arrived(now, ts_exchange)
        if change is False:
            out.append(self._cancel_all(now, "stale_data"))
        elif change is True:
            self._dirty = True
        return out

    def _cancel_all(self, ts: int, *reasons: str) -> CancelAllIntent:
        self.last_quote = None
        self._dirty = True
        return self._sent(
            CancelAllIntent(
                market=self.market,
                ts=ts,
                intent_id=self._next_id(),
                best_bid=self.best_bid,
                best_ask=self.best_ask,
                inventory=self.fifo.position,
                reasons=reasons,
            )
        )

    def _sent(self, intent: _I) -> _I:
        """Every intent leaves through here: the order tracker counts what could now fill."""
        if self.orders is not None:
            self.orders.sent(intent)
        return intent

    def _clock(self, now: int) -> None:
        if now > self.now_us:
            self.now_us = now
        if self.mid is not None and self.sampler.due(now):
            self._sample(now)

    def _sample(self, now: int) -> None:
        fmid = float(self.mid)  # type: ignore[arg-type]
        vol = self.vol.add_sample(fmid)
        self.trend.add_sample(now, fmid)
        self.regime.update(vol)
        self._dirty = True

    def _next_id(self) -> str:
        self.seq += 1
        return make_id(self._stream, self.seq)

    def _decide(self, now: int) -> list[Intent]:
        self._dirty = False
        self._wake_us = None
        bid, ask, mid = self.best_bid, self.best_ask, self.mid
        if bid is None or ask is None or mid is None or not self.vol.warm or self.safety.blocked:
            return []
        cfg = self.cfg
        inventory = self.fifo.position
        if self.safety.check_loss(self.fifo.realized + self.fifo.unrealized(mid)):
            return [self._cancel_all(now, "loss_limit")]
        self.pnl_active = self.pnl_guard.update(self.fifo.realized, now)
        self.trend_active = self.trend.active(now)
        out: list[Intent] = []

        # A hedge in flight is a hedge done: the hedger plans on the position it will leave.
        hedging = self.orders.hedging() if self.orders is not None else Decimal(0)
        plan = self.hedger.plan(inventory + hedging, bid, ask, now)
        if plan is not None:
            out.append(
                self._sent(
                    HedgeIntent(
                        market=self.market,
                        ts=now,
                        intent_id=self._next_id(),
                        side=plan.side,  # type: ignore[arg-type]
                        qty=plan.qty,
                        limit_px=plan.limit_px,
                        best_bid=bid,
                        best_ask=ask,
                        inventory=inventory,
                        reasons=(f"inventory>{cfg.hedger.trigger_base}",),
                    )
                )
            )
        quote = self._quote(now, inventory, bid, ask, mid)
        if quote is not None:
            out.append(quote)
        self._schedule_wake(now, inventory)
        return out

    def _quote(
        self, now: int, inventory: Decimal, bid: Decimal, ask: Decimal, mid: Decimal
    ) -> QuoteIntent | None:
        cfg = self.cfg
        inv_cfg = cfg.inventory
        reasons: list[str] = []
        spread, size_mult = vol_spread(cfg.spreads, self.vol.value_bps)
        if self.regime.state == 0 and cfg.regime.enabled:
            spread += self.regime.widen_bps()
            reasons.append("regime:defensive")
        if self.trend_active:
            spread += cfg.trend.widen_bps
            reasons.append("trend_guard")
        if self.pnl_active:
            spread += cfg.pnl_guard.widen_bps
            size_mult *= cfg.pnl_guard.size_mult
            reasons.append("pnl_guard")
        bonus = inv_rules.spread_bonus_bps(inv_cfg, inventory)
        if bonus:
            spread += bonus
            reasons.append(f"inventory_spread+{bonus:g}bps")
        reduction = inv_rules.size_reduction(inv_cfg, inventory)
        if reduction != 1.0:
            size_mult *= reduction
            reasons.append(f"inventory_size_x{reduction:g}")
        allow_bid, allow_ask = inv_rules.quotable_sides(inv_cfg, inventory)
        if not (allow_bid and allow_ask):
            reasons.append("asymmetric:" + ("ask_only" if allow_ask else "bid_only"))
        if self.trend_active and cfg.trend.pause_bids and allow_bid:
            allow_bid = False
            reasons.append("trend_bid_pause")
        bid_cap, ask_cap = inv_rules.soft_cap(inv_cfg, inventory)
        if bid_cap != 1.0 or ask_cap != 1.0:
            reasons.append("soft_cap")

        bid_px, ask_px, clamped = price_quotes(mid, bid, ask, spread, self.spec.tick_size)
        if clamped:
            reasons.append("post_only_clamp")
        bid_qty = self._size(size_mult * bid_cap) if allow_bid else None
        ask_qty = self._size(size_mult * ask_cap) if allow_ask else None
        bid_qty, ask_qty, limited = self._within_limit(inventory, bid_qty, ask_qty)
        self.position_limited = limited
        if limited:
            reasons.append("position_limit")
        self.quoted_spread_bps = spread
        new_bid = bid_px if bid_qty is not None else None
        new_ask = ask_px if ask_qty is not None else None
        if not self._material(new_bid, bid_qty, new_ask, ask_qty):
            return None
        quote = QuoteIntent(
            market=self.market,
            ts=now,
            intent_id=self._next_id(),
            bid_px=new_bid,
            bid_qty=bid_qty,
            ask_px=new_ask,
            ask_qty=ask_qty,
            best_bid=bid,
            best_ask=ask,
            inventory=inventory,
            reasons=tuple(reasons),
        )
        if self._requote:
            self._requote = False
            self.requotes += 1
        self.last_quote = self._sent(quote)
        return quote

    def _within_limit(
        self, inventory: Decimal, bid_qty: Decimal | None, ask_qty: Decimal | None
    ) -> tuple[Decimal | None, Decimal | None, bool]:
        """The sizes cut so that the worst case stays inside the hard position limit: the
        position plus every order on the adding side that could still fill (resting, in flight,
        being cancelled) plus this quote. True when the limit cut a side."""
        buys, sells = self.orders.outstanding() if self.orders is not None else (Decimal(0), Decimal(0))
        bid_room, ask_room = self.safety.room(inventory + buys, inventory - sells)
        limited = False
        if bid_qty is not None and bid_room is not None and bid_qty > bid_room:
            bid_qty, limited = self._fit(bid_room), True
        if ask_qty is not None and ask_room is not None and ask_qty > ask_room:
            ask_qty, limited = self._fit(ask_room), True
        return bid_qty, ask_qty, limited

    def _fit(self, room: Decimal) -> Decimal | None:
        qty = floor_to(room, self.spec.lot_size) if room > 0 else Decimal(0)
        return qty if qty >= self.spec.min_qty else None

    def _size(self, mult: float) -> Decimal | None:
        qty = floor_to(self.cfg.quoting.base_size * Decimal(repr(round(mult, 6))), self.spec.lot_size)
        return qty if qty >= self.spec.min_qty else None

    def _material(
        self, bid_px: Decimal | None, bid_qty: Decimal | None, ask_px: Decimal | None, ask_qty: Decimal | None
    ) -> bool:
        last = self.last_quote
        if last is None:
            return True
        return (
            moved(last.bid_px, bid_px, self._price_tol)
            or moved(last.ask_px, ask_px, self._price_tol)
            or moved(last.bid_qty, bid_qty, self._size_tol)
            or moved(last.ask_qty, ask_qty, self._size_tol)
        )

    def _schedule_wake(self, now: int, inventory: Decimal) -> None:
        """Remember the next instant at which time alone could change the decision."""
        times = []
        if self.trend_active:
            times.append(self.trend.until_us)
        guard = self.pnl_guard.next_change_us()
        if guard is not None and guard > now:
            times.append(guard)
        ready = self.hedger.next_ready_us()
        if ready is not None and abs(inventory) > self.cfg.hedger.trigger_base:
            times.append(ready)
        self._wake_us = min(times) if times else None
