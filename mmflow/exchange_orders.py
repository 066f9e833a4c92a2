"""Pure pieces of order entry on an exchange (``mmflow execute``): client order ids, prices and
sizes against the exchange's filters, the config check at start, and quote coalescing.

Client order ids. Binance allows 36 characters of ``[.A-Z:/a-z0-9_-]``; an intent id
(``binance-futures:BTCUSDT-<incarnation>-<seq>``) is longer, so an order's id is

    ``<prefix>-<incarnation>-<seq><side>``   e.g. ``mmf-19a2b3c4d5e6f-42b``

with ``prefix`` fixed per bot (``[A-Za-z0-9]{1,8}``), ``incarnation`` the intent's (lowercase hex,
``ids.incarnation_of``), ``seq`` the intent's sequence number without its zero padding and
``side`` ``b`` (buy) or ``s`` (sell). At most 8 + 1 + 16 + 1 + 9 + 1 = 36 characters. The
symbol is not in it: Binance's client ids are per symbol and the order is placed on the market's
own symbol, so ``(market, client id)`` maps back to exactly one intent id and side
(``intent_of``). It is a function of the intent alone: a request retried after a timeout carries
the same id (the exchange answers "duplicate", which means "already placed"), and an order whose
id does not start with this bot's prefix is never touched (cancel-all, reconciliation).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

from mmflow.ids import split_id
from mmflow.models import POST_ONLY_REJECT, CancelAllIntent, HedgeIntent, Intent, QuoteIntent, Side

CLIENT_ID_RE = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")
PREFIX_RE = re.compile(r"^[A-Za-z0-9]{1,8}$")
_INCARNATION_RE = re.compile(r"^[0-9a-f]{1,16}$")
_SEQ_MAX = 10**9 - 1
_SIDE_CODE = {"buy": "b", "sell": "s"}
_CODE_SIDE: dict[str, Side] = {"b": "buy", "s": "sell"}


class ClientIdError(ValueError):
    """An intent id or prefix that cannot make a valid client order id."""


def check_prefix(prefix: str) -> str:
    if not PREFIX_RE.match(prefix):
        raise ClientIdError(f"client id prefix {prefix!r}: 1 to 8 letters or digits")
    return prefix


def client_order_id(prefix: str, intent_id: str, side: Side) -> str:
    """The exchange's ``newClientOrderId`` for one side of an intent (see the module doc)."""
    parts = split_id(intent_id)
    if parts is None:
        raise ClientIdError(f"intent id {intent_id!r} is not <market>-<incarnation>-<seq>")
    stream, seq = parts
    _, sep, incarnation = stream.rpartition("-")
    if not sep or not _INCARNATION_RE.match(incarnation) or seq > _SEQ_MAX:
        raise ClientIdError(f"intent id {intent_id!r}: incarnation must be hex (<=16), seq < 1e9")
    cid = f"{prefix}-{incarnation}-{seq}{_SIDE_CODE[side]}"
    assert CLIENT_ID_RE.match(cid), cid
    return cid


def is_ours(prefix: str, client_id: str) -> bool:
    return client_id.startswith(prefix + "-") and parse_client_id(prefix, client_id) is not None


def parse_client_id(prefix: str, client_id: str) -> tuple[str, int, Side] | None:
    """``(incarnation, seq, side)`` of one of this bot's client ids, else None."""
    if not client_id.startswith(prefix + "-"):
        return None
    incarnation, sep, rest = client_id[len(prefix) + 1 :].partition("-")
    if not sep or not _INCARNATION_RE.match(incarnation) or len(rest) < 2:
        return None
    seq, code = rest[:-1], rest[-1]
    if not seq.isdigit() or not seq.isascii() or code not in _CODE_SIDE:
        return None
    return incarnation, int(seq), _CODE_SIDE[code]


def intent_of(prefix: str, market: str, client_id: str) -> tuple[str, Side] | None:
    """The intent id and side a client id of this bot on ``market`` stands for."""
    parsed = parse_client_id(prefix, client_id)
    if parsed is None:
        return None
    incarnation, seq, side = parsed
    return f"{market}-{incarnation}-{seq:09d}", side


# -- filters -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Filters:
    """What an order on a symbol must satisfy, from its exchangeInfo entry."""

    symbol: str
    tick: Decimal
    step: Decimal
    min_qty: Decimal
    min_notional: Decimal

    @classmethod
    def from_exchange_info(cls, entry: dict[str, Any]) -> Filters:
        by_type = {f.get("filterType"): f for f in entry.get("filters", [])}
        price, lot = by_type.get("PRICE_FILTER", {}), by_type.get("LOT_SIZE", {})
        notional = by_type.get("MIN_NOTIONAL") or by_type.get("NOTIONAL") or {}
        return cls(
            symbol=entry["symbol"],
            tick=Decimal(str(price.get("tickSize", "0"))),
            step=Decimal(str(lot.get("stepSize", "0"))),
            min_qty=Decimal(str(lot.get("minQty", "0"))),
            min_notional=Decimal(str(notional.get("notional") or notional.get("minNotional") or "0")),
        )


