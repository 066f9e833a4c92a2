"""Volatility-aware spreads: quote wider and smaller as the market gets noisier."""

from __future__ import annotations

from mmflow.config import SpreadConfig


def vol_spread(cfg: SpreadConfig, vol_bps: float) -> tuple[float, float]:
    """Return (full spread in bps, size multiplier) for a volatility, linear between the ends."""
    if not cfg.enabled:
        return cfg.min_bps, 1.0
    x = (vol_bps - cfg.vol_low_bps) / (cfg.vol_high_bps - cfg.vol_low_bps)
    x = 0.0 if x < 0.0 else 1.0 if x > 1.0 else x
    spread = cfg.min_bps + (cfg.max_bps - cfg.min_bps) * x
    size = cfg.size_mult_low_vol + (cfg.size_mult_high_vol - cfg.size_mult_low_vol) * x
    return spread, size
