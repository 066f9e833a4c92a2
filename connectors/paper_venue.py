"""Paper venue: a deterministic exchange simulator for one market, its assumptions as models.

It takes intents and market data and reports what an exchange would: fills and each order's
life (``OrderUpdate``: accepted, rejected, cancelled, expired, partially filled, filled). The
backtest runs it inside the per-market step (a Bytewax dataflow has no cycles, so reports
cannot travel back upstream); the Kafka venue service wraps the very same class. It speaks the
``ExecutionVenue`` protocol (mmflow/execution.py), as an exchange connector does.

Assumptions, each a swappable model (``venue`` settings, mmflow/sim/):
- latency: an order goes live, a cancel lands and a report reaches the flow after its own draw
  of the latency model (constant 50 ms entry and cancel by default; ``spiky`` adds jitter and
  stalls). A quote intent cancels the market's resting orders and places new ones: for a moment
  both, or neither, may be live, as on a real exchange. ``place``/``cancel`` handle one order by
  id without touching the others (an exchange account's orders, for the exchange simulator). A cancel that would land before its
  order is live cancels it as it arrives (the order never rests).
- queue position: how much of its level is ahead of an order (front, back, probabilistic).
- fees: the instrument's rates or volume tiers; a negative rate is a rebate.

Rules a real exchange enforces, whatever the models:
- Post-only: a quote that would cross the book when it goes live is rejected (Binance GTX,
  -5022; Bybit PostOnly), reported with reason ``post_only_would_cross``; it never fills.
- A resting bid fills against a public *sell* printing below its price (``trade_through``: the
  level was swept) for at most the print's size, or at its price (``trade_at_price``) for what
  the queue model lets through; an ask likewise against buys.
- The opposite touch crossing a live order (best ask <= our bid, ``touch``) fills it at our
  price for at most the size shown there; a touch is consumed once: the size it filled is not
  offered again until the level's price changes (then the new size is all new).
- A hedge IOC executes when it arrives, against the book then prevailing: at the touch, for at
  most the size shown (less what we already took from it), only within its limit price; the
  rest expires and is reported so.
- The book an arriving order meets is the one prevailing at its arrival: the last one seen
  before the event that reveals the arrival.
- Intents are de-duplicated exactly by id (a high-water mark per incarnation, mmflow/ids.py), so a
  sink that re-emits after a restart is harmless.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial

from mmflow.book import OrderBook
from mmflow.config import InstrumentSpec, Settings, VenueConfig
from mmflow.execution import VenueFactory
from mmflow.ids import REPLAY, HighWater, make_id
from mmflow.models import (
    POST_ONLY_REJECT,
    BookTick,
    CancelAllIntent,
    Depth,
    Fill,
    HedgeIntent,
    Intent,
    OrderUpdate,
    QuoteIntent,
    Trade,
)
from mmflow.sim.fees import fee_model
from mmflow.sim.latency import latency_model
from mmflow.sim.queue import QueueSpot, queue_model

_NEVER = 1 << 62
_ZERO = Decimal(0)

Report = Fill | OrderUpdate


@dataclass(slots=True)
class RestingOrder:
    """One side of a quote intent, from its entry to its end."""

    intent_id: str
    side: str
    px: Decimal
    qty: Decimal
    live_from: int
    cancel_at: int = _NEVER
    remaining: Decimal = _ZERO
    live: bool = False
    spot: QueueSpot = field(default_factory=QueueSpot)

    def __post_init__(self) -> None:
        if not self.remaining:
            self.remaining = self.qty


@dataclass(slots=True)
class PendingIoc:
    intent: HedgeIntent
    exec_at: int


@dataclass(slots=True)
class Touch:
    """What we took from one side's best level since its price last changed."""

    px: Decimal | None = None
    taken: Decimal = _ZERO

    def moved_to(self, px: Decimal) -> None:
        """The level's price now: a new price is a new level, nothing taken from it yet (a price
        that comes back later is a new level too)."""
        if px != self.px:
            self.px, self.taken = px, _ZERO

    def available(self, px: Decimal, shown: Decimal) -> Decimal:
        self.moved_to(px)
        return max(_ZERO, shown - self.taken)


