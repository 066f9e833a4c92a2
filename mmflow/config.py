"""One typed settings model for the whole product, with the analysis' numbers as defaults.

Sources, weakest first: the defaults below (the shipped markets included), a named preset, a YAML
file, ``MMFLOW_*`` environment variables, ``--set dotted.key=value`` overrides. Each merges onto the
ones before field by field, so a source that changes one fee or adds a market keeps the rest.
Environment names are case-insensitive with ``__`` between levels (``MMFLOW_STRATEGY__HEDGER__
TRIGGER_BASE=0.02``); a dict, model or tuple target takes JSON (``MMFLOW_MARKETS='{"binance:ETHUSDT":
{...}}'`` adds a market); an unknown ``MMFLOW_*`` name is an error, except the processes' own
``MMFLOW_RUN_*``, ``MMFLOW_API_KEY``, ``MMFLOW_API_SECRET`` and the exchange simulator's
``MMFLOW_EXCHANGE_SIM_API_SECRET``.

Markets are keyed by instrument id (``binance-futures:BTCUSDT``, see mmflow/instruments.py); each
may override part of the shared ``strategy`` section (``Settings.strategy_for``). Every number the
analysis (shared/seed/phase2-decision-analysis.md) gives is a default here verbatim; every number
it leaves open carries a one-line why. Validation fails at start with one line naming every
offending field, file or variable, and never prints a credential.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from mmflow.instruments import instrument_id as instrument_id  # re-exported: config is the entry point
from mmflow.instruments import split_instrument

Pos = Field(gt=0)


def _check_id(iid: str) -> str:
    split_instrument(iid)
    return iid


#: A market key: ``"<venue>:<symbol>"`` (see mmflow/instruments.py).
InstrumentId = Annotated[str, AfterValidator(_check_id)]


class _Section(BaseModel):
    # No inf/nan anywhere: an infinite refresh tolerance would send one quote ever, a NaN compares
    # false with everything and switches a rule off without a word.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class InstrumentSpec(_Section):
    """Exchange rules for one market; prices and sizes are rounded to these."""

    tick_size: Decimal = Field(gt=0)
    lot_size: Decimal = Field(gt=0)
    min_qty: Decimal = Field(gt=0)
    # Smallest order value in quote units the exchange accepts (0 = no such rule).
    min_notional: Decimal = Field(default=Decimal(0), ge=0)
    # Fee rates are fractions of notional; negative means a rebate.
    maker_fee_rate: Decimal = Field(default=Decimal("0.0002"), ge=Decimal("-0.01"), le=Decimal("0.01"))
    taker_fee_rate: Decimal = Field(default=Decimal("0.0005"), ge=Decimal("-0.01"), le=Decimal("0.01"))
    # A partial ``strategy`` section for this market only (same nesting, e.g.
    # ``{"hedger": {"trigger_base": "0.02"}}``): one product quotes SOL and BTC, whose quote-unit
    # thresholds differ by their price. Settings validates the merged result per market.
    strategy: dict[str, Any] = Field(default_factory=dict)


def _spec(
    tick: str,
    lot: str,
    fees: tuple[str, str],
    min_notional: str = "0",
    strategy: dict[str, Any] | None = None,
) -> InstrumentSpec:
    """A spec from the exchange's printed strings; the minimum quantity is one lot."""
    return InstrumentSpec(
        tick_size=Decimal(tick),
        lot_size=Decimal(lot),
        min_qty=Decimal(lot),
        min_notional=Decimal(min_notional),
        maker_fee_rate=Decimal(fees[0]),
        taker_fee_rate=Decimal(fees[1]),
        strategy=copy.deepcopy(strategy or {}),
    )


_USDM_FEES = ("0.0002", "0.0005")  # Binance USD-M regular tier (maker, taker)
_SPOT_FEES = ("0.001", "0.001")  # Binance spot regular tier: 10 bps either side
_BYBIT_FEES = ("0.0002", "0.00055")  # Bybit USDT perpetual regular tier
#: The analysis' own granularity: it reports 0.027 SOL positions and a 0.001 SOL hedge target, which
#: only a 0.001 lot can produce. Every SOL market keeps it although the exchange's real step is
#: coarser (Binance USD-M 1 in the recorded exchangeInfo, Bybit 0.1); the execution connector checks the
#: real filters at start.
_SOL_LOT = "0.001"

# The analysis' base-unit thresholds stay for BTC and ETH (their 0.001 lot makes 0.01 base ten lots);
# only quote-unit thresholds scale with the price.
# x100 the SOL-sized ones, as the BTC replay validated: one 0.01 BTC hedge's taker fee (~0.30) passes -0.20.
_BTC_STRATEGY = {
    "pnl_guard": {"trigger_quote": "-20", "clear_margin_quote": "5"},
    "safety": {"loss_limit_quote": "-500"},
}
# x20 the SOL-sized ones: ETH (~2.7k) is ~18x SOL's price (~150), so the same base size moves 20x the quote.
_ETH_STRATEGY = {
    "pnl_guard": {"trigger_quote": "-4", "clear_margin_quote": "1"},
    "safety": {"loss_limit_quote": "-100"},
}


