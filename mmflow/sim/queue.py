"""Queue-position models: how much of its price level stands ahead of a resting order.

The venue tells the model three things about an order's level: the size shown when the order
joined (None when the input does not show that level: top-of-book data and a price behind the
touch), each print at the order's price, and each later size of the level. The model keeps
``QueueSpot.ahead`` and says how much of a print reaches the order. Prints *through* the price
(the level was swept) and the opposite touch crossing the order fill it whatever the queue: the
venue handles those without asking.

All quantities are ``Decimal``: the same fills on every machine, and a size is never a float.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from mmflow.config import QueueConfig

_ZERO = Decimal(0)


@dataclass(slots=True)
class QueueSpot:
    #: Size ahead of the order; None while its level has never been shown.
    ahead: Decimal | None = None
    #: The level's size when last shown (None: not shown yet).
    level: Decimal | None = None
    #: Printed at the order's price since the level was last shown (the probabilistic model
    #: must not count a print's shrinkage as cancellations too).
    traded: Decimal = _ZERO


class QueueModel(Protocol):
    def joined(self, spot: QueueSpot, shown: Decimal | None) -> None:
        """The order went live with ``shown`` at its price (None: the level is not visible)."""
        ...

    def printed(self, spot: QueueSpot, qty: Decimal) -> Decimal:
        """A print of ``qty`` at the order's price: how much of it reaches the order."""
        ...

    def shown(self, spot: QueueSpot, size: Decimal) -> None:
        """The order's level now shows ``size`` (0: the level is gone)."""
        ...


class FrontOfQueue:
    """The optimistic bound: nothing ahead, ``at_price_fill_ratio`` of each print at our price."""

    __slots__ = ("ratio",)

    def __init__(self, cfg: QueueConfig) -> None:
        self.ratio = cfg.at_price_fill_ratio

    def joined(self, spot: QueueSpot, shown: Decimal | None) -> None:
        spot.ahead = _ZERO

    def printed(self, spot: QueueSpot, qty: Decimal) -> Decimal:
        return qty * self.ratio

    def shown(self, spot: QueueSpot, size: Decimal) -> None:
        spot.level = size


class BackOfQueue:
    """Risk-averse: behind everything shown when the order joins (or when its level is first
    shown), advanced only by prints at its price and by the level shrinking below it."""

    __slots__ = ()

    def __init__(self, cfg: QueueConfig) -> None:
        pass

    def joined(self, spot: QueueSpot, shown: Decimal | None) -> None:
        spot.ahead = shown
        spot.level = shown

    def printed(self, spot: QueueSpot, qty: Decimal) -> Decimal:
        spot.traded += qty
        if spot.ahead is None:
            return _ZERO  # a level never shown: assume the print was all ahead of us
        reaches = qty - spot.ahead
        spot.ahead = max(_ZERO, spot.ahead - qty)
        return max(_ZERO, reaches)

    def shown(self, spot: QueueSpot, size: Decimal) -> None:
        if spot.ahead is None:
            spot.ahead = size  # first sight: behind all of it
        else:
            self._advance(spot, size)
            spot.ahead = min(spot.ahead, size)
        spot.level = size
        spot.traded = _ZERO

    def _advance(self, spot: QueueSpot, size: Decimal) -> None:
        """Credit for cancellations: none in the risk-averse model."""


class ProbabilisticQueue(BackOfQueue):
    """Back of the queue, plus a share of each unexplained shrink of the level (a cancellation)
    counted as ahead of the order: front^p / (front^p + back^p), so an order at the back of a
    long queue gains from most cancellations and one near the front from few."""

    __slots__ = ("power",)

    def __init__(self, cfg: QueueConfig) -> None:
        self.power = cfg.power

    def _advance(self, spot: QueueSpot, size: Decimal) -> None:
        previous, front = spot.level, spot.ahead
        if previous is None or front is None:
            return
        cancelled = previous - size - spot.traded
        if cancelled <= 0 or front <= 0:
            return
        back = max(_ZERO, previous - front)
        f, b = front**self.power, back**self.power
        share = f / (f + b)
        spot.ahead = max(_ZERO, front - cancelled * share)


def queue_model(cfg: QueueConfig) -> QueueModel:
    if cfg.model == "front":
        return FrontOfQueue(cfg)
    if cfg.model == "probabilistic":
        return ProbabilisticQueue(cfg)
    return BackOfQueue(cfg)
