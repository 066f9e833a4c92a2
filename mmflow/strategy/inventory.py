"""Inventory rules: the soft cap (phase 1) and the analysis' three phase-2 additions.

Thresholds compare the absolute inventory strictly (``>``), as the analysis' snippets do.
"""

from __future__ import annotations

from decimal import Decimal

from mmflow.config import InventoryConfig


def _tier(abs_inv: Decimal, tiers: tuple[tuple[Decimal, float], ...], default: float) -> float:
    value = default
    for threshold, v in tiers:
        if abs_inv > threshold:
            value = v
    return value


def quotable_sides(cfg: InventoryConfig, inventory: Decimal) -> tuple[bool, bool]:
    """Asymmetric quoting: past the threshold, quote only the side that reduces the position."""
    if cfg.asymmetric_enabled and abs(inventory) > cfg.asymmetric_base:
        return (inventory < 0, inventory > 0)
    return True, True


def spread_bonus_bps(cfg: InventoryConfig, inventory: Decimal) -> float:
    """Extra bps of spread that grows with the position (analysis: +2/+4/+6)."""
    if not cfg.spread_bonus_enabled:
        return 0.0
    return _tier(abs(inventory), cfg.spread_bonus_tiers, 0.0)


def size_reduction(cfg: InventoryConfig, inventory: Decimal) -> float:
    """Size multiplier that shrinks with the position (analysis: x0.75, x0.5)."""
    if not cfg.size_reduction_enabled:
        return 1.0
    return _tier(abs(inventory), cfg.size_reduction_tiers, 1.0)


def soft_cap(cfg: InventoryConfig, inventory: Decimal) -> tuple[float, float]:
    """(bid, ask) size multipliers: above the soft cap, shrink the side that adds to it."""
    if not cfg.soft_cap_enabled or abs(inventory) <= cfg.soft_cap_base:
        return 1.0, 1.0
    m = cfg.soft_cap_size_mult
    return (m, 1.0) if inventory > 0 else (1.0, m)
