"""Paper venue: a deterministic exchange simulator for one market.

It receives intents and market data and produces fills. The backtest runs it inside the
per-market step (a Bytewax dataflow has no cycles, so fills cannot travel back upstream); the
Kafka execution connector wraps the very same class.

Matching rules
- A quote intent replaces the market's resting quotes: the old orders are cancelled
  ``cancel_latency`` after the intent, the new ones rest from ``order_latency`` after it (so for a
  moment both, or neither, may be live, as on a real exchange).
- A resting bid fills against a public *sell* trade printing at or below its price, and an ask
  against a *buy* trade at or above it, for at most the trade's size; at exactly our price we
  take ``at_price_fill_ratio`` of the trade.
- A resting order also fills when the opposite touch crosses it (best ask <= our bid), for at
  most the size shown at that touch. Maker fills execute at our price with the maker fee.
- Queue assumption: an order is at the front of its price level as soon as it is live. Quotes
  sit several bps away from the touch, so they join a level long before it trades; this is
  optimistic for levels that were already busy and is why ``at_price_fill_ratio`` exists.
- A hedge IOC executes ``order_latency`` after its intent, against the first book seen at or
  after that time: at the touch (best ask for a buy), for at most the touch size, only if the
  touch is within its limit price, with the taker fee; the rest is cancelled.
- Intents are de-duplicated exactly by id (a high-water mark per incarnation, mmflow/ids.py), so a
  sink that re-emits after a restart is harmless.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from decimal import Decimal

from mmflow.config import InstrumentSpec, VenueConfig
from mmflow.ids import REPLAY, HighWater, make_id
from mmflow.models import BookTick, CancelAllIntent, Fill, HedgeIntent, Intent, QuoteIntent, Trade
from mmflow.money import product

_NEVER = 1 << 62


@dataclass(slots=True)
class RestingOrder:
    intent_id: str
    side: str
    px: Decimal
    remaining: Decimal
    live_from: int
    cancel_at: int = _NEVER


@dataclass(slots=True)
class PendingIoc:
    intent: HedgeIntent
    exec_at: int


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
        #: Fill ids are ``<market>-F<incarnation>-<seq>``: a restarted venue never reuses one.
        self.incarnation = incarnation
        #: The venue's own count: the signed sum of its fills, and how many (reconciliation).
        self.position = Decimal(0)
        self.fill_count = 0
        self.orders: list[RestingOrder] = []
        self.iocs: deque[PendingIoc] = deque()
        self.best_bid: Decimal | None = None
        self.best_ask: Decimal | None = None
        self.bid_qty = Decimal(0)
        self.ask_qty = Decimal(0)
        self.fill_seq = 0
        self._seen = HighWater(window=dedup_window)
        self._next_cancel = _NEVER  # earliest cancel_at among the orders: when to sweep them
        self._order_lat = int(cfg.order_latency_ms * 1000)
        self._cancel_lat = int(cfg.cancel_latency_ms * 1000)

    # -- intents --------------------------------------------------------------------------------
    def submit(self, intent: Intent) -> bool:
        """Accept an intent; return False for a duplicate id (already handled)."""
        if self._seen.seen(intent.intent_id):
            return False
        if isinstance(intent, HedgeIntent):
            self.iocs.append(PendingIoc(intent, intent.ts + self._order_lat))
            return True
        self._cancel_all(intent.ts + self._cancel_lat)
        if isinstance(intent, QuoteIntent):
            live = intent.ts + self._order_lat
            if intent.bid_px is not None and intent.bid_qty:
                self.orders.append(RestingOrder(intent.intent_id, "buy", intent.bid_px, intent.bid_qty, live))
            if intent.ask_px is not None and intent.ask_qty:
                self.orders.append(
                    RestingOrder(intent.intent_id, "sell", intent.ask_px, intent.ask_qty, live)
                )
        else:
            assert isinstance(intent, CancelAllIntent)
        return True

    def resync(self) -> None:
        """Recompute what is derived from the orders (after restoring them)."""
        self._next_cancel = min((o.cancel_at for o in self.orders), default=_NEVER)

    def _cancel_all(self, at: int) -> None:
        for order in self.orders:
            if order.cancel_at > at:
                order.cancel_at = at
        if self.orders and at < self._next_cancel:
            self._next_cancel = at

    # -- market data ----------------------------------------------------------------------------
    def on_book(self, tick: BookTick) -> list[Fill]:
        now = tick.ts_recv
        self.best_bid, self.best_ask = tick.bid_px, tick.ask_px
        self.bid_qty, self.ask_qty = tick.bid_qty, tick.ask_qty
        fills: list[Fill] = []
        if self.orders:
            ask, bid = tick.ask_px, tick.bid_px
            # Most ticks cross nothing: one pass finds the live orders the touch has reached.
            crossed = [
                o
                for o in self.orders
                if o.live_from <= now < o.cancel_at and (ask <= o.px if o.side == "buy" else bid >= o.px)
            ]
            if crossed:
                # The size shown at each touch is shared by all our crossed orders, best price first.
                shown = {"buy": tick.ask_qty, "sell": tick.bid_qty}
                crossed.sort(key=lambda o: (o.side, -o.px if o.side == "buy" else o.px))
                for order in crossed:
                    qty = self._lots(min(order.remaining, shown[order.side]))
                    if qty > 0:
                        self._fill(order, qty, now, fills, "touch")
                        shown[order.side] -= qty
            if crossed or now >= self._next_cancel:
                self._expire(now)
        if self.iocs:
            self._run_iocs(now, fills)
        return fills

    def on_trade(self, trade: Trade) -> list[Fill]:
        now = trade.ts_recv
        fills: list[Fill] = []
        if self.orders:
            px = trade.px
            hit = "buy" if trade.side == "sell" else "sell"
            # Live orders on the hit side that the print reached (at or through their price).
            live = [
                o
                for o in self.orders
                if o.side == hit
                and o.live_from <= now < o.cancel_at
                and o.remaining > 0
                and (px <= o.px if hit == "buy" else px >= o.px)
            ]
            if live:
                left = trade.qty
                # Best price first: the highest bid meets a sell sweep before a lower one.
                live.sort(key=lambda o: o.px, reverse=hit == "buy")
                for order in live:
                    if left <= 0:
                        break
                    avail = left if px != order.px else left * self.cfg.at_price_fill_ratio
                    qty = self._lots(min(order.remaining, avail))
                    if qty > 0:
                        cause = "trade_at_price" if px == order.px else "trade_through"
                        self._fill(order, qty, now, fills, cause)
                        left -= qty
            if live or now >= self._next_cancel:
                self._expire(now)
        if self.iocs:
            self._run_iocs(now, fills)
        return fills

    # -- internals ------------------------------------------------------------------------------
    def _lots(self, qty: Decimal) -> Decimal:
        lot = self.spec.lot_size
        return (qty // lot) * lot

    def _expire(self, now: int) -> None:
        self.orders = [o for o in self.orders if o.cancel_at > now and o.remaining > 0]
        self._next_cancel = min((o.cancel_at for o in self.orders), default=_NEVER)

    def _next_fill_id(self) -> str:
        self.fill_seq += 1
        return make_id(f"{self.market}-F{self.incarnation}", self.fill_seq)

    def _new_fill(
        self, now: int, intent_id: str, side: str, px: Decimal, qty: Decimal, liquidity: str, cause: str
    ) -> Fill:
        """A fill of ours, numbered, charged its fee and counted in the venue's position: a maker
        fill of a resting quote, or a taker fill of a hedge IOC."""
        maker = liquidity == "maker"
        self.fill_count += 1
        self.position += qty if side == "buy" else -qty
        return Fill(
            market=self.market,
            ts=now,
            fill_id=self._next_fill_id(),
            intent_id=intent_id,
            side=side,  # type: ignore[arg-type]
            px=px,
            qty=qty,
            fee=product(px, qty, self.spec.maker_fee_rate if maker else self.spec.taker_fee_rate),
            liquidity=liquidity,  # type: ignore[arg-type]
            source="maker" if maker else "hedge",
            cause=cause,  # type: ignore[arg-type]
        )

    def _fill(self, order: RestingOrder, qty: Decimal, now: int, fills: list[Fill], cause: str) -> None:
        if qty <= 0:
            return
        order.remaining -= qty
        fills.append(self._new_fill(now, order.intent_id, order.side, order.px, qty, "maker", cause))

    def _run_iocs(self, now: int, fills: list[Fill]) -> None:
        while self.iocs and self.iocs[0].exec_at <= now:
            intent = self.iocs.popleft().intent
            if intent.side == "buy":
                px, avail, ok = (
                    self.best_ask,
                    self.ask_qty,
                    self.best_ask is not None and self.best_ask <= intent.limit_px,
                )
            else:
                px, avail, ok = (
                    self.best_bid,
                    self.bid_qty,
                    self.best_bid is not None and self.best_bid >= intent.limit_px,
                )
            qty = self._lots(min(intent.qty, avail)) if ok else Decimal(0)
            if qty <= 0 or px is None:
                continue
            fills.append(self._new_fill(now, intent.intent_id, intent.side, px, qty, "taker", "ioc"))
