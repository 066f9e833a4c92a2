"""Per-market run statistics: the analysis' validation metrics, computed while replaying.

Kept apart from the strategy so that measuring never changes a decision.
"""

from __future__ import annotations

from decimal import Decimal

from mmflow.models import Fill, Intent

#: |inventory| thresholds for the time-share metric (the analysis wants "mostly under 0.01").
INVENTORY_BANDS: tuple[Decimal, ...] = (Decimal("0.01"), Decimal("0.02"), Decimal("0.05"))
#: |inventory| above which a stretch counts as "stuck" (the analysis saw 0.027 held for 15 s).
STRETCH_BAND = Decimal("0.02")
ZERO = Decimal(0)


class MarketStats:
    __slots__ = (
        "books",
        "trades",
        "maker_fills",
        "hedge_fills",
        "fees",
        "hedge_volume",
        "hedge_cost",
        "max_abs_inventory",
        "quote_intents",
        "hedge_intents",
        "cancel_intents",
        "first_us",
        "last_us",
        "bucket_us",
        "_bucket",
        "longest_above_us",
        "_above_since",
    )

    def __init__(self) -> None:
        self.books = self.trades = self.maker_fills = self.hedge_fills = 0
        self.quote_intents = self.hedge_intents = self.cancel_intents = 0
        self.fees = self.hedge_volume = self.hedge_cost = self.max_abs_inventory = ZERO
        self.first_us: int | None = None
        self.last_us = 0
        # bucket_us[k]: time spent with |inventory| in (band k-1, band k]; the last bucket is above
        # every band. One list add per event instead of a Decimal comparison per band.
        self.bucket_us = [0] * (len(INVENTORY_BANDS) + 1)
        self._bucket = 0
        # The longest time |inventory| stayed above STRETCH_BAND without a break, and the start of
        # the stretch in progress (None while at or below the band).
        self.longest_above_us = 0
        self._above_since: int | None = None

    def advance(self, now_us: int) -> None:
        """Credit the time since the last event to the inventory held during it."""
        if self.first_us is None:
            self.first_us = self.last_us = now_us
            return
        dt = now_us - self.last_us
        if dt > 0:
            self.bucket_us[self._bucket] += dt
            self.last_us = now_us

    def on_fill(self, fill: Fill, inventory_after: Decimal, mid: Decimal | None) -> None:
        self.fees += fill.fee
        if fill.source == "hedge":
            self.hedge_fills += 1
            self.hedge_volume += fill.qty
            # Cost of hedging: the fee plus how far from the mid we crossed.
            slip = abs(fill.px - mid) * fill.qty if mid is not None else ZERO
            self.hedge_cost += fill.fee + slip
        else:
            self.maker_fills += 1
        abs_inv = abs(inventory_after)
        self._bucket = next(
            (k for k, band in enumerate(INVENTORY_BANDS) if abs_inv <= band), len(INVENTORY_BANDS)
        )
        if abs_inv > self.max_abs_inventory:
            self.max_abs_inventory = abs_inv
        if abs_inv > STRETCH_BAND:
            if self._above_since is None:
                self._above_since = self.last_us
        elif self._above_since is not None:
            self.longest_above_us = max(self.longest_above_us, self.last_us - self._above_since)
            self._above_since = None

    def on_intent(self, intent: Intent) -> None:
        kind = intent.type
        if kind == "quote":
            self.quote_intents += 1
        elif kind == "hedge":
            self.hedge_intents += 1
        else:
            self.cancel_intents += 1

    def time_shares(self) -> dict[str, float]:
        """Share of time with |inventory| at or below each band (cumulative over the buckets)."""
        total = self.last_us - (self.first_us or 0)
        shares, below = {}, 0
        for band, us in zip(INVENTORY_BANDS, self.bucket_us, strict=False):
            below += us
            shares[str(band)] = round(below / total, 6) if total > 0 else 1.0
        return shares

    def longest_above_s(self) -> dict[str, float]:
        """The longest stretch with |inventory| above ``STRETCH_BAND``, in seconds of event time
        (a stretch still open at the last event counts up to it)."""
        longest = self.longest_above_us
        if self._above_since is not None:
            longest = max(longest, self.last_us - self._above_since)
        return {str(STRETCH_BAND): round(longest / 1e6, 3)}