def _default_markets() -> dict[str, InstrumentSpec]:
    return {
        # Tick 0.1 as the 2024-08 recording prints; step/min 0.001, min notional 5 as exchangeInfo gives.
        "binance-futures:BTCUSDT": _spec("0.1", "0.001", _USDM_FEES, "5", strategy=_BTC_STRATEGY),
        # Tick 0.01, step/min 0.001, min notional 5: the recorded exchangeInfo (2021-07-22).
        "binance-futures:ETHUSDT": _spec("0.01", "0.001", _USDM_FEES, "5", strategy=_ETH_STRATEGY),
        # Tick 0.01 and min notional 5 as listed today (2021's 0.001 tick was SOL at ~30); SOL lot.
        "binance-futures:SOLUSDT": _spec("0.01", _SOL_LOT, _USDM_FEES, "5"),
        # Binance spot filters: tick 0.01, step 0.00001, min notional 5.
        "binance:BTCUSDT": _spec("0.01", "0.00001", _SPOT_FEES, "5", strategy=_BTC_STRATEGY),
        # Binance spot filters: tick 0.01, step 0.0001, min notional 5.
        "binance:ETHUSDT": _spec("0.01", "0.0001", _SPOT_FEES, "5", strategy=_ETH_STRATEGY),
        # Binance spot filters: tick 0.01, step 0.001 (which is also the analysis' SOL lot), min notional 5.
        "binance:SOLUSDT": _spec("0.01", _SOL_LOT, _SPOT_FEES, "5"),
        # Bybit instrument info: tick 0.1, qtyStep 0.001.
        "bybit:BTCUSDT": _spec("0.1", "0.001", _BYBIT_FEES, strategy=_BTC_STRATEGY),
        # Bybit instrument info: tick 0.01, qtyStep 0.01.
        "bybit:ETHUSDT": _spec("0.01", "0.01", _BYBIT_FEES, strategy=_ETH_STRATEGY),
        # Bybit instrument info: tick 0.010 (the recorded SOL file's); SOL lot instead of qtyStep 0.1.
        "bybit:SOLUSDT": _spec("0.01", _SOL_LOT, _BYBIT_FEES),
        # FTX spot (Tardis symbol SOL/USD): tick 0.0025, fees 2/7 bps (tier 1); SOL lot.
        "ftx:SOL/USD": _spec("0.0025", _SOL_LOT, ("0.0002", "0.0007")),
        # The demo's synthetic market: today's SYNTH-SOL numbers (SOL tick, SOL lot, USD-M fees).
        "synthetic:SYNTH-SOL": _spec("0.01", _SOL_LOT, _USDM_FEES),
    }


class QuotingConfig(_Section):
    # 0.01 base: one full-size fill is about the hedger's trigger, so a single fill is the most the
    # maker adds before the inventory rules (and the hedger) take over.
    base_size: Decimal = Field(default=Decimal("0.01"), gt=0)
    # Re-send a quote only when a price moves by at least this much: 1 bps keeps the intent rate
    # near what an exchange's rate limits allow without letting a quote drift a full tick stale.
    refresh_tolerance_bps: float = Field(default=1.0, ge=0)
    # Size changes smaller than this fraction are not worth a cancel/replace.
    refresh_size_tolerance: float = Field(default=0.05, ge=0, le=1)


class PnlGuardConfig(_Section):
    enabled: bool = True
    trigger_quote: Decimal = Decimal("-0.20")  # analysis: triggers at -$0.20
    widen_bps: float = Field(default=6.0, ge=0)  # analysis: +6 bps
    size_mult: float = Field(default=0.85, gt=0, le=1)  # analysis: x0.85
    # Hysteresis against the guard/clear/guard flapping the analysis saw: clear only once PnL is
    # 0.05 quote above the trigger and the guard has held for 30 s (a volatility window's length).
    clear_margin_quote: Decimal = Field(default=Decimal("0.05"), ge=0)
    min_hold_s: float = Field(default=30.0, ge=0)


class VolatilityConfig(_Section):
    # The mid is sampled once per second of event time: 1 s returns are what a 7-13 bps quote
    # has to survive between refreshes.
    sample_interval_s: float = Field(default=1.0, gt=0)
    # 60 samples = one minute: long enough for a stable estimate, short enough to react within
    # one trend cooldown.
    window: int = Field(default=60, ge=2, le=10_000)
    # Quote only once five returns are in: a spread sized from fewer is noise.
    min_returns: int = Field(default=5, ge=2, le=10_000)

    @model_validator(mode="after")
    def _reachable(self) -> VolatilityConfig:
        # The window holds that many returns: asking for more than it holds never quotes.
        if self.min_returns > self.window:
            raise ValueError(f"min_returns ({self.min_returns}) must be <= window ({self.window})")
        return self