def _to_grid(value: Decimal, step: Decimal, rounding: str) -> Decimal:
    if step <= 0:
        return value
    return (value / step).to_integral_value(rounding=rounding) * step


def order_price(px: Decimal, side: Side, f: Filters) -> Decimal:
    """A post-only price on the tick grid, never more aggressive: bids down, asks up."""
    return _to_grid(px, f.tick, ROUND_FLOOR if side == "buy" else ROUND_CEILING).normalize()


def order_qty(qty: Decimal, px: Decimal, f: Filters) -> Decimal | None:
    """The size on the lot grid (rounded down: never more than wanted), or None when that is
    below the minimum quantity or the minimum notional (the side is then not sent)."""
    q = _to_grid(qty, f.step, ROUND_FLOOR)
    if q <= 0 or q < f.min_qty or px * q < f.min_notional:
        return None
    return q.normalize()


def _multiple(value: Decimal, step: Decimal) -> bool:
    return step <= 0 or value % step == 0


def config_problems(
    market: str, tick: Decimal, lot: Decimal, base_size: Decimal, px: Decimal | None, f: Filters
) -> list[str]:
    """Why the settings of ``market`` do not fit the exchange's filters (one line each, naming the
    setting and the exchange's value); ``px`` (the current mid, if known) checks the notional."""
    out = []
    m = f"markets.{market}"
    if not _multiple(tick, f.tick):
        out.append(f"{m}.tick_size {tick} is not a multiple of the exchange's tickSize {f.tick}")
    if not _multiple(lot, f.step):
        out.append(f"{m}.lot_size {lot} is not a multiple of the exchange's stepSize {f.step}")
    if base_size < f.min_qty:
        out.append(
            f"strategy.quoting.base_size {base_size} ({market}) is below the exchange's minQty {f.min_qty}"
        )
    elif px is not None and base_size * px < f.min_notional:
        out.append(
            f"strategy.quoting.base_size {base_size} ({market}) is worth {base_size * px} at {px}, "
            f"below the exchange's min notional {f.min_notional}"
        )
    return out


# -- coalescing --------------------------------------------------------------------------------


class Coalescer:
    """Intents waiting to go out, per market, with superseded quotes dropped: a quote replaces the
    whole set, so of several quotes waiting only the latest matters; a cancel-all drops the quotes
    before it. Hedges are never dropped. Order within a market is kept."""

    def __init__(self) -> None:
        self.pending: OrderedDict[str, list[Intent]] = OrderedDict()
        self.superseded = 0

    def push(self, intent: Intent) -> None:
        queue = self.pending.setdefault(intent.market, [])
        if isinstance(intent, QuoteIntent | CancelAllIntent):
            kept = [i for i in queue if isinstance(i, HedgeIntent)]
            # A quote or cancel-all waiting before this one is implied by it (it replaces all).
            self.superseded += len(queue) - len(kept)
            queue[:] = kept
        queue.append(intent)

    def drain(self) -> list[Intent]:
        out = [i for queue in self.pending.values() for i in queue]
        self.pending.clear()
        return out

    def __len__(self) -> int:
        return sum(len(q) for q in self.pending.values())


def quote_sides(intent: QuoteIntent) -> list[tuple[Side, Decimal, Decimal]]:
    """The sides a quote wants resting: (side, price, size)."""
    out: list[tuple[Side, Decimal, Decimal]] = []
    if intent.bid_px is not None and intent.bid_qty:
        out.append(("buy", intent.bid_px, intent.bid_qty))
    if intent.ask_px is not None and intent.ask_qty:
        out.append(("sell", intent.ask_px, intent.ask_qty))
    return out


# -- the exchange's order statuses -------------------------------------------------------------

_STATUS = {
    "NEW": "accepted",
    "PARTIALLY_FILLED": "partially_filled",
    "FILLED": "filled",
    "CANCELED": "cancelled",
    "REJECTED": "rejected",
    "EXPIRED": "expired",
    "EXPIRED_IN_MATCH": "expired",
}


def order_status(exchange_status: str, post_only: bool, filled: Decimal) -> tuple[str, str] | None:
    """An exchange order status as (OrderUpdate status, reason), None for one it does not map.
    A post-only order that expires unfilled was refused for crossing (USD-M's GTX expiry, spot's
    LIMIT_MAKER): ``rejected`` with ``POST_ONLY_REJECT``, as -5022 is."""
    status = _STATUS.get(exchange_status)
    if status is None:
        return None
    if status == "expired" and post_only and filled == 0:
        return "rejected", POST_ONLY_REJECT
    return status, ""
