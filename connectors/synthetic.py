"""Synthetic market: a seeded, deterministic stream of book ticks and trades.

This is the embedded default data source, so the product can run (demo, backtest, tests) without
a recorded file. The shape is chosen to exercise the strategy: quiet stretches where quoting
earns the spread, volatile bursts where spreads must widen, and downtrends where a long
inventory bleeds and the trend guard has to act.

Determinism: only ``random.Random(seed)`` is used, and only through ``random()``/``randrange``/
``choices`` plus IEEE-exact float operations (+, -, *, /, sqrt, floor). No ``gauss``/``log``/``**``,
whose results depend on the platform's libm, so the same arguments give the same events on every
machine. Prices and sizes are built from integer tick/lot counts, never from floats.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from decimal import Decimal

from mmflow.models import BookTick, Trade

_STEP_US = 100_000  # the latent fair price moves every 100 ms
_SLOT_US = 10_000  # at most one book update and one trade per 10 ms slot (binomial ~ Poisson)
_SLOTS_PER_STEP = _STEP_US // _SLOT_US


@dataclass(frozen=True, slots=True)
class _Regime:
    """Parameters of one market regime; ranges are drawn afresh each time it is entered."""

    sigma_bps: tuple[float, float]  # 1-s volatility of the fair price
    drift_bps_30s: tuple[float, float]  # drift per 30 s
    seconds: tuple[int, int]  # how long the regime lasts
    book_rate: float  # book updates per second
    trade_rate: float  # trades per second
    sweep_p: float  # share of trades that sweep through the touch
    spreads: tuple[tuple[int, ...], tuple[float, ...]]  # spread in ticks, weights


_REGIMES: dict[str, _Regime] = {
    "calm": _Regime((1.0, 2.0), (0.0, 0.0), (40, 180), 6.0, 1.5, 0.03, ((1,), (1.0,))),
    "volatile": _Regime((8.0, 15.0), (0.0, 0.0), (30, 120), 16.0, 4.0, 0.08, ((1, 2, 3), (0.6, 0.3, 0.1))),
    "down": _Regime((2.5, 5.0), (-40.0, -15.0), (30, 120), 10.0, 3.0, 0.05, ((1, 2), (0.85, 0.15))),
}
# Markov chain over regimes: from each state, the next state's weights (no self-loops).
_NEXT: dict[str, tuple[tuple[str, ...], tuple[float, ...]]] = {
    "calm": (("volatile", "down"), (0.55, 0.45)),
    "volatile": (("calm", "down"), (0.7, 0.3)),
    "down": (("calm", "volatile"), (0.6, 0.4)),
}


def _normal(rng: random.Random) -> float:
    """Standard normal via Irwin-Hall (sum of 12 uniforms): portable, unlike ``gauss``."""
    r = rng.random
    return r() + r() + r() + r() + r() + r() + r() + r() + r() + r() + r() + r() - 6.0


def generate(
    market: str = "synthetic:SYNTH-SOL",
    seconds: float = 1800.0,
    seed: int = 7,
    start_us: int = 1_767_225_600_000_000,
    start_px: Decimal = Decimal("150.00"),
    tick: Decimal = Decimal("0.01"),
    lot: Decimal = Decimal("0.001"),
) -> list[BookTick | Trade]:
    """Simulate ``seconds`` of one market; events sorted by ``ts_recv`` (ties keep generation order).

    A latent fair price (float, in ticks) follows a regime-switching random walk; the published
    book is quantised around it. Trades print at the last published touch; a sweep prints at
    every level it walks through and moves the fair price with it (permanent impact).
    """
    rng = random.Random(seed)
    lot_f = float(lot)
    anchor = float((start_px / tick).to_integral_value())
    fair = anchor
    n_steps = int(seconds * 1_000_000) // _STEP_US
    events: list[BookTick | Trade] = []
    last_ts = start_us
    trade_n = 0

    def lots(sol: float) -> Decimal:
        return Decimal(max(1, int(sol / lot_f))) * lot

    def stamp(ts: int) -> tuple[int, int]:
        """Exchange time (kept non-decreasing in causal order) and a 1-30 ms later receive time."""
        nonlocal last_ts
        last_ts = max(ts, last_ts)
        return last_ts, last_ts + rng.randrange(1_000, 30_001)

    def publish(ts: int) -> tuple[int, int]:
        """Quantise the fair price into a book (spread by regime) and emit it; return the touch."""
        s = rng.choices(*reg.spreads)[0]
        b = max(1, math.floor(fair - (s - 1) / 2))
        ts_ex, ts_rv = stamp(ts)
        u, v = rng.random(), rng.random()
        events.append(BookTick(
            market=market, ts_exchange=ts_ex, ts_recv=ts_rv,
            bid_px=Decimal(b) * tick, bid_qty=lots(5.0 + 495.0 * u * u * u),
            ask_px=Decimal(b + s) * tick, ask_qty=lots(5.0 + 495.0 * v * v * v),
        ))  # fmt: skip
        return b, b + s

    def trade(ts: int, side: str, px_ticks: int, sol: float) -> None:
        nonlocal trade_n
        trade_n += 1
        ts_ex, ts_rv = stamp(ts)
        events.append(Trade(
            market=market, ts_exchange=ts_ex, ts_recv=ts_rv, trade_id=f"{market}-{trade_n}",
            side=side, px=Decimal(px_ticks) * tick, qty=lots(min(sol, 50.0)),
        ))  # fmt: skip

    name = "calm"
    reg = _REGIMES[name]
    sigma = drift = 0.0
    regime_left = 0
    bid, ask = publish(start_us)
    for step in range(n_steps):
        if regime_left <= 0:  # enter the next regime of the Markov chain
            if step:
                name = rng.choices(*_NEXT[name])[0]
                reg = _REGIMES[name]
            regime_left = rng.randrange(reg.seconds[0], reg.seconds[1] + 1) * 1_000_000 // _STEP_US
            sigma = rng.uniform(*reg.sigma_bps)
            drift = rng.uniform(*reg.drift_bps_30s) / 30.0  # bps per second
        regime_left -= 1
        # Fair-price step in ticks: vol and drift scale with the level (bps), plus a weak pull
        # back to the start price so long runs stay bounded after repeated downtrends.
        bps = fair / 10_000.0
        fair += (drift * bps + (anchor - fair) / 3600.0) * 0.1 + sigma * bps * math.sqrt(0.1) * _normal(rng)
        fair = max(fair, 1.0)
        p_buy = max(0.25, 0.5 + 0.2 * drift)  # takers lean with the drift
        p_book, p_trade = reg.book_rate * _SLOT_US / 1e6, reg.trade_rate * _SLOT_US / 1e6
        t0 = start_us + step * _STEP_US
        for slot in range(_SLOTS_PER_STEP):
            ts = t0 + slot * _SLOT_US
            if rng.random() < p_book:
                bid, ask = publish(ts + rng.randrange(_SLOT_US))
            if rng.random() >= p_trade:
                continue
            ts_trade = ts + rng.randrange(_SLOT_US)
            side = "buy" if rng.random() < p_buy else "sell"
            sign, touch = (1, ask) if side == "buy" else (-1, bid)
            if rng.random() < reg.sweep_p:  # a large taker walks 1-5 ticks through the touch
                k = rng.randrange(1, 6)
                for level in range(k + 1):
                    trade(ts_trade, side, touch + sign * level, 1.0 + 9.0 * rng.random())
                fair = touch + sign * (k + 0.5)
                bid, ask = publish(ts_trade + rng.randrange(200, 2_000))
            else:  # heavy tail (Pareto, alpha=1): most 0.01-2, about 1% above 5
                trade(ts_trade, side, touch, (0.01 + 0.03 * rng.random()) / (1.0 - rng.random()))
    events.sort(key=lambda e: e.ts_recv)
    return events


def describe(events: list[BookTick | Trade]) -> dict[str, object]:
    """Summary for a CLI line: counts, span in seconds (by ``ts_recv``) and the price range."""
    books = [e for e in events if isinstance(e, BookTick)]
    trades = [e for e in events if isinstance(e, Trade)]
    prices = [p for b in books for p in (b.bid_px, b.ask_px)] + [t.px for t in trades]
    span = (events[-1].ts_recv - events[0].ts_recv) / 1e6 if events else 0.0
    return {
        "events": len(events),
        "books": len(books),
        "trades": len(trades),
        "buys": sum(1 for t in trades if t.side == "buy"),
        "sells": sum(1 for t in trades if t.side == "sell"),
        "seconds": span,
        "min_px": str(min(prices)) if prices else None,
        "max_px": str(max(prices)) if prices else None,
    }