class RegimeConfig(_Section):
    enabled: bool = True
    threshold_bps: float = Field(default=6.0, gt=0)  # analysis: 6.0 bps; above is defensive (0)
    # What "defensive" means is left open: +2 bps on top of the volatility spread, a third of the
    # 7-13 bps range, so the switch is visible but never dominates the volatility curve.
    defensive_widen_bps: float = Field(default=2.0, ge=0)


class TrendConfig(_Section):
    enabled: bool = True
    cooldown_s: float = Field(default=60.0, gt=0)  # analysis: 60 s
    widen_bps: float = Field(default=8.0, ge=0)  # analysis: 8 bps
    pause_bids: bool = True  # analysis: bid pause
    # Detector (left open): the mid fell by at least 10 bps over the last 30 s of samples. 10 bps
    # is above the 7 bps minimum spread, i.e. a move that would run through a resting bid.
    lookback_s: float = Field(default=30.0, gt=0)
    drop_bps: float = Field(default=10.0, gt=0)


class SpreadConfig(_Section):
    enabled: bool = True
    # Full quoted width (bid to ask) in bps; each side sits half of it from the mid.
    min_bps: float = Field(default=7.0, gt=0)  # analysis: 7-13 bps
    max_bps: float = Field(default=13.0, gt=0)
    size_mult_low_vol: float = Field(default=1.1, gt=0)  # analysis: 1.1 .. 0.7
    size_mult_high_vol: float = Field(default=0.7, gt=0)
    # The curve runs linearly between these volatilities (left open): 1 bps is a quiet 1 s
    # market, 12 bps twice the regime threshold, where the widest spread clearly belongs.
    vol_low_bps: float = Field(default=1.0, ge=0)
    vol_high_bps: float = Field(default=12.0, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> SpreadConfig:
        if self.min_bps > self.max_bps:
            raise ValueError("min_bps must be <= max_bps")
        if self.vol_low_bps >= self.vol_high_bps:
            raise ValueError("vol_low_bps must be < vol_high_bps")
        return self


class HedgerConfig(_Section):
    enabled: bool = True
    trigger_base: Decimal = Field(default=Decimal("0.010"), gt=0)  # analysis: 0.010
    target_base: Decimal = Field(default=Decimal("0.001"), ge=0)  # analysis: 0.001
    max_clip_base: Decimal = Field(default=Decimal("0.03"), gt=0)  # analysis: 0.03
    cooldown_s: float = Field(default=2.0, ge=0)  # analysis: 2.0 s
    # Limit price of the IOC: the touch plus 5 bps, enough to absorb one tick of slippage on
    # SOL while refusing to chase a book that moved away.
    max_slippage_bps: float = Field(default=5.0, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> HedgerConfig:
        if self.target_base >= self.trigger_base:
            raise ValueError("target_base must be < trigger_base")
        return self


class InventoryConfig(_Section):
    soft_cap_enabled: bool = True
    soft_cap_base: Decimal = Field(default=Decimal("0.05"), gt=0)  # analysis: 0.05
    # Size on the side that would add to the position above the soft cap (left open): halve it.
    soft_cap_size_mult: float = Field(default=0.5, gt=0, le=1)
    asymmetric_enabled: bool = True
    asymmetric_base: Decimal = Field(default=Decimal("0.01"), gt=0)  # analysis: 0.01
    spread_bonus_enabled: bool = True
    # (threshold, bps) tiers, strictly above the threshold. Analysis: 0.01/0.02/0.03 -> 2/4/6.
    spread_bonus_tiers: tuple[tuple[Decimal, float], ...] = (
        (Decimal("0.01"), 2.0),
        (Decimal("0.02"), 4.0),
        (Decimal("0.03"), 6.0),
    )
    size_reduction_enabled: bool = True
    # Analysis: x0.75 above 0.01, x0.5 above 0.02.
    size_reduction_tiers: tuple[tuple[Decimal, float], ...] = (
        (Decimal("0.01"), 0.75),
        (Decimal("0.02"), 0.5),
    )

    @model_validator(mode="after")
    def _tiers(self) -> InventoryConfig:
        for name in ("spread_bonus_tiers", "size_reduction_tiers"):
            levels = [t for t, _ in getattr(self, name)]
            if levels != sorted(levels) or any(t < 0 for t in levels):
                raise ValueError(f"{name} thresholds must be non-negative and ascending")
        # A negative bonus would narrow the spread exactly when the position is largest.
        negative = [bps for _, bps in self.spread_bonus_tiers if bps < 0]
        if negative:
            raise ValueError(f"spread_bonus_tiers bps must be non-negative, got {negative}")
        return self


class SafetyConfig(_Section):
    """Protections beyond the analysis: never quote blind, never grow without bound."""

    stale_enabled: bool = True
    # Five missed 1 s volatility samples: a book older than that is not one to quote on.
    stale_after_s: float = Field(default=5.0, gt=0, le=3600)
    position_limit_enabled: bool = True
    # Twice the soft cap: the soft cap shrinks the adding side, the hard limit removes it.
    max_position_base: Decimal = Field(default=Decimal("0.10"), gt=0)
    loss_limit_enabled: bool = True
    # 25 PnL-guard triggers deep: far past "widen and shrink", the market needs a person.
    loss_limit_quote: Decimal = Field(default=Decimal("-5.0"), lt=0)
    # Remember this many recent trade ids (and ids that are not ``<stream>-<seq>``) to refuse
    # duplicates. Our own intent and fill ids are checked exactly, by a high-water mark per
    # incarnation (mmflow/ids.py). Duplicates come from a producer's retry or a resumed source,
    # seconds apart; 256 covers that with room to spare and keeps a market's state small.
    dedup_window: int = Field(default=256, ge=16, le=100_000)
    reconcile_enabled: bool = True
    # The in-flight window: a position the venue published may count a fill the flow has not
    # consumed yet. A mismatch above one lot that outlives 3 s (two of the venue's periodic
    # reports) is real, not in flight: the market halts until an operator resumes it.
    reconcile_grace_s: float = Field(default=3.0, gt=0, le=3600)
    # A record stamped this far ahead of the wall clock cannot have been received yet: refused
    # before it can move its market's clock (recorded data, years behind, is unaffected).
    max_future_s: float = Field(default=5.0, gt=0, le=86_400)


class StrategyConfig(_Section):
    quoting: QuotingConfig = QuotingConfig()
    pnl_guard: PnlGuardConfig = PnlGuardConfig()
    volatility: VolatilityConfig = VolatilityConfig()
    regime: RegimeConfig = RegimeConfig()
    trend: TrendConfig = TrendConfig()
    spreads: SpreadConfig = SpreadConfig()
    hedger: HedgerConfig = HedgerConfig()
    inventory: InventoryConfig = InventoryConfig()
    safety: SafetyConfig = SafetyConfig()

    @model_validator(mode="after")
    def _below_hard_limit(self) -> StrategyConfig:
        """The soft cap and the hedger must act before the hard limit, or they never act at all."""
        hard = self.safety.max_position_base
        earlier = {
            "inventory.soft_cap_base": self.inventory.soft_cap_base,
            "hedger.trigger_base": self.hedger.trigger_base,
        }
        problems = [
            f"{name} ({value}) must be below safety.max_position_base ({hard})"
            for name, value in earlier.items()
            if value >= hard
        ]
        if problems:
            raise ValueError("; ".join(problems))
        return self


class LatencyConfig(_Section):
    """How long the venue takes: each order entry, cancel and report draws its own latency.

    ``constant`` is every draw at its base. ``spiky`` adds, per draw, a uniform jitter in
    [0, ``jitter_ms``) and, with ``spike_probability``, a spike of ``spike_ms``: a cloud link's
    usual wobble and its occasional stall. Draws are a hash of ``seed`` and the order's id, so a
    replay makes the same draws whatever the batching, the workers or a restart.
    """

    model: Literal["constant", "spiky"] = "constant"
    # 50 ms order entry and cancel latency: a typical co-located-less cloud round trip.
    order_ms: float = Field(default=50.0, ge=0, le=60_000)
    cancel_ms: float = Field(default=50.0, ge=0, le=60_000)
    # From the venue's event (a fill, an acceptance) to the flow learning of it.
    report_ms: float = Field(default=0.0, ge=0, le=60_000)
    jitter_ms: float = Field(default=20.0, ge=0, le=60_000)
    spike_probability: float = Field(default=0.02, ge=0, le=1)
    spike_ms: float = Field(default=500.0, ge=0, le=60_000)
    seed: int = Field(default=0, ge=0)


class QueueConfig(_Section):
    """Where a resting order stands in its price level's queue (connectors/paper_venue.py).

    ``back`` (the default: pessimistic where the truth is unknown) puts an order behind all the
    size shown at its price when it joins, or when the level is first seen if it was not shown;
    prints at its price fill it only after that size has traded, and the level shrinking below
    it moves it up. ``probabilistic`` also credits it with a share of the level's cancellations,
    larger the more of the level is ahead of it (the share is front^p / (front^p + back^p)).
    ``front`` is the optimistic bound: first in line as soon as it is live, taking
    ``at_price_fill_ratio`` of each print at its price.
    """

    model: Literal["front", "back", "probabilistic"] = "back"
    at_price_fill_ratio: Decimal = Field(default=Decimal("1"), ge=0, le=1)
    power: int = Field(default=2, ge=1, le=8)


class FeeTier(_Section):
    """A fee tier: from ``min_volume_quote`` of traded notional (the 30 days before the run
    plus the run's own), these rates. A negative maker rate is a rebate."""

    min_volume_quote: Decimal = Field(ge=0)
    maker_rate: Decimal = Field(gt=-1, lt=1)
    taker_rate: Decimal = Field(gt=-1, lt=1)


class FeeConfig(_Section):
    """``instrument``: each market's own maker/taker rates (InstrumentSpec). ``tiered``: the
    tiers here, the highest reached by ``volume_30d_quote`` plus the run's traded notional."""

    model: Literal["instrument", "tiered"] = "instrument"
    tiers: tuple[FeeTier, ...] = ()
    volume_30d_quote: Decimal = Field(default=Decimal(0), ge=0)

    @model_validator(mode="after")
    def _tiers_given(self) -> FeeConfig:
        if self.model == "tiered" and not self.tiers:
            raise ValueError("tiers: the tiered fee model needs at least one tier")
        floors = [t.min_volume_quote for t in self.tiers]
        if floors != sorted(set(floors)):
            raise ValueError("tiers: min_volume_quote must rise strictly from tier to tier")
        return self


class VenueConfig(_Section):
    """The paper venue's assumptions, each a model chosen here (mmflow/sim/)."""

    latency: LatencyConfig = LatencyConfig()
    queue: QueueConfig = QueueConfig()
    fees: FeeConfig = FeeConfig()


class ReplayConfig(_Section):
    # One timeline row per market per second of event time: 6 minutes of BTC stay ~400 rows.
    timeline_interval_s: float = Field(default=1.0, gt=0)
    # Events handed to the flow per batch; any value gives identical outputs (tested).
    batch_size: int = Field(default=1024, ge=1, le=1_000_000)
    workers: int = Field(default=1, ge=1, le=64)
    # Mark-out horizons of our fills (mmflow/markouts.py): 1 s is the quote's own life, 5 s a few
    # refreshes, 30 s the trend filter's window. Strictly increasing, whole microseconds.
    markout_horizons_s: tuple[Decimal, ...] = (Decimal(1), Decimal(5), Decimal(30))
    # The horizon the PnL attribution charges adverse selection at (one of the above): 5 s, long
    # enough for the information in a fill to show in the mid, short of the inventory's own drift.
    attribution_horizon_s: Decimal = Decimal(5)

    @model_validator(mode="after")
    def _horizons(self) -> ReplayConfig:
        hs = self.markout_horizons_s
        if not hs or len(hs) > 16:
            raise ValueError("markout_horizons_s must list 1 to 16 horizons")
        for h in hs:
            if not h.is_finite() or h <= 0 or h > 86_400 or (h * 1_000_000) % 1:
                raise ValueError(
                    f"markout_horizons_s: {h} is not a positive whole number of microseconds <= 1 day"
                )
        if list(hs) != sorted(set(hs)):
            raise ValueError(f"markout_horizons_s must be strictly increasing: {[str(h) for h in hs]}")
        if self.attribution_horizon_s not in hs:
            raise ValueError(
                f"attribution_horizon_s ({self.attribution_horizon_s}) must be one of markout_horizons_s"
            )
        return self


class KafkaConfig(_Section):
    bootstrap_servers: str = "127.0.0.1:9092"
    market_data_topic: str = "mmflow.marketdata"
    fills_topic: str = "mmflow.fills"
    intents_topic: str = "mmflow.intents"
    dead_letter_topic: str = "mmflow.deadletter"
    control_topic: str = "mmflow.control"
    # The execution side's position per market, for the flow's reconciliation.
    positions_topic: str = "mmflow.positions"
    # Each order's life as the execution side reports it (accepted, rejected, cancelled, ...).
    orders_topic: str = "mmflow.orders"
    # The execution side reports order updates there (the paper venue and the exchange connector
    # do): the flow counts what is out (hedges in flight, the worst-case limit). False for one that
    # reports fills only: the flow then counts the position alone.
    order_reports: bool = True
    # The paper venue's state, committed in the same transaction as its fills and offsets.
    venue_state_topic: str = "mmflow.venue.state"
    state_topic: str = "mmflow.state"
    group_id: str = "mmflow"
    # Passed through to librdkafka verbatim (security.protocol, sasl.*, ssl.*, ...).
    extra: dict[str, str] = Field(default_factory=dict)


class MetricsConfig(_Section):
    # The port is a command-line option (--metrics-port); process i of a cluster adds i to it.
    # Loopback by default (nothing exposed by accident); containers set 0.0.0.0.
    host: str = "127.0.0.1"


def _apply_override(shared: StrategyConfig, override: dict[str, Any]) -> StrategyConfig:
    """``shared`` deep-merged with a partial override; the shared object itself when there is none."""
    if not override:
        return shared
    return StrategyConfig.model_validate(deep_merge(shared.model_dump(), override))


def _market_problems(market: str, err: ValidationError) -> list[str]:
    """One message per error, named by its full dotted path from the settings' root."""
    return [
        f"{_dotted(('markets', market, 'strategy', *e['loc']))}: {_message(e)}"
        for e in err.errors(include_url=False)
    ]


class Settings(BaseSettings):
    """The whole configuration; build it with load_settings, which merges every source first."""

    model_config = SettingsConfigDict(extra="forbid", frozen=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # load_settings merges defaults < preset < YAML < StrictEnvSource < --set itself (a
        # market the YAML adds must be known before the environment names one), and hands the
        # result in as init data: no source may read anything behind its back.
        return (init_settings,)

    preset: Literal["phase1", "phase2", "custom"] = "phase2"
    markets: dict[InstrumentId, InstrumentSpec] = Field(default_factory=_default_markets)
    strategy: StrategyConfig = StrategyConfig()
    venue: VenueConfig = VenueConfig()
    replay: ReplayConfig = ReplayConfig()
    kafka: KafkaConfig = KafkaConfig()
    metrics: MetricsConfig = MetricsConfig()
    # market -> (shared strategy, spec, effective strategy) it was built from; see strategy_for.
    _effective: dict[str, tuple[StrategyConfig, InstrumentSpec, StrategyConfig]] = PrivateAttr(
        default_factory=dict
    )

    @model_validator(mode="after")
    def _market_strategies(self) -> Settings:
        """Build every market's strategy now: a bad per-market override must fail at start."""
        problems: list[str] = []
        for market, spec in self.markets.items():
            try:
                clip = self.strategy_for(market).hedger.max_clip_base
            except ValidationError as err:
                problems.extend(_market_problems(market, err))
                continue
            if clip < spec.lot_size:  # a clip below one lot rounds every hedge to zero
                problems.append(
                    f"markets.{market}: strategy.hedger.max_clip_base ({clip}) must be >= lot_size "
                    f"({spec.lot_size})"
                )
        if problems:
            raise PydanticCustomError("market_strategy", "{problems}", {"problems": "; ".join(problems)})
        return self

    def spec(self, market: str) -> InstrumentSpec:
        """The exchange rules of ``market``; KeyError naming it if it is not configured."""
        try:
            return self.markets[market]
        except KeyError:
            raise KeyError(f"market {market!r} has no instrument spec in settings.markets") from None

    def strategy_for(self, market: str) -> StrategyConfig:
        """The shared strategy with ``market``'s partial override applied, built once per instance.

        The cache remembers what each entry was built from, so a ``model_copy(update=...)`` that
        swaps the strategy or a spec rebuilds instead of returning a stale config.
        """
        spec = self.spec(market)
        hit = self._effective.get(market)
        if hit is not None and hit[0] is self.strategy and hit[1] is spec:
            return hit[2]
        effective = _apply_override(self.strategy, spec.strategy)
        self._effective[market] = (self.strategy, spec, effective)
        return effective


#: Phase 1 runs the six systems already live plus FIFO accounting (issue systems 1-7); phase 2
#: adds the analysis' three missing pieces.
PRESETS: dict[str, dict[str, Any]] = {
    "phase1": {
        "preset": "phase1",
        "strategy": {
            "inventory": {
                "asymmetric_enabled": False,
                "spread_bonus_enabled": False,
                "size_reduction_enabled": False,
            }
        },
    },
    "phase2": {"preset": "phase2"},
}


class ConfigError(ValueError):
    """Bad configuration; the message names the field and the allowed range."""


def deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """Dicts merge key by key, anything else replaces: a source changes only what it names."""
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_set(items: list[str] | None) -> dict[str, Any]:
    """Turn ``a.b.c=value`` strings into a nested dict, splitting keys along the schema.

    Values are YAML scalars (a str setting keeps its text, a decimal its digits). A free-form key
    stays whole (``kafka.extra.sasl.password``) and a market id ends where its spec's fields begin.
    """
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            # Name the key only: what follows '=' may be a secret.
            raise ConfigError(f"--set expects dotted.key=value, got {key or 'an empty key'!r}")
        path, leaf = _set_path(key)
        _put(out, path, _set_value(key, raw, leaf), f"--set {key}")
    return out


def _set_value(key: str, raw: str, leaf: Any) -> Any:
    if leaf is _STRING or not raw.strip():
        return raw
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as err:
        raise ConfigError(f"--set {key}: invalid value: {_yaml_problem(err)}") from None
    # Keep decimals exact: YAML floats would round-trip through binary.
    return raw.strip() if isinstance(value, float) else value


def _put(tree: dict[str, Any], path: list[str], value: Any, source: str) -> None:
    node = tree
    for part in path[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{source}: {'.'.join(path)} goes below a value set before")
    node[path[-1]] = value


# -- the schema, as a path walker sees it --------------------------------------------------------


@dataclass(frozen=True)
class _Keyed:
    """A ``dict[str, X]`` with a schema: the next part of a path is a key, then ``value`` follows."""

    value: Any


_FREE = "free-form dict"  # dict[str, str]: the rest of a path, dots included, is one key
_STRING = "string"  # a str leaf: taken as text, never parsed
_JSON = "json"  # a tuple or list leaf: given as JSON in the environment
_SCALAR = "scalar"  # numbers, bools, literals: parsed by the model from their text


def _node(annotation: Any) -> Any:
    """What a field's type is to a path: a model, a keyed dict, or a kind of leaf."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = get_origin(annotation)
    if origin is dict:
        value = get_args(annotation)[1]
        return _FREE if value is str else _Keyed(_node(value))
    if origin in (tuple, list):
        return _JSON
    return _STRING if annotation is str else _SCALAR


def _field_node(model: type[BaseModel], name: str) -> Any:
    if model is InstrumentSpec and name == "strategy":
        return StrategyConfig  # a partial strategy section has the strategy's structure
    return _node(model.model_fields[name].annotation)


def _is_model(node: Any) -> bool:
    return isinstance(node, type) and issubclass(node, BaseModel)


def _set_path(key: str) -> tuple[list[str], Any]:
    """The parts of a dotted --set key and the node it ends on; unknown names split plainly (the
    model then rejects them by name)."""
    parts, node, out, i = key.split("."), Settings, [], 0
    while i < len(parts):
        if node is _FREE:
            return [*out, ".".join(parts[i:])], _STRING
        if isinstance(node, _Keyed):
            end = next((j for j in range(i + 1, len(parts)) if _has_field(node.value, parts[j])), len(parts))
            out.append(".".join(parts[i:end]))
            node, i = node.value, end
            continue
        name = parts[i]
        out.append(name)
        i += 1
        if not _has_field(node, name):
            return out + parts[i:], _SCALAR
        node = _field_node(node, name)
    return out, node


def _has_field(node: Any, name: str) -> bool:
    return _is_model(node) and name in node.model_fields


# -- sources -------------------------------------------------------------------------------------


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read: {err}") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: invalid YAML: {_yaml_problem(err)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    return data


def _yaml_problem(err: yaml.YAMLError) -> str:
    """The parser's problem and line, without the snippet of text it would quote."""
    problem = getattr(err, "problem", None) or type(err).__name__
    mark = getattr(err, "problem_mark", None)
    return f"{problem} (line {mark.line + 1})" if mark is not None else problem


ENV_PREFIX = "MMFLOW_"
#: Variables the processes read themselves (run ids and dirs, exchange credentials): not settings.
_ENV_RESERVED_PREFIX = "MMFLOW_RUN_"
_ENV_RESERVED = frozenset({"MMFLOW_API_KEY", "MMFLOW_API_SECRET", "MMFLOW_EXCHANGE_SIM_API_SECRET"})


def _is_setting_variable(name: str) -> bool:
    upper = name.upper()
    return (
        upper.startswith(ENV_PREFIX)
        and not upper.startswith(_ENV_RESERVED_PREFIX)
        and upper not in _ENV_RESERVED
    )


class StrictEnvSource(PydanticBaseSettingsSource):
    """The ``MMFLOW_*`` environment as a pydantic-settings source, stricter than the stock one:
    an unknown name is an error naming it, market keys keep their case, and JSON errors name
    the variable. ``base`` is the data merged so far (it tells which markets exist)."""

    def __init__(self, base: dict[str, Any]) -> None:
        super().__init__(Settings)
        self._base = base

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # everything comes through __call__

    def __call__(self) -> dict[str, Any]:
        return _env_values(self._base)


def _env_values(base: dict[str, Any]) -> dict[str, Any]:
    """``MMFLOW_*`` variables as a nested dict onto ``base`` (the data so far), unvalidated: they are
    checked with the rest. ``__`` separates levels, names are case-insensitive, a value whose
    target is a dict, model or tuple is JSON, and scalars stay text so decimals stay exact."""
    values: dict[str, Any] = {}
    problems: list[str] = []
    # Shallow names first: a market MMFLOW_MARKETS adds can then take MMFLOW_MARKETS__<id>__... ones.
    for name in sorted(filter(_is_setting_variable, os.environ), key=lambda n: (n.count("__"), n)):
        try:
            existing = deep_merge(base, values)
            path, node = _env_path(name, existing)
            _put(values, path, _env_value(name, os.environ[name], node, _at(existing, path)), name)
        except ConfigError as err:
            problems.append(str(err))
    if problems:
        raise ConfigError("; ".join(problems))
    return values


def _env_path(name: str, existing: dict[str, Any]) -> tuple[list[str], Any]:
    """The settings path a variable names and the node it ends on, or ConfigError naming it."""
    parts = name[len(ENV_PREFIX) :].split("__")
    node: Any = Settings
    out: list[str] = []
    for i, part in enumerate(parts):
        if node is _FREE:
            return [*out, "__".join(parts[i:]).lower()], _STRING
        if isinstance(node, _Keyed):
            key = _match_key(part, _at(existing, out))
            if key is None:
                raise ConfigError(
                    f"{name}: unknown market {part.lower()!r} (add one with {ENV_PREFIX}MARKETS as JSON)"
                )
            out.append(key)
            node = node.value
            continue
        if not _has_field(node, part.lower()):
            raise ConfigError(f"{name}: unknown setting")
        out.append(part.lower())
        node = _field_node(node, part.lower())
    return out, node


def _env_value(name: str, raw: str, node: Any, current: Any) -> Any:
    if node in (_STRING, _SCALAR):
        return raw
    try:
        value = json.loads(raw, parse_float=Decimal)  # Decimal: 0.0001 stays 0.0001
    except json.JSONDecodeError as err:
        raise ConfigError(f"{name}: invalid JSON: {err}") from None
    if isinstance(node, _Keyed) and isinstance(value, dict):
        # JSON keys that only differ in case from an existing market update that market.
        value = {_match_key(k, current) or k: v for k, v in value.items()}
    return value


def _at(tree: dict[str, Any], path: list[str]) -> Any:
    for part in path:
        tree = tree.get(part, {}) if isinstance(tree, dict) else {}
    return tree


def _match_key(key: str, existing: Any) -> str | None:
    """The existing dict key equal to ``key`` but for case (environment names lose their case)."""
    keys = existing if isinstance(existing, dict) else {}
    return next((k for k in keys if k.lower() == key.lower()), None)


def _defaults() -> dict[str, Any]:
    """The shipped defaults as plain data, default markets included: every source merges onto
    them field by field, so a YAML that adds a market or changes one fee keeps everything else."""
    return Settings.model_construct().model_dump()


def _preset(name: str | None) -> dict[str, Any]:
    if name is None:
        return {}
    if not isinstance(name, str) or name not in PRESETS:
        raise ConfigError(f"preset: unknown {name!r}, expected one of {sorted(PRESETS)}")
    return PRESETS[name]


def load_settings(
    preset: str | None = None,
    config_file: str | Path | None = None,
    overrides: list[str] | dict[str, Any] | None = None,
) -> Settings:
    """Build the settings from defaults < preset < YAML < environment < overrides, or raise
    ConfigError with a one-line message naming the file, field or variable at fault."""
    file_data = _read_yaml(Path(config_file)) if config_file is not None else {}
    # Presets touch no market, so the environment can resolve its market names before one is chosen.
    env_data = StrictEnvSource(deep_merge(_defaults(), file_data))()
    set_data = overrides if isinstance(overrides, dict) else parse_set(overrides)
    # A source that names a preset gets that preset's switches, not just its label.
    named = [preset, set_data.get("preset"), env_data.get("preset"), file_data.get("preset")]
    data = deep_merge(_defaults(), _preset(next((n for n in named if n is not None), None)))
    for source in (file_data, env_data, set_data):
        data = deep_merge(data, source)
    try:
        return Settings.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_describe(err)) from None


# -- messages ------------------------------------------------------------------------------------

#: A field whose dotted path holds one of these carries credentials: its value is never printed.
_SECRET_WORDS = ("password", "secret", "token", "key", "sasl")


def _describe(err: ValidationError) -> str:
    """All problems on one line (logs and a CLI's stderr keep them together)."""
    return "invalid configuration: " + "; ".join(_problem(e) for e in err.errors(include_url=False))


def _problem(e: Any) -> str:
    loc = tuple(e["loc"])
    if not loc:  # a check over the whole settings: its message names its fields
        return _message(e)
    if loc[-1] == "[key]":  # a bad dict key: the key is the value, and is in the name already
        return f"{_dotted(loc[:-1])} (key): {_message(e)}"
    return f"{_dotted(loc)}: {_message(e)}{_shown(_dotted(loc), e.get('input'))}"


def _shown(dotted: str, value: Any) -> str:
    """`` (got ...)`` for plain values; never for credentials or kafka.extra, and nothing for whole
    sections (long, and a section's dict may carry a credential under an innocent name)."""
    lowered = dotted.lower()
    if lowered.startswith("kafka.extra") or any(w in lowered for w in _SECRET_WORDS):
        return " (value hidden)"
    return "" if _has_mapping(value) else f" (got {value!r})"


def _has_mapping(value: Any) -> bool:
    if isinstance(value, dict):
        return True
    return isinstance(value, list | tuple) and any(_has_mapping(v) for v in value)


def _dotted(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc)


def _message(e: Any) -> str:
    return str(e["msg"]).removeprefix("Value error, ")
