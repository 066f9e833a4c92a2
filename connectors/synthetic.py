"""Synthetic market: a seeded, deterministic stream of book ticks and trades.

This is the embedded default data source, so the product can run (demo, backtest, tests) without
a recorded file. Two named scenarios (``SCENARIOS``, ``generate(..., scenario=...)``):

- ``quiet`` (the historic market, byte-for-byte): calm stretches, volatile bursts where spreads
  must widen, and downtrends where a long inventory bleeds and the trend guard has to act.
- ``one_sided`` (the demo's default): episodes of one-sided selling (liquidation or informed flow)
  that keep sweeping the bid while the price drifts down slowly, between two-sided periods. It is
  built to reproduce what the phase-2 analysis saw under phase 1: inventory building to ~0.045,
  held above 0.02 for 15+ s while the hedger works, because the bid it sells into is thin. Its parameters
  and their reasons are at ``_FLOWS``.

Determinism: only ``random.Random(seed)`` is used, and only through ``random()``/``randrange``/
``choices`` plus IEEE-exact float operations (+, -, *, /, sqrt, floor). No ``gauss``/``log``/``**``,
whose results depend on the platform's libm, so the same arguments give the same events on every
machine. Prices and sizes are built from integer tick/lot counts, never from floats.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
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


class _Tape:
    """The events of one run and the helpers that build them on the tick/lot grid.

    Shared by every scenario; the order of its ``rng`` calls is part of each scenario's output.
    """

    def __init__(self, rng: random.Random, market: str, start_us: int, tick: Decimal, lot: Decimal) -> None:
        self.rng = rng
        self.market = market
        self.tick = tick
        self.lot = lot
        self.lot_f = float(lot)
        self.events: list[BookTick | Trade] = []
        self.last_ts = start_us
        self.trade_n = 0
        self.bid_ticks = 0  # the last published bid, in ticks
        self.bid_lots = 0  # what a thin bid shows there, in lots

    def lots(self, sol: float) -> Decimal:
        return Decimal(max(1, int(sol / self.lot_f))) * self.lot

    def stamp(self, ts: int) -> tuple[int, int]:
        """Exchange time (kept non-decreasing in causal order) and a 1-30 ms later receive time."""
        self.last_ts = max(ts, self.last_ts)
        return self.last_ts, self.last_ts + self.rng.randrange(1_000, 30_001)

    def publish(
        self,
        ts: int,
        fair: float,
        spreads: tuple[tuple[int, ...], tuple[float, ...]],
        thin_bid: tuple[int, int] | None = None,
    ) -> tuple[int, int]:
        """Quantise the fair price into a book (spread drawn from ``spreads``), emit it, return the touch.

        ``thin_bid`` (lots, min and max): the bid shows only that much, as after sellers ate it. A
        new bid price starts at a size drawn from the range; the same price refills one lot per
        update up to the maximum (``bid_lots`` keeps what it shows now).
        """
        rng = self.rng
        s = rng.choices(*spreads)[0]
        b = max(1, math.floor(fair - (s - 1) / 2))
        ts_ex, ts_rv = self.stamp(ts)
        u, v = rng.random(), rng.random()
        tick = self.tick
        bid_qty = self.lots(5.0 + 495.0 * u * u * u)
        if thin_bid is not None:
            if b == self.bid_ticks:
                self.bid_lots = min(self.bid_lots + 1, thin_bid[1])
            else:
                self.bid_lots = rng.randrange(thin_bid[0], thin_bid[1] + 1)
            bid_qty = Decimal(self.bid_lots) * self.lot
        self.bid_ticks = b
        self.events.append(BookTick(
            market=self.market, ts_exchange=ts_ex, ts_recv=ts_rv,
            bid_px=Decimal(b) * tick, bid_qty=bid_qty,
            ask_px=Decimal(b + s) * tick, ask_qty=self.lots(5.0 + 495.0 * v * v * v),
        ))  # fmt: skip
        return b, b + s

    def trade(self, ts: int, side: str, px_ticks: int, sol: float, lots: int = 0) -> None:
        """One print; ``lots`` (when > 0) gives its size exactly instead of ``sol``."""
        self.trade_n += 1
        ts_ex, ts_rv = self.stamp(ts)
        qty = Decimal(lots) * self.lot if lots > 0 else self.lots(min(sol, 50.0))
        self.events.append(Trade(
            market=self.market, ts_exchange=ts_ex, ts_recv=ts_rv, trade_id=f"{self.market}-{self.trade_n}",
            side=side, px=Decimal(px_ticks) * self.tick, qty=qty,
        ))  # fmt: skip

    def sorted_events(self) -> list[BookTick | Trade]:
        self.events.sort(key=lambda e: e.ts_recv)
        return self.events


def _quiet(tape: _Tape, seconds: float, start_us: int, start_px: Decimal) -> None:
    """Today's market: a regime-switching random walk (calm, volatile, down) with permanent-impact
    sweeps; takers lean with the drift. Output is fixed: tests hold it to a recorded hash."""
    rng, tick = tape.rng, tape.tick
    anchor = float((start_px / tick).to_integral_value())
    fair = anchor
    n_steps = int(seconds * 1_000_000) // _STEP_US
    name = "calm"
    reg = _REGIMES[name]
    sigma = drift = 0.0
    regime_left = 0
    bid, ask = tape.publish(start_us, fair, reg.spreads)
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
                bid, ask = tape.publish(ts + rng.randrange(_SLOT_US), fair, reg.spreads)
            if rng.random() >= p_trade:
                continue
            ts_trade = ts + rng.randrange(_SLOT_US)
            side = "buy" if rng.random() < p_buy else "sell"
            sign, touch = (1, ask) if side == "buy" else (-1, bid)
            if rng.random() < reg.sweep_p:  # a large taker walks 1-5 ticks through the touch
                k = rng.randrange(1, 6)
                for level in range(k + 1):
                    tape.trade(ts_trade, side, touch + sign * level, 1.0 + 9.0 * rng.random())
                fair = touch + sign * (k + 0.5)
                bid, ask = tape.publish(ts_trade + rng.randrange(200, 2_000), fair, reg.spreads)
            else:  # heavy tail (Pareto, alpha=1): most 0.01-2, about 1% above 5
                tape.trade(ts_trade, side, touch, (0.01 + 0.03 * rng.random()) / (1.0 - rng.random()))


@dataclass(frozen=True, slots=True)
class _Flow:
    """One regime of the ``one_sided`` scenario; ranges are drawn afresh each time it is entered."""

    sigma_bps: tuple[float, float]  # 1-s volatility of the fair price around its value
    drift_bps_30s: tuple[float, float]  # drift of the value per 30 s
    seconds: tuple[int, int]  # how long the regime lasts
    book_rate: float  # book updates per second
    trade_rate: float  # trades per second
    sell_share: float  # share of trades that are sells
    sweep_p: float  # share of trades that walk through the touch
    sweep_ticks: tuple[int, int]  # how many ticks a sweep walks through the touch
    impact: float  # share of a sweep's depth that stays in the fair price (1 = permanent)
    pull: float  # per-second pull of the fair price back to the value (book resilience)
    spreads: tuple[tuple[int, ...], tuple[float, ...]]  # spread in ticks, weights
    thin_bid: tuple[int, int] | None = None  # lots the bid shows (None: the quiet market's depth)
    bursts_per_s: float = 0.0  # rate at which selling bursts start (0: no bursts)
    burst_steps: tuple[int, int] = (0, 0)  # how long a burst lasts, in 100 ms steps
    burst_trade_rate: float = 0.0  # trades per second during a burst
    burst_sweep_p: float = 0.0  # share of a burst's trades that sweep; what stays moves the value


# Rates and sizes stay those of the quiet market: per-level sweep prints of 1-10 SOL, Pareto
# small prints, 6-12 book updates/s, a 1-2 tick spread. What changes is who trades and how deep:
# - calm: the quiet market's calm regime (permanent-impact sweeps of 1-5 ticks).
# - two_sided: balanced flow with more frequent (20 % of 3 trades/s) and deeper (4-12 ticks, 3-8
#   bps) sweeps that mostly revert (15 % stays; the book refills towards the value at 0.3/s): the
#   choppy two-way market in which a 7-13 bps quote gets filled on both sides.
# - liquidation: one-sided selling (a liquidation engine or an informed seller working a large
#   order; 85 % of trades are sells) that has eaten the bids. The bid shows 1-5 lots (0.001-0.005
#   SOL; a new level starts at 1-5, the same level refills one lot per book update) while the ask
#   keeps the quiet market's depth, and a sell at the touch prints no more than is shown. Between
#   bursts the flow is 4 trades/s with 2 % sweeps (the maker's bid, 5-10 ticks down, is rarely
#   reached); a burst starts about every 40 s and lasts 2-4 s at 5 trades/s, 40 % of them sweeps
#   of 4-10 ticks whose 30 % retained impact also moves the value: the price steps down a few
#   ticks per sweep, staying mostly under the trend filter's 10 bps per 30 s. A burst fills the
#   maker's bid two to four times (0.01 each); each sell hedge IOC then finds 1-5 lots at the
#   touch and the rest expires, so the hedger (a clip per 2 s) removes ~0.0015 SOL/s: 0.045 takes
#   15-20 s to get back under 0.02. The value drifts 2-5 bps per 30 s; the book refills at 0.5/s.
_FLOWS: dict[str, _Flow] = {
    "calm": _Flow((1.0, 2.0), (0.0, 0.0), (40, 120), 6.0, 1.5, 0.5, 0.03, (1, 5), 1.0, 0.0, ((1,), (1.0,))),
    "two_sided": _Flow(
        (1.0, 2.0), (0.0, 0.0), (60, 150), 8.0, 3.0, 0.5, 0.2, (4, 12), 0.15, 0.3, ((1, 2), (0.8, 0.2))
    ),
    "liquidation": _Flow(
        (0.8, 1.5),
        (-5.0, -2.0),
        (60, 120),
        12.0,
        4.0,
        0.85,
        0.02,
        (4, 10),
        0.3,
        0.5,
        ((1, 2), (0.7, 0.3)),
        thin_bid=(1, 5),
        bursts_per_s=1 / 40,
        burst_steps=(20, 40),
        burst_trade_rate=5.0,
        burst_sweep_p=0.4,
    ),  # fmt: skip
}
_FLOW_NEXT: dict[str, tuple[tuple[str, ...], tuple[float, ...]]] = {
    "calm": (("two_sided", "liquidation"), (0.5, 0.5)),
    "two_sided": (("liquidation", "calm"), (0.7, 0.3)),
    "liquidation": (("two_sided", "calm"), (0.8, 0.2)),
}


def _one_sided(tape: _Tape, seconds: float, start_us: int, start_px: Decimal) -> None:
    """Episodes of one-sided selling that keep sweeping the bid, between two-sided periods.

    A ``value`` level carries the regime's drift (with the quiet market's weak pull back to the
    start price); the fair price is noise around it, pulled back at ``pull`` per second, and
    kicked by sweeps, of which only ``impact`` stays. Fills for a maker come from prints that
    trade *through* its price (a sweep's deeper levels), not from at-price prints or the touch.
    In a liquidation the bid is thin (``thin_bid``) and the sweeps come in bursts whose impact
    also moves the value: the price steps down, and a sell IOC finds only a few lots at the touch.
    """
    rng, tick = tape.rng, tape.tick
    anchor = float((start_px / tick).to_integral_value())
    fair = value = anchor
    n_steps = int(seconds * 1_000_000) // _STEP_US
    name = "two_sided"
    reg = _FLOWS[name]
    sigma = drift = 0.0
    regime_left = burst_left = 0
    bid, ask = tape.publish(start_us, fair, reg.spreads, reg.thin_bid)
    for step in range(n_steps):
        if regime_left <= 0:
            if step:
                name = rng.choices(*_FLOW_NEXT[name])[0]
                reg = _FLOWS[name]
            regime_left = rng.randrange(reg.seconds[0], reg.seconds[1] + 1) * 1_000_000 // _STEP_US
            sigma = rng.uniform(*reg.sigma_bps)
            drift = rng.uniform(*reg.drift_bps_30s) / 30.0
            burst_left = 0
        regime_left -= 1
        if burst_left > 0:
            burst_left -= 1
        elif reg.bursts_per_s > 0.0 and rng.random() < reg.bursts_per_s * 0.1:
            burst_left = rng.randrange(reg.burst_steps[0], reg.burst_steps[1] + 1)
        burst = burst_left > 0
        bps = value / 10_000.0
        value += (drift * bps + (anchor - value) / 3600.0) * 0.1
        fair += (value - fair) * reg.pull * 0.1 + sigma * bps * math.sqrt(0.1) * _normal(rng)
        fair = max(fair, 1.0)
        rate, sweep_p = (reg.burst_trade_rate, reg.burst_sweep_p) if burst else (reg.trade_rate, reg.sweep_p)
        p_book, p_trade = reg.book_rate * _SLOT_US / 1e6, rate * _SLOT_US / 1e6
        t0 = start_us + step * _STEP_US
        for slot in range(_SLOTS_PER_STEP):
            ts = t0 + slot * _SLOT_US
            if rng.random() < p_book:
                bid, ask = tape.publish(ts + rng.randrange(_SLOT_US), fair, reg.spreads, reg.thin_bid)
            if rng.random() >= p_trade:
                continue
            ts_trade = ts + rng.randrange(_SLOT_US)
            side = "sell" if rng.random() < reg.sell_share else "buy"
            sign, touch = (1, ask) if side == "buy" else (-1, bid)
            # A sell meets a thin bid: it prints what is shown there, the rest walks deeper.
            shown = tape.bid_lots if side == "sell" and reg.thin_bid is not None else 0
            if rng.random() < sweep_p:
                k = rng.randrange(reg.sweep_ticks[0], reg.sweep_ticks[1] + 1)
                for level in range(k + 1):
                    tape.trade(
                        ts_trade,
                        side,
                        touch + sign * level,
                        1.0 + 9.0 * rng.random(),
                        shown if level == 0 else 0,
                    )
                kick = (touch + sign * (k + 0.5) - fair) * reg.impact
                fair += kick
                if reg.impact >= 1.0:
                    value = fair
                elif burst:
                    value += kick
                bid, ask = tape.publish(ts_trade + rng.randrange(200, 2_000), fair, reg.spreads, reg.thin_bid)
            else:
                sol = (0.01 + 0.03 * rng.random()) / (1.0 - rng.random())
                tape.trade(
                    ts_trade, side, touch, sol, min(shown, max(1, int(sol / tape.lot_f))) if shown else 0
                )


#: The named markets ``generate`` can simulate; ``DEFAULT_SCENARIO`` is the demo's.
SCENARIOS: dict[str, Callable[[_Tape, float, int, Decimal], None]] = {
    "one_sided": _one_sided,
    "quiet": _quiet,
}
DEFAULT_SCENARIO = "one_sided"


def generate(
    market: str = "synthetic:SYNTH-SOL",
    seconds: float = 1800.0,
    seed: int = 7,
    start_us: int = 1_767_225_600_000_000,
    start_px: Decimal = Decimal("150.00"),
    tick: Decimal = Decimal("0.01"),
    lot: Decimal = Decimal("0.001"),
    scenario: str = "quiet",
) -> list[BookTick | Trade]:
    """Simulate ``seconds`` of one market; events sorted by ``ts_recv`` (ties keep generation order).

    A latent fair price (float, in ticks) follows the scenario's regime-switching random walk; the
    published book is quantised around it. Trades print at the last published touch; a sweep
    prints at every level it walks through and moves the fair price with it. ``scenario`` names
    one of ``SCENARIOS`` (``quiet``, the historic default, or ``one_sided``).
    """
    try:
        run = SCENARIOS[scenario]
    except KeyError:
        raise ValueError(f"unknown scenario {scenario!r}, expected one of {sorted(SCENARIOS)}") from None
    tape = _Tape(random.Random(seed), market, start_us, tick, lot)
    run(tape, seconds, start_us, start_px)
    return tape.sorted_events()


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
