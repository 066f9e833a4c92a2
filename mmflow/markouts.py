"""Where the PnL goes: mark-outs of our own fills, and a PnL attribution built on them.

**Mark-out.** The mark-out of a fill at horizon ``h`` is, in basis points,

    sign * (mid(t + h) - px) / px * 10_000        sign = +1 for a buy, -1 for a sell

where ``t`` is the fill's time and ``mid(t + h)`` the mid prevailing at ``t + h``: the last mid
whose time is ``<= t + h`` (a mid change exactly at ``t + h`` counts). Negative means the market
moved against us after we traded (adverse selection). A horizon resolves when the market clock
(the next mid change, or the end of data) passes ``t + h``; a fill whose ``t + h`` lies beyond
the end of data keeps ``None`` there, never 0: it is counted as unresolved and left out of the
means. Per-fill values are quantized to 0.01 bps (half even), so outputs are the same to the byte.

``t`` is ``max(fill.ts, time of the last mid)``: a fill reported after the market clock moved on
(live, a fill in flight) is marked from when the flow saw it, so the tracker's queue stays in time
order and never needs a history of mids.

**Aggregates** are per fill cause (``trade_through``, ``trade_at_price``, ``touch``, ``ioc``;
``unknown`` when the venue does not say) and over all maker (liquidity) fills: count, volume in
base and in quote (notional ``px * qty``), and the mean mark-out per horizon **weighted by
notional** over the fills resolved at that horizon, i.e.
``10_000 * sum(sign * (mid(t+h) - px) * qty) / sum(px * qty)``: the quote PnL of the mark-out per
unit of traded notional, so a large fill weighs what it cost. It is computed exactly and quantized
once, to 0.01 bps.

**Attribution** (quote currency, exact ``Decimal``), with ``mid0`` the mid prevailing when the fill
was booked (for a touch fill: the mid just before the tick that crossed us; ``px`` when there was
no mid yet) and ``H`` the attribution horizon:

* spread earned     = sum over maker fills of ``sign * (mid0 - px) * qty``
* adverse selection = sum over maker fills of ``sign * (mid(t+H) - mid0) * qty``; a fill not yet
  resolved at ``H`` uses the latest mid
* fees              = ``-sum(fee)`` over every fill (a rebate is a negative fee, so it adds)
* hedging           = sum over taker (hedge) fills of ``sign * (mid0 - px) * qty`` (negative: the
  half-spread a hedge pays)
* inventory         = total - the four above, where total = FIFO realized PnL (net of fees, as
  ``fifo.FifoBook.realized``) + unrealized PnL of the open lots at the final mid. Because FIFO
  realized + unrealized is exactly ``sum(sign * qty * (mid_end - px)) - sum(fee)`` whatever the
  lot matching, inventory is ``sum(sign * qty * (mid_end - mid_ref))`` with ``mid_ref`` = ``mid(t+H)``
  for a maker fill and ``mid0`` for a hedge: the PnL of carrying the position from there to the end.

Pure: no I/O; the runtime feeds it (``on_mid`` on every change of the maker's mid, ``on_fill`` on
every fill booked) and drains the finished records.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from mmflow.models import Fill
from mmflow.money import CONTEXT, add, product

ZERO = Decimal(0)
BPS = Decimal(10_000)
#: Mark-outs are reported to 0.01 bps.
BPS_QUANTUM = Decimal("0.01")
CAUSES: tuple[str, ...] = ("trade_through", "trade_at_price", "touch", "ioc", "unknown")
_NEVER = 1 << 62


def horizon_label(seconds: Decimal) -> str:
    """``Decimal("30")`` -> ``"30"``, ``Decimal("0.5")`` -> ``"0.5"``: the name of a horizon in
    summaries and column names."""
    return format(Decimal(seconds).normalize(), "f")


def to_bps(pnl_quote: Decimal, notional: Decimal) -> Decimal:
    """``10_000 * pnl / notional`` at 0.01 bps (half even), computed in the wide context."""
    raw = CONTEXT.divide(CONTEXT.multiply(pnl_quote, BPS), notional)
    return raw.quantize(BPS_QUANTUM, rounding=ROUND_HALF_EVEN, context=CONTEXT)


@dataclass(slots=True)
class Markout:
    """One fill's mark-outs: ``mids[k]`` is ``mid(t + h_k)`` and ``bps[k]`` the mark-out at
    horizon ``k``, both ``None`` while (or if never) resolved."""

    market: str
    ts: int
    fill_id: str
    intent_id: str
    side: str
    px: Decimal
    qty: Decimal
    fee: Decimal
    cause: str
    liquidity: str
    source: str
    mid_at_fill: Decimal | None
    mids: list[Decimal | None]
    bps: list[Decimal | None]


class CauseStats:
    """Running totals for one group of fills (a cause, or all maker fills)."""

    __slots__ = ("count", "volume_base", "volume_quote", "pnl", "notional", "unresolved")

    def __init__(self, n_horizons: int) -> None:
        self.count = 0
        self.volume_base = self.volume_quote = ZERO
        #: Per horizon, over resolved fills: sum of sign * (mid(t+h) - px) * qty, and of px * qty.
        self.pnl = [ZERO] * n_horizons
        self.notional = [ZERO] * n_horizons
        #: Per horizon: fills still unresolved (at the end: never resolved).
        self.unresolved = [0] * n_horizons

    def as_dict(self, labels: tuple[str, ...]) -> dict[str, Any]:
        return {
            "count": self.count,
            "volume_base": str(self.volume_base),
            "volume_quote": str(self.volume_quote),
            "markout_bps": {
                lab: (str(to_bps(p, n)) if n else None)
                for lab, p, n in zip(labels, self.pnl, self.notional, strict=True)
            },
            "markout_quote": {lab: str(p) for lab, p in zip(labels, self.pnl, strict=True)},
            "unresolved": dict(zip(labels, self.unresolved, strict=True)),
        }


class MarkoutTracker:
    """Mark-outs of one market's fills. A deque per horizon holds the fills waiting for it, in
    time order, so ``on_mid`` costs one comparison while nothing is due."""

    __slots__ = (
        "market",
        "horizons_s",
        "labels",
        "_horizons_us",
        "_attr_k",
        "_pending",
        "_next_due",
        "mid",
        "mid_us",
        "by_cause",
        "maker",
        "spread",
        "adverse",
        "fees",
        "hedging",
        "_done",
    )

    def __init__(
        self,
        market: str,
        horizons_s: tuple[Decimal, ...] = (Decimal(1), Decimal(5), Decimal(30)),
        attribution_horizon_s: Decimal = Decimal(5),
    ) -> None:
        horizons = tuple(Decimal(h) for h in horizons_s)
        if not horizons or list(horizons) != sorted(set(horizons)) or horizons[0] <= 0:
            raise ValueError(f"horizons must be positive and strictly increasing: {horizons_s}")
        if Decimal(attribution_horizon_s) not in horizons:
            raise ValueError(f"attribution horizon {attribution_horizon_s} is not one of {horizons_s}")
        self.market = market
        self.horizons_s = horizons
        self.labels = tuple(horizon_label(h) for h in horizons)
        self._horizons_us = tuple(int(h * 1_000_000) for h in horizons)
        self._attr_k = horizons.index(Decimal(attribution_horizon_s))
        self._pending: tuple[deque[Markout], ...] = tuple(deque() for _ in horizons)
        self._next_due = _NEVER  # the earliest t + h among the pending fills
        self.mid: Decimal | None = None
        self.mid_us = 0
        self.by_cause: dict[str, CauseStats] = {}
        self.maker = CauseStats(len(horizons))
        self.spread = self.adverse = self.fees = self.hedging = ZERO
        self._done: list[Markout] = []

    # -- feeding --------------------------------------------------------------------------------
    def on_mid(self, now_us: int, mid: Decimal) -> list[Markout] | None:
        """The mid changed at ``now_us``. Returns the records that finished, or None (the common
        case: nothing was due)."""
        if self._next_due < now_us:
            # Everything due before now saw the previous mid as mid(t + h).
            self._resolve(now_us - 1)
            self.mid, self.mid_us = mid, now_us
            return self.take() if self._done else None
        self.mid, self.mid_us = mid, now_us
        return None

    def on_fill(self, fill: Fill, mid_at_fill: Decimal | None) -> None:
        t = max(fill.ts, self.mid_us)
        n = len(self._horizons_us)
        rec = Markout(
            market=fill.market,
            ts=t,
            fill_id=fill.fill_id,
            intent_id=fill.intent_id,
            side=fill.side,
            px=fill.px,
            qty=fill.qty,
            fee=fill.fee,
            cause=fill.cause or "unknown",
            liquidity=fill.liquidity,
            source=fill.source,
            mid_at_fill=mid_at_fill,
            mids=[None] * n,
            bps=[None] * n,
        )
        groups = [self._group(rec.cause)]
        if fill.liquidity == "maker":
            groups.append(self.maker)
        notional = product(fill.px, fill.qty)
        for g in groups:
            g.count += 1
            g.volume_base = add(g.volume_base, fill.qty)
            g.volume_quote = add(g.volume_quote, notional)
            for k in range(n):
                g.unresolved[k] += 1
        # Attribution: what the fill earned against the mid it was booked at.
        mid0 = fill.px if mid_at_fill is None else mid_at_fill
        edge = self._signed(rec, mid0 - fill.px)
        if fill.liquidity == "maker":
            self.spread = add(self.spread, edge)
        else:
            self.hedging = add(self.hedging, edge)
        self.fees = add(self.fees, -fill.fee)
        for dq in self._pending:
            dq.append(rec)
        due = t + self._horizons_us[0]
        if due < self._next_due:
            self._next_due = due

    def take(self) -> list[Markout]:
        """The records finished since the last call (every horizon resolved), in fill order."""
        done, self._done = self._done, []
        return done

    def finish(self, end_us: int) -> list[Markout]:
        """End of data at ``end_us``: resolve what the data covers, leave the rest ``None``, and
        return every record not taken yet."""
        self._resolve(end_us)
        self.adverse = self._adverse_now()
        longest = self._pending[-1]
        self._done.extend(longest)  # still waiting for some horizon: unresolved there, for good
        for dq in self._pending:
            dq.clear()
        self._next_due = _NEVER
        return self.take()

    # -- internals ------------------------------------------------------------------------------
    @staticmethod
    def _signed(rec: Markout, diff: Decimal) -> Decimal:
        return product(diff if rec.side == "buy" else -diff, rec.qty)

    def _group(self, cause: str) -> CauseStats:
        g = self.by_cause.get(cause)
        if g is None:
            g = self.by_cause[cause] = CauseStats(len(self._horizons_us))
        return g

    def _resolve(self, upto_us: int) -> None:
        """Resolve every pending horizon with ``t + h <= upto_us`` at the current mid."""
        mid = self.mid
        last = len(self._pending) - 1
        for k, dq in enumerate(self._pending):
            h = self._horizons_us[k]
            while dq and dq[0].ts + h <= upto_us:
                rec = dq.popleft()
                if mid is not None:
                    self._mark(rec, k, mid)
                if k == last:
                    self._done.append(rec)
        self._next_due = min(
            (dq[0].ts + self._horizons_us[k] for k, dq in enumerate(self._pending) if dq), default=_NEVER
        )

    def _mark(self, rec: Markout, k: int, mid: Decimal) -> None:
        pnl = self._signed(rec, mid - rec.px)
        notional = product(rec.px, rec.qty)
        rec.mids[k] = mid
        rec.bps[k] = to_bps(pnl, notional)
        groups = [self.by_cause[rec.cause]]
        if rec.liquidity == "maker":
            groups.append(self.maker)
        for g in groups:
            g.pnl[k] = add(g.pnl[k], pnl)
            g.notional[k] = add(g.notional[k], notional)
            g.unresolved[k] -= 1
        if k == self._attr_k and rec.liquidity == "maker":
            mid0 = rec.px if rec.mid_at_fill is None else rec.mid_at_fill
            self.adverse = add(self.adverse, self._signed(rec, mid - mid0))

    def _adverse_now(self) -> Decimal:
        """Adverse selection so far, maker fills not yet resolved at H taken at the latest mid."""
        adverse, mid = self.adverse, self.mid
        if mid is not None:
            for rec in self._pending[self._attr_k]:
                if rec.liquidity == "maker":
                    mid0 = rec.px if rec.mid_at_fill is None else rec.mid_at_fill
                    adverse = add(adverse, self._signed(rec, mid - mid0))
        return adverse

    # -- reading --------------------------------------------------------------------------------
    def aggregates(self) -> dict[str, Any]:
        """Per cause (in ``CAUSES`` order, only those seen) and over all maker fills."""
        return {
            "horizons_s": list(self.labels),
            "by_cause": {c: self.by_cause[c].as_dict(self.labels) for c in CAUSES if c in self.by_cause},
            "maker": self.maker.as_dict(self.labels),
        }

    def attribution(self, total: Decimal) -> dict[str, str]:
        """The PnL attribution (see the module docstring) against ``total`` = FIFO realized (net of
        fees) + unrealized at the final mid. The parts sum exactly to ``total``."""
        adverse = self._adverse_now()
        parts = CONTEXT.add(CONTEXT.add(self.spread, adverse), CONTEXT.add(self.fees, self.hedging))
        inventory = CONTEXT.subtract(total, parts)
        return {
            "horizon_s": self.labels[self._attr_k],
            "spread_quote": str(self.spread),
            "adverse_selection_quote": str(adverse),
            "fees_quote": str(self.fees),
            "hedging_quote": str(self.hedging),
            "inventory_quote": str(inventory),
            "total_quote": str(total),
        }
