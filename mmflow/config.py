"""One typed settings model for the whole product, with the analysis' numbers as defaults.

Sources, strongest first: ``--set dotted.key=value`` overrides, ``MMFLOW_*`` environment variables
(nested with ``__``, e.g. ``MMFLOW_STRATEGY__HEDGER__TRIGGER_BASE=0.02``), a YAML file, a named
preset, the defaults below. Every number the analysis (shared/seed/phase2-decision-analysis.md)
gives is a default here verbatim; every number it leaves open carries a one-line why.
Validation fails at start with the dotted name of the offending field.
"""

from __future__ import annotations

import copy
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

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
#: coarser (Binance USD-M 1, Bybit 0.1, FTX 0.01); the execution connector checks the real filters.
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
    # Remember this many recent fill, trade and intent ids to refuse duplicates. Duplicates come
    # from a producer's retry or a resumed source, seconds apart; 256 covers that with room to
    # spare and keeps a market's state near 25 KB (each id costs ~20 bytes per window).
    dedup_window: int = Field(default=256, ge=16, le=100_000)


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


class VenueConfig(_Section):
    """The paper venue (see connectors/paper_venue.py for the queue assumption)."""

    # 50 ms order entry and cancel latency: a typical co-located-less cloud round trip.
    order_latency_ms: float = Field(default=50.0, ge=0)
    cancel_latency_ms: float = Field(default=50.0, ge=0)
    # Share of a public trade at exactly our price that we take (1.0 = front of queue; quotes are
    # posted several bps from the touch, so they normally join a level before it becomes the touch).
    at_price_fill_ratio: Decimal = Field(default=Decimal("1"), ge=0, le=1)


class ReplayConfig(_Section):
    # One timeline row per market per second of event time: 6 minutes of BTC stay ~400 rows.
    timeline_interval_s: float = Field(default=1.0, gt=0)
    # Events handed to the flow per batch; any value gives identical outputs (tested).
    batch_size: int = Field(default=1024, ge=1, le=1_000_000)
    workers: int = Field(default=1, ge=1, le=64)


class KafkaConfig(_Section):
    bootstrap_servers: str = "127.0.0.1:9092"
    market_data_topic: str = "mmflow.marketdata"
    fills_topic: str = "mmflow.fills"
    intents_topic: str = "mmflow.intents"
    dead_letter_topic: str = "mmflow.deadletter"
    control_topic: str = "mmflow.control"
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
    model_config = SettingsConfigDict(
        env_prefix="MMFLOW_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

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

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # init carries preset + YAML + --set already merged in the right order (see load_settings),
        # environment variables sit between YAML and --set.
        return (init_settings, env_settings)


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
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_set(items: list[str] | None) -> dict[str, Any]:
    """Turn ``a.b.c=value`` strings into a nested dict; values are parsed as YAML scalars."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects dotted.key=value, got {item!r}")
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        value = yaml.safe_load(raw) if raw.strip() else raw
        # Keep decimals exact: YAML floats would round-trip through binary.
        node[parts[-1]] = raw.strip() if isinstance(value, float) else value
    return out


def _read_yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    return data


def _env_values() -> dict[str, Any]:
    """``MMFLOW_*`` variables as a nested dict, unvalidated: they are checked with the rest."""
    from pydantic_settings import EnvSettingsSource

    return EnvSettingsSource(Settings)()


def _defaults() -> dict[str, Any]:
    """The shipped defaults as plain data, default markets included: every source merges onto
    them field by field, so a YAML that adds a market or changes one fee keeps everything else."""
    return Settings.model_construct().model_dump()


def load_settings(
    preset: str | None = None,
    config_file: str | Path | None = None,
    overrides: list[str] | dict[str, Any] | None = None,
) -> Settings:
    """Build the settings from preset < YAML < environment < overrides, or raise ConfigError."""
    file_data = _read_yaml(Path(config_file)) if config_file is not None else {}
    # A YAML that names a preset gets that preset's switches, not just its label.
    preset = preset or file_data.get("preset")
    data = _defaults()
    if preset is not None:
        if preset not in PRESETS:
            raise ConfigError(f"preset: unknown {preset!r}, expected one of {sorted(PRESETS)}")
        data = deep_merge(data, PRESETS[preset])
    data = deep_merge(data, file_data)
    set_data = overrides if isinstance(overrides, dict) else parse_set(overrides)
    try:
        data = deep_merge(data, _env_values())
        return Settings(**deep_merge(data, set_data))
    except ValidationError as err:
        raise ConfigError(_describe(err)) from None


def _describe(err: ValidationError) -> str:
    lines = ["invalid configuration:"]
    for e in err.errors(include_url=False):
        if not e["loc"]:  # a check over the whole settings: its message names its fields
            lines.append(f"  {_message(e)}")
            continue
        lines.append(f"  {_dotted(e['loc'])}: {_message(e)} (got {e.get('input')!r})")
    return "\n".join(lines)


def _dotted(loc: tuple[int | str, ...]) -> str:
    """``markets.bybit:SOLUSDT.tick_size``; a dict key's own error reads ``... (key)``."""
    if loc and loc[-1] == "[key]":
        return _dotted(loc[:-1]) + " (key)"
    return ".".join(str(p) for p in loc)


def _message(e: Any) -> str:
    return str(e["msg"]).removeprefix("Value error, ")
