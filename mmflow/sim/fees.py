"""Fee models: what a fill costs (negative: a rebate), in quote currency, exact to 18 places."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal, Protocol

from mmflow.config import FeeConfig, FeeTier, InstrumentSpec
from mmflow.money import add, product

Liquidity = Literal["maker", "taker"]


class FeeModel(Protocol):
    def fee(self, px: Decimal, qty: Decimal, liquidity: Liquidity) -> Decimal:
        """The fee of one fill; the model may count the fill towards a volume tier."""
        ...


class InstrumentFees:
    """The market's own maker and taker rates (InstrumentSpec)."""

    __slots__ = ("_rates",)

    def __init__(self, spec: InstrumentSpec) -> None:
        self._rates = {"maker": spec.maker_fee_rate, "taker": spec.taker_fee_rate}

    def fee(self, px: Decimal, qty: Decimal, liquidity: Liquidity) -> Decimal:
        return product(px, qty, self._rates[liquidity])


class TieredFees:
    """Volume tiers: the rate of the highest tier the traded notional has reached, the 30 days
    before the run included. A fill is charged at the tier reached before it."""

    __slots__ = ("tiers", "volume")

    def __init__(self, cfg: FeeConfig) -> None:
        self.tiers: tuple[FeeTier, ...] = cfg.tiers
        #: Traded notional so far (saved with the venue's state).
        self.volume = cfg.volume_30d_quote

    def tier(self) -> FeeTier:
        reached = self.tiers[0]
        for tier in self.tiers:
            if self.volume >= tier.min_volume_quote:
                reached = tier
        return reached

    def fee(self, px: Decimal, qty: Decimal, liquidity: Liquidity) -> Decimal:
        tier = self.tier()
        rate = tier.maker_rate if liquidity == "maker" else tier.taker_rate
        self.volume = add(self.volume, product(px, qty))
        return product(px, qty, rate)


def fee_model(cfg: FeeConfig, spec: InstrumentSpec) -> InstrumentFees | TieredFees:
    return TieredFees(cfg) if cfg.model == "tiered" else InstrumentFees(spec)