class PaperVenue:
    def __init__(
        self,
        market: str,
        spec: InstrumentSpec,
        cfg: VenueConfig,
        dedup_window: int = 256,
        incarnation: str = REPLAY,
    ) -> None:
        self.market = market
        self.spec = spec
        self.cfg = cfg
        self.latency = latency_model(cfg.latency)
        self.queue = queue_model(cfg.queue)
        #: Whether the queue model reads the size shown at an order's level (front does not).
        self._reads_levels = cfg.queue.model != "front"
        self.fees = fee_model(cfg.fees, spec)
        #: Fill ids are ``<market>-F<incarnation>-<seq>``: a restarted venue never reuses one.
        self.incarnation = incarnation
        #: The venue's own count: the signed sum of its fills, and how many (reconciliation).
        self.position = _ZERO
        self.fill_count = 0
        self.fill_seq = 0
        self.orders: list[RestingOrder] = []
        self.iocs: list[PendingIoc] = []
        #: Reports not yet delivered: (deliver at, report), deliver times never decreasing.
        self.outbox: deque[tuple[int, Report]] = deque()
        self.best_bid: Decimal | None = None
        self.best_ask: Decimal | None = None
        self.bid_qty = _ZERO
        self.ask_qty = _ZERO
        #: The depth book, once a depth snapshot arrived: the queue model reads its levels.
        self.book: OrderBook | None = None
        #: Keyed by the side that takes: our buys take from the asks' touch, sells from the bids'.
        self.touch = {"buy": Touch(), "sell": Touch()}
        self._seen = HighWater(window=dedup_window)
        #: The time of the last market event the venue saw: its clock.
        self.clock = 0
        self._due = _NEVER  # earliest entry, cancel or IOC not yet carried out

    # -- the ExecutionVenue protocol ------------------------------------------------------------
    def submit(self, intent: Intent) -> bool:
        """Accept an intent; return False for a duplicate id (already handled)."""
        if self._seen.seen(intent.intent_id):
            return False
        # Stamped by the flow's clock; on Kafka the venue may already have seen later market data:
        # nothing it does can happen before what it has seen.
        sent = max(intent.ts, self.clock)
        arrive = sent + self.latency.latency_us("entry", intent.intent_id)
        if isinstance(intent, HedgeIntent):
            self.iocs.append(PendingIoc(intent, arrive))
            self._due = min(self._due, arrive)
            return True
        self._cancel_all(sent + self.latency.latency_us("cancel", intent.intent_id))
        if isinstance(intent, QuoteIntent):
            for side, px, qty in (
                ("buy", intent.bid_px, intent.bid_qty),
                ("sell", intent.ask_px, intent.ask_qty),
            ):
                if px is not None and qty:
                    self.orders.append(RestingOrder(intent.intent_id, side, px, qty, arrive))
                    self._due = min(self._due, arrive)
        else:
            assert isinstance(intent, CancelAllIntent)
        return True

    # -- single orders: an exchange account's independent orders (the exchange simulator) ---------
    def place(self, order_id: str, side: str, px: Decimal, qty: Decimal, ts: int) -> bool:
        """Rest one post-only order named ``order_id`` beside the others, cancelling none.

        A quote intent replaces the whole set; an exchange account places and cancels orders one
        by one, so the exchange simulator needs this. The order meets the same rules (post-only,
        queue, fees) and reports under ``intent_id=order_id``; False for a duplicate id."""
        if self._seen.seen(order_id):
            return False
        sent = max(ts, self.clock)
        arrive = sent + self.latency.latency_us("entry", order_id)
        self.orders.append(RestingOrder(order_id, side, px, qty, arrive))
        self._due = min(self._due, arrive)
        return True

    def cancel(self, order_id: str, ts: int) -> bool:
        """Cancel the one order named ``order_id``; False when none of that name is resting."""
        sent = max(ts, self.clock)
        at = sent + self.latency.latency_us("cancel", order_id)
        found = False
        for order in self.orders:
            if order.intent_id == order_id and order.remaining > 0 and order.cancel_at > at:
                order.cancel_at, found = at, True
                self._due = min(self._due, at if order.live else order.live_from)
        return found

    def advance(self, now: int) -> list[Report]:
        """Market time moved to ``now`` without a market event (an exchange's order entry):
        carry out what is due by then and deliver the reports due."""
        self._catch_up(now)
        return self._deliver(now)

    def on_book(self, tick: BookTick) -> list[Report]:
        now = tick.ts_recv
        if now > self.clock:
            self.clock = now
        if now >= self._due:
            self._catch_up(now)
        bid, ask = self.best_bid, self.best_ask = tick.bid_px, tick.ask_px
        self.bid_qty, self.ask_qty = tick.bid_qty, tick.ask_qty
        touch = self.touch
        if ask != touch["buy"].px:
            touch["buy"].moved_to(ask)
        if bid != touch["sell"].px:
            touch["sell"].moved_to(bid)
        if self.orders:
            # One pass: the live orders the touch crossed, and (top-of-book data) the levels it shows.
            show = self._reads_levels and self.book is None
            crossed = []
            for o in self.orders:
                if not o.live or o.remaining <= 0:
                    continue
                px = o.px
                if o.side == "buy":
                    if ask <= px:
                        crossed.append(o)
                    elif show and px >= bid:
                        self.queue.shown(o.spot, self.bid_qty if px == bid else _ZERO)
                elif bid >= px:
                    crossed.append(o)
                elif show and px <= ask:
                    self.queue.shown(o.spot, self.ask_qty if px == ask else _ZERO)
            if crossed:
                self._cross(crossed, now)
        return self._deliver(now) if self.outbox else []

    def on_trade(self, trade: Trade) -> list[Report]:
        now = trade.ts_recv
        if now > self.clock:
            self.clock = now
        if now >= self._due:
            self._catch_up(now)
        if self.orders:
            self._print(trade, now)
        return self._deliver(now) if self.outbox else []

    def on_depth(self, depth: Depth) -> list[Report]:
        now = depth.ts_recv
        self._catch_up(now)
        if depth.snapshot or self.book is not None:
            if self.book is None:
                self.book = OrderBook()
            self.book.apply(depth)
            self._show_levels(depth)
        return self._deliver(now)

    def resync(self) -> None:
        """Recompute what is derived from the orders (after restoring them)."""
        self._due = self._next_due()

    # -- time: entries, cancels and IOCs carried out in order -----------------------------------
    def _catch_up(self, now: int) -> None:
        """Carry out everything due by ``now`` against the book prevailing until now."""
        if now > self.clock:
            self.clock = now
        if now < self._due:
            return
        steps: list[tuple[int, int, object]] = []
        for order in self.orders:
            if not order.live and order.live_from <= now:
                steps.append((order.live_from, 0, order))
            # A cancel landing as its order goes live (zero latency) still cancels a live order.
            if order.cancel_at <= now and (order.cancel_at > order.live_from or order.live):
                steps.append((order.cancel_at, 1, order))
        for ioc in self.iocs:
            if ioc.exec_at <= now:
                steps.append((ioc.exec_at, 2, ioc))
        steps.sort(key=lambda s: (s[0], s[1]))
        for at, kind, item in steps:
            if kind == 0:
                self._go_live(item, at)  # type: ignore[arg-type]
            elif kind == 1:
                self._end(item, at, "cancelled")  # type: ignore[arg-type]
            else:
                self._run_ioc(item, at)  # type: ignore[arg-type]
        self.iocs = [i for i in self.iocs if i.exec_at > now]
        self.orders = [o for o in self.orders if o.remaining > 0]
        self._due = self._next_due()

    def _next_due(self) -> int:
        due = min((i.exec_at for i in self.iocs), default=_NEVER)
        for o in self.orders:
            due = min(due, o.cancel_at if o.live else o.live_from)
        return due

    def _go_live(self, order: RestingOrder, at: int) -> None:
        if order.cancel_at <= at:
            order.remaining = _ZERO
            self._update(at, order, "cancelled", "cancelled before it was live")
            return
        buy = order.side == "buy"
        opposite = self.best_ask if buy else self.best_bid
        if opposite is not None and (order.px >= opposite if buy else order.px <= opposite):
            order.remaining = _ZERO
            self._update(at, order, "rejected", POST_ONLY_REJECT)
            return
        order.live = True
        self.queue.joined(order.spot, self._shown_at(order))
        self._update(at, order, "accepted")

    def _end(self, order: RestingOrder, at: int, status: str) -> None:
        if order.remaining > 0:
            self._update(at, order, status)  # type: ignore[arg-type]
            order.remaining = _ZERO

    def _cancel_all(self, at: int) -> None:
        for order in self.orders:
            if order.cancel_at > at:
                order.cancel_at = at
                self._due = min(self._due, at if order.live else order.live_from)

    # -- the book seen by the queue model -------------------------------------------------------
    def _shown_at(self, order: RestingOrder) -> Decimal | None:
        """The size shown at the order's price, or None when the input does not show it."""
        buy = order.side == "buy"
        if self.book is not None:
            return self.book.size(order.side, order.px)  # type: ignore[arg-type]
        best = self.best_bid if buy else self.best_ask
        if best is None:
            return None
        if order.px == best:
            return self.bid_qty if buy else self.ask_qty
        beyond = order.px > best if buy else order.px < best
        return _ZERO if beyond else None

    def _show_levels(self, depth: Depth) -> None:
        book = self.book
        assert book is not None
        changed = {("buy", px) for px, _ in depth.bids} | {("sell", px) for px, _ in depth.asks}
        for order in self.orders:
            if order.live and (depth.snapshot or (order.side, order.px) in changed):
                self.queue.shown(order.spot, book.size(order.side, order.px))  # type: ignore[arg-type]

    # -- matching -------------------------------------------------------------------------------
    def _cross(self, crossed: list[RestingOrder], now: int) -> None:
        """Fill the live orders the touch crossed, at their price, from the size it shows."""
        ask, bid = self.best_ask, self.best_bid
        assert ask is not None and bid is not None
        # The size shown at each touch is shared by all our crossed orders, best price first.
        crossed.sort(key=lambda o: (o.side, -o.px if o.side == "buy" else o.px))
        for order in crossed:
            buy = order.side == "buy"
            touch = self.touch[order.side]
            shown = touch.available(ask if buy else bid, self.ask_qty if buy else self.bid_qty)
            qty = self._lots(min(order.remaining, shown))
            if qty > 0:
                touch.taken += qty
                self._fill_order(order, qty, now, "touch")

    def _print(self, trade: Trade, now: int) -> None:
        px = trade.px
        hit = "buy" if trade.side == "sell" else "sell"
        reached = [
            o
            for o in self.orders
            if o.side == hit and o.live and o.remaining > 0 and (px <= o.px if hit == "buy" else px >= o.px)
        ]
        if not reached:
            return
        left = trade.qty
        # Best price first: the highest bid meets a sell sweep before a lower one.
        reached.sort(key=lambda o: o.px, reverse=hit == "buy")
        for order in reached:
            if left <= 0:
                break
            through = px != order.px
            avail = left if through else self.queue.printed(order.spot, left)
            qty = self._lots(min(order.remaining, avail))
            if qty > 0:
                self._fill_order(order, qty, now, "trade_through" if through else "trade_at_price")
                left -= qty

    def _run_ioc(self, ioc: PendingIoc, at: int) -> None:
        intent = ioc.intent
        buy = intent.side == "buy"
        px = self.best_ask if buy else self.best_bid
        qty = _ZERO
        if px is not None and (px <= intent.limit_px if buy else px >= intent.limit_px):
            touch = self.touch[intent.side]
            qty = self._lots(min(intent.qty, touch.available(px, self.ask_qty if buy else self.bid_qty)))
        if qty > 0:
            assert px is not None
            self.touch[intent.side].taken += qty
            self._new_fill(at, intent.intent_id, intent.side, px, qty, "taker", "ioc")
        status = "filled" if qty == intent.qty else "expired"
        reason = (
            "" if qty == intent.qty else ("no liquidity within the limit" if qty == 0 else "unfilled rest")
        )
        self._report(
            at,
            OrderUpdate(
                market=self.market,
                ts=at,
                intent_id=intent.intent_id,
                side=intent.side,
                kind="hedge",
                status=status,  # type: ignore[arg-type]
                px=intent.limit_px,
                qty=intent.qty,
                filled_qty=qty,
                reason=reason,
            ),
            f"{intent.intent_id}/{status}",
        )

    # -- reports --------------------------------------------------------------------------------
    def _lots(self, qty: Decimal) -> Decimal:
        lot = self.spec.lot_size
        return (qty // lot) * lot

    def _fill_order(self, order: RestingOrder, qty: Decimal, now: int, cause: str) -> None:
        order.remaining -= qty
        self._new_fill(now, order.intent_id, order.side, order.px, qty, "maker", cause)
        self._update(now, order, "filled" if order.remaining == 0 else "partially_filled")
        if order.remaining == 0:
            self.orders = [o for o in self.orders if o.remaining > 0]
            self._due = self._next_due()

    def _new_fill(
        self, now: int, intent_id: str, side: str, px: Decimal, qty: Decimal, liquidity: str, cause: str
    ) -> None:
        """A fill of ours, numbered, charged its fee and counted in the venue's position."""
        maker = liquidity == "maker"
        self.fill_count += 1
        self.fill_seq += 1
        self.position += qty if side == "buy" else -qty
        fill = Fill(
            market=self.market,
            ts=now,
            fill_id=make_id(f"{self.market}-F{self.incarnation}", self.fill_seq),
            intent_id=intent_id,
            side=side,  # type: ignore[arg-type]
            px=px,
            qty=qty,
            fee=self.fees.fee(px, qty, liquidity),  # type: ignore[arg-type]
            liquidity=liquidity,  # type: ignore[arg-type]
            source="maker" if maker else "hedge",
            cause=cause,  # type: ignore[arg-type]
        )
        self._report(now, fill, fill.fill_id)

    def _update(self, at: int, order: RestingOrder, status: str, reason: str = "") -> None:
        update = OrderUpdate(
            market=self.market,
            ts=at,
            intent_id=order.intent_id,
            side=order.side,  # type: ignore[arg-type]
            kind="quote",
            status=status,  # type: ignore[arg-type]
            px=order.px,
            qty=order.qty,
            filled_qty=order.qty - order.remaining,
            reason=reason,
        )
        self._report(at, update, f"{order.intent_id}/{order.side}/{status}/{update.filled_qty}")

    def _report(self, at: int, report: Report, key: str) -> None:
        deliver = at + self.latency.latency_us("report", key)
        if self.outbox and deliver < self.outbox[-1][0]:
            deliver = self.outbox[-1][0]  # a report stream keeps its order
        self.outbox.append((deliver, report))

    def _deliver(self, now: int) -> list[Report]:
        box = self.outbox
        if not box or box[0][0] > now:
            return []
        out = []
        while box and box[0][0] <= now:
            out.append(box.popleft()[1])
        return out


def _paper_venue(settings: Settings, incarnation: str, market: str) -> PaperVenue:
    window = settings.strategy_for(market).safety.dedup_window
    return PaperVenue(market, settings.spec(market), settings.venue, window, incarnation)


def paper_venues(settings: Settings, incarnation: str = REPLAY) -> VenueFactory:
    """Each market's paper venue, from the run's settings (a picklable factory)."""
    return partial(_paper_venue, settings, incarnation)
