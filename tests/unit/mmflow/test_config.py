"""Settings: the analysis' numbers as defaults, presets, and the precedence of every source."""

from __future__ import annotations

import os
import re
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from mmflow.config import (
    ConfigError,
    InstrumentSpec,
    Settings,
    VenueConfig,
    instrument_id,
    load_settings,
    parse_set,
    split_instrument,
)

D = Decimal
#: The markets the replay tests run on (Binance USD-M BTC and Bybit's USDT perpetual SOL).
BTC = "binance-futures:BTCUSDT"
SOL = "bybit:SOLUSDT"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No MMFLOW_* variable of the calling shell may leak into these tests."""
    for key in list(os.environ):
        if key.startswith("MMFLOW_"):
            monkeypatch.delenv(key)


def write_yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mmflow.yaml"
    path.write_text(text)
    return path


# -- defaults -----------------------------------------------------------------------------------


def test_defaults_are_the_analysis_numbers() -> None:
    s = load_settings().strategy
    assert s.pnl_guard.enabled and s.pnl_guard.trigger_quote == D("-0.20")
    assert s.pnl_guard.widen_bps == 6.0
    assert s.pnl_guard.size_mult == 0.85
    assert s.regime.enabled and s.regime.threshold_bps == 6.0
    assert s.trend.enabled and s.trend.cooldown_s == 60.0 and s.trend.widen_bps == 8.0 and s.trend.pause_bids
    assert (s.spreads.min_bps, s.spreads.max_bps) == (7.0, 13.0)
    assert (s.spreads.size_mult_low_vol, s.spreads.size_mult_high_vol) == (1.1, 0.7)
    h = s.hedger
    assert h.enabled
    assert (h.trigger_base, h.target_base, h.max_clip_base, h.cooldown_s) == (
        D("0.010"),
        D("0.001"),
        D("0.03"),
        2.0,
    )
    inv = s.inventory
    assert inv.soft_cap_enabled and inv.soft_cap_base == D("0.05")
    assert inv.asymmetric_enabled and inv.asymmetric_base == D("0.01")
    assert inv.spread_bonus_enabled
    assert inv.spread_bonus_tiers == ((D("0.01"), 2.0), (D("0.02"), 4.0), (D("0.03"), 6.0))
    assert inv.size_reduction_enabled
    assert inv.size_reduction_tiers == ((D("0.01"), 0.75), (D("0.02"), 0.5))


def test_default_decimals_are_decimal() -> None:
    s = load_settings().strategy
    for value in (
        s.pnl_guard.trigger_quote,
        s.hedger.trigger_base,
        s.hedger.target_base,
        s.hedger.max_clip_base,
        s.inventory.soft_cap_base,
        s.inventory.asymmetric_base,
        *(t for t, _ in s.inventory.spread_bonus_tiers),
    ):
        assert isinstance(value, Decimal)


def test_default_markets_and_venue() -> None:
    s = load_settings()
    assert {BTC, SOL} <= set(s.markets)
    assert s.markets[SOL].tick_size == D("0.01") and s.markets[SOL].lot_size == D("0.001")
    assert s.markets[BTC].tick_size == D("0.1")
    assert s.venue == VenueConfig()
    assert s.preset == "phase2"


# -- instruments --------------------------------------------------------------------------------


def test_instrument_id_joins_venue_and_symbol() -> None:
    assert instrument_id("binance-futures", "BTCUSDT") == "binance-futures:BTCUSDT"
    assert split_instrument("binance-futures:BTCUSDT") == ("binance-futures", "BTCUSDT")
    # symbols keep the exchange's own spelling, slashes and dashes included
    assert split_instrument(instrument_id("ftx", "SOL/USD")) == ("ftx", "SOL/USD")
    assert split_instrument("synthetic:SYNTH-SOL") == ("synthetic", "SYNTH-SOL")


@pytest.mark.parametrize("bad", ["SOLUSDT", ":SOLUSDT", "bybit:", "a:b:c", "", ":"])
def test_split_instrument_rejects_malformed_ids(bad: str) -> None:
    with pytest.raises(ValueError, match="instrument"):
        split_instrument(bad)


@pytest.mark.parametrize(("venue", "symbol"), [("", "X"), ("bybit", ""), ("a:b", "X"), ("bybit", "X:Y")])
def test_instrument_id_rejects_parts_that_would_not_split_back(venue: str, symbol: str) -> None:
    with pytest.raises(ValueError):
        instrument_id(venue, symbol)


def test_default_markets_are_venue_and_symbol() -> None:
    markets = load_settings().markets
    expected = {
        f"{venue}:{sym}"
        for venue in ("binance-futures", "binance", "bybit")
        for sym in ("BTCUSDT", "ETHUSDT", "SOLUSDT")
    } | {"ftx:SOL/USD", "synthetic:SYNTH-SOL"}
    assert set(markets) == expected


def test_default_market_numbers() -> None:
    m = load_settings().markets
    spec = m["binance-futures:BTCUSDT"]  # the replay tests' numbers, exactly
    assert (spec.tick_size, spec.lot_size, spec.min_qty) == (D("0.1"), D("0.001"), D("0.001"))
    assert (spec.maker_fee_rate, spec.taker_fee_rate, spec.min_notional) == (D("0.0002"), D("0.0005"), D(5))
    eth = m["binance-futures:ETHUSDT"]
    assert (eth.tick_size, eth.lot_size, eth.min_qty, eth.min_notional) == (
        D("0.01"),
        D("0.001"),
        D("0.001"),
        D(5),
    )
    for sym in ("BTCUSDT", "ETHUSDT", "SOLUSDT"):
        spot = m[f"binance:{sym}"]
        assert (spot.maker_fee_rate, spot.taker_fee_rate, spot.min_notional) == (D("0.001"), D("0.001"), D(5))
        assert (m[f"bybit:{sym}"].maker_fee_rate, m[f"bybit:{sym}"].taker_fee_rate) == (
            D("0.0002"),
            D("0.00055"),
        )
    assert (m["binance:BTCUSDT"].tick_size, m["binance:BTCUSDT"].lot_size) == (D("0.01"), D("0.00001"))
    assert (m["binance:ETHUSDT"].tick_size, m["binance:ETHUSDT"].lot_size) == (D("0.01"), D("0.0001"))
    assert (m["bybit:BTCUSDT"].tick_size, m["bybit:BTCUSDT"].lot_size) == (D("0.1"), D("0.001"))
    assert (m["bybit:ETHUSDT"].tick_size, m["bybit:ETHUSDT"].lot_size) == (D("0.01"), D("0.01"))
    ftx = m["ftx:SOL/USD"]
    assert (ftx.tick_size, ftx.maker_fee_rate, ftx.taker_fee_rate) == (D("0.0025"), D("0.0002"), D("0.0007"))
    synth = m["synthetic:SYNTH-SOL"]
    assert (synth.tick_size, synth.lot_size, synth.min_qty) == (D("0.01"), D("0.001"), D("0.001"))
    assert (synth.maker_fee_rate, synth.taker_fee_rate) == (D("0.0002"), D("0.0005"))


def test_every_sol_market_keeps_the_analysis_lot() -> None:
    # 0.027 SOL positions and a 0.001 SOL hedge target need a 0.001 lot, whatever the exchange's step.
    sol = {k: v for k, v in load_settings().markets.items() if "SOL" in k}
    assert len(sol) == 5
    for spec in sol.values():
        assert (spec.lot_size, spec.min_qty) == (D("0.001"), D("0.001"))
    assert sol[SOL].tick_size == D("0.01")


def test_min_notional_defaults_to_zero_and_is_not_negative() -> None:
    spec = InstrumentSpec(tick_size=D("0.01"), lot_size=D("0.001"), min_qty=D("0.001"))
    assert spec.min_notional == D(0) and isinstance(spec.min_notional, Decimal)
    with pytest.raises(ConfigError, match=r"markets\.bybit:SOLUSDT\.min_notional"):
        load_settings(overrides=["markets.bybit:SOLUSDT.min_notional=-1"])


def test_market_keys_must_be_instrument_ids(tmp_path: Path) -> None:
    path = write_yaml(
        tmp_path, 'markets:\n  SOLUSDT: {tick_size: "0.01", lot_size: "0.001", min_qty: "0.001"}\n'
    )
    with pytest.raises(ConfigError, match=r"markets\.SOLUSDT"):
        load_settings(config_file=path)


# -- per-market settings ------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[3]
BTC_IDS = ("binance-futures:BTCUSDT", "binance:BTCUSDT", "bybit:BTCUSDT")
ETH_IDS = ("binance-futures:ETHUSDT", "binance:ETHUSDT", "bybit:ETHUSDT")


def test_sol_markets_run_the_shared_strategy() -> None:
    s = load_settings()
    for market in (SOL, "binance-futures:SOLUSDT", "ftx:SOL/USD", "synthetic:SYNTH-SOL"):
        assert s.strategy_for(market) == s.strategy


@pytest.mark.parametrize(
    ("ids", "trigger", "margin", "loss"), [(BTC_IDS, "-20", "5", "-500"), (ETH_IDS, "-4", "1", "-100")]
)
def test_btc_and_eth_scale_only_the_quote_thresholds(
    ids: tuple[str, ...], trigger: str, margin: str, loss: str
) -> None:
    s = load_settings()
    for market in ids:
        cfg = s.strategy_for(market)
        assert (cfg.pnl_guard.trigger_quote, cfg.pnl_guard.clear_margin_quote) == (D(trigger), D(margin))
        assert cfg.safety.loss_limit_quote == D(loss)
        # base-unit thresholds stay the analysis' (lot 0.001: 0.01 base is 10 lots)
        assert (cfg.hedger, cfg.inventory, cfg.quoting) == (
            s.strategy.hedger,
            s.strategy.inventory,
            s.strategy.quoting,
        )
        assert cfg.safety.max_position_base == s.strategy.safety.max_position_base


def test_strategy_for_is_computed_once() -> None:
    s = load_settings()
    assert s.strategy_for(BTC) is s.strategy_for(BTC)


def test_unknown_market_is_a_key_error_naming_it() -> None:
    s = load_settings()
    assert s.spec(BTC) is s.markets[BTC]
    with pytest.raises(KeyError, match="kraken:XBTUSD"):
        s.spec("kraken:XBTUSD")
    with pytest.raises(KeyError, match="kraken:XBTUSD"):
        s.strategy_for("kraken:XBTUSD")


def test_market_override_sits_on_the_shared_strategy() -> None:
    s = load_settings(overrides=["strategy.hedger.cooldown_s=3", "strategy.pnl_guard.widen_bps=4"])
    btc = s.strategy_for(BTC)
    assert btc.hedger.cooldown_s == 3.0 and btc.pnl_guard.widen_bps == 4.0
    assert btc.pnl_guard.trigger_quote == D("-20")


def test_market_override_is_partial_and_set_per_market() -> None:
    s = load_settings(overrides=[f"markets.{SOL}.strategy.hedger.trigger_base=0.02"])
    assert s.strategy_for(SOL).hedger.trigger_base == D("0.02")
    assert s.strategy_for(SOL).hedger.cooldown_s == 2.0
    assert s.strategy.hedger.trigger_base == D("0.010")
    assert s.strategy_for("binance-futures:SOLUSDT").hedger.trigger_base == D("0.010")


def test_bad_market_override_names_the_full_field() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(overrides=[f"markets.{BTC}.strategy.hedger.trigger_base=-1"])
    assert f"markets.{BTC}.strategy.hedger.trigger_base" in str(info.value)
    with pytest.raises(ConfigError, match=rf"markets\.{SOL}\.strategy\.hedgr"):
        load_settings(overrides=[f"markets.{SOL}.strategy.hedgr.trigger_base=0.02"])


def test_set_on_one_market_field_keeps_everything_else() -> None:
    default = load_settings()
    s = load_settings(overrides=[f"markets.{BTC}.maker_fee_rate=0.0001"])
    assert s.markets[BTC].maker_fee_rate == D("0.0001")
    assert s.markets[BTC].model_copy(update={"maker_fee_rate": D("0.0002")}) == default.markets[BTC]
    assert set(s.markets) == set(default.markets)
    assert s.strategy_for(BTC) == default.strategy_for(BTC)


def test_yaml_market_fields_merge_and_added_markets_keep_the_shipped(tmp_path: Path) -> None:
    path = write_yaml(
        tmp_path,
        f"""
markets:
  {BTC}: {{taker_fee_rate: "0.0004"}}
  binance-futures:BNBUSDT: {{tick_size: "0.01", lot_size: "0.01", min_qty: "0.01"}}
""",
    )
    s = load_settings(config_file=path)
    assert set(s.markets) == set(load_settings().markets) | {"binance-futures:BNBUSDT"}
    assert s.markets[BTC].taker_fee_rate == D("0.0004") and s.markets[BTC].tick_size == D("0.1")
    assert s.strategy_for("binance-futures:BNBUSDT") == s.strategy


def test_btcusdt_tight_yaml_keeps_only_its_spreads() -> None:
    s = load_settings(config_file=ROOT / "infra" / "config" / "btcusdt-tight.yaml")
    btc = s.strategy_for(BTC)
    assert (btc.spreads.min_bps, btc.spreads.max_bps) == (2.0, 4.0)
    assert btc.pnl_guard.trigger_quote == D("-20") and btc.safety.loss_limit_quote == D("-500")
    # the file no longer carries what the BTC defaults cover, so SOL keeps its own numbers
    assert s.strategy_for(SOL).pnl_guard.trigger_quote == D("-0.20")


# -- presets ------------------------------------------------------------------------------------


def test_phase1_disables_the_three_phase2_systems() -> None:
    s = load_settings("phase1")
    assert s.preset == "phase1"
    inv = s.strategy.inventory
    assert not inv.asymmetric_enabled and not inv.spread_bonus_enabled and not inv.size_reduction_enabled
    # the systems already live in phase 1 stay on
    st = s.strategy
    assert (
        st.pnl_guard.enabled
        and st.regime.enabled
        and st.trend.enabled
        and st.spreads.enabled
        and st.hedger.enabled
    )
    assert inv.soft_cap_enabled


def test_phase2_enables_everything() -> None:
    s = load_settings("phase2")
    assert s.preset == "phase2"
    inv, st = s.strategy.inventory, s.strategy
    assert (
        inv.asymmetric_enabled
        and inv.spread_bonus_enabled
        and inv.size_reduction_enabled
        and inv.soft_cap_enabled
    )
    assert (
        st.pnl_guard.enabled
        and st.regime.enabled
        and st.trend.enabled
        and st.spreads.enabled
        and st.hedger.enabled
    )
    assert s.strategy == load_settings().strategy


def test_unknown_preset_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="preset"):
        load_settings("phase3")


# -- sources and precedence ---------------------------------------------------------------------


def test_yaml_file_is_loaded(tmp_path: Path) -> None:
    path = write_yaml(
        tmp_path,
        """
strategy:
  hedger:
    trigger_base: "0.03"
    cooldown_s: 5
  spreads:
    min_bps: 5
venue:
  latency:
    order_ms: 12.5
markets:
  bybit:SOLUSDT: {tick_size: "0.001", lot_size: "0.01", min_qty: "0.01"}
""",
    )
    s = load_settings(config_file=path)
    assert s.strategy.hedger.trigger_base == D("0.03")
    assert s.strategy.hedger.cooldown_s == 5.0
    assert s.strategy.hedger.target_base == D("0.001")  # untouched defaults survive the merge
    assert s.strategy.spreads.min_bps == 5.0 and s.strategy.spreads.max_bps == 13.0
    assert s.venue.latency.order_ms == 12.5
    assert s.markets[SOL].lot_size == D("0.01")


def test_yaml_beats_preset(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "strategy:\n  inventory:\n    asymmetric_enabled: true\n")
    s = load_settings("phase1", path)
    assert s.strategy.inventory.asymmetric_enabled
    assert not s.strategy.inventory.spread_bonus_enabled


def test_env_beats_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_yaml(tmp_path, "strategy:\n  hedger:\n    trigger_base: '0.03'\n    cooldown_s: 5\n")
    monkeypatch.setenv("MMFLOW_STRATEGY__HEDGER__TRIGGER_BASE", "0.02")
    s = load_settings(config_file=path)
    assert s.strategy.hedger.trigger_base == D("0.02")
    assert isinstance(s.strategy.hedger.trigger_base, Decimal)
    assert s.strategy.hedger.cooldown_s == 5.0  # the YAML's other keys stay


def test_env_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMFLOW_STRATEGY__HEDGER__TRIGGER_BASE", "0.02")
    assert load_settings().strategy.hedger.trigger_base == D("0.02")


def test_env_beats_preset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMFLOW_STRATEGY__INVENTORY__ASYMMETRIC_ENABLED", "true")
    s = load_settings("phase1")
    assert s.strategy.inventory.asymmetric_enabled
    assert not s.strategy.inventory.size_reduction_enabled


def test_set_beats_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "strategy:\n  hedger:\n    cooldown_s: 5\n")
    monkeypatch.setenv("MMFLOW_STRATEGY__HEDGER__COOLDOWN_S", "4")
    monkeypatch.setenv("MMFLOW_STRATEGY__HEDGER__TRIGGER_BASE", "0.02")
    s = load_settings(config_file=path, overrides=["strategy.hedger.cooldown_s=3"])
    assert s.strategy.hedger.cooldown_s == 3.0
    assert s.strategy.hedger.trigger_base == D("0.02")


def test_set_alone_and_dict_overrides() -> None:
    assert load_settings(overrides=["strategy.hedger.cooldown_s=3"]).strategy.hedger.cooldown_s == 3.0
    s = load_settings(overrides={"strategy": {"hedger": {"cooldown_s": 7}}})
    assert s.strategy.hedger.cooldown_s == 7.0


def test_env_validated_together_with_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # target 0.015 is only valid against the YAML's trigger 0.03: the sources must be merged
    # before the cross-field check runs, not validated one at a time.
    path = write_yaml(tmp_path, "strategy:\n  hedger:\n    trigger_base: '0.03'\n")
    monkeypatch.setenv("MMFLOW_STRATEGY__HEDGER__TARGET_BASE", "0.015")
    s = load_settings(config_file=path)
    assert (s.strategy.hedger.trigger_base, s.strategy.hedger.target_base) == (D("0.03"), D("0.015"))


def test_env_validated_together_with_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMFLOW_STRATEGY__SPREADS__MIN_BPS", "15")
    s = load_settings(overrides=["strategy.spreads.max_bps=20"])
    assert (s.strategy.spreads.min_bps, s.strategy.spreads.max_bps) == (15.0, 20.0)


def test_decimals_via_set_stay_exact() -> None:
    s = load_settings(
        overrides=[
            "strategy.hedger.trigger_base=0.1",
            "strategy.safety.max_position_base=0.2",  # the hedger must trigger below the hard limit
            "strategy.hedger.target_base=0.003",
            "strategy.pnl_guard.trigger_quote=-0.35",
            "venue.queue.at_price_fill_ratio=0.3",
        ]
    )
    assert s.strategy.hedger.trigger_base == D("0.1")
    assert str(s.strategy.hedger.trigger_base) == "0.1"
    assert s.strategy.hedger.target_base == D("0.003")
    assert s.strategy.pnl_guard.trigger_quote == D("-0.35")
    assert s.venue.queue.at_price_fill_ratio == D("0.3")
    assert s.venue.queue.at_price_fill_ratio != D(0.3)  # not via a binary float


def test_decimals_via_env_stay_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMFLOW_VENUE__QUEUE__AT_PRICE_FILL_RATIO", "0.3")
    assert str(load_settings().venue.queue.at_price_fill_ratio) == "0.3"


def test_parse_set_shapes() -> None:
    assert parse_set(["a.b.c=0.1", "a.b.d=3", "a.e=true", "f=x"]) == {
        "a": {"b": {"c": "0.1", "d": 3}, "e": True},
        "f": "x",
    }
    with pytest.raises(ConfigError):
        parse_set(["no-equals-sign"])
    with pytest.raises(ConfigError):
        load_settings(overrides=["=3"])


# -- validation errors name the field -----------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "names"),
    [
        (["strategy.hedger.trigger_base=-0.01"], ["strategy.hedger.trigger_base"]),
        (["strategy.hedger.trigger_base=0"], ["strategy.hedger.trigger_base"]),
        (["strategy.spreads.min_bps=14"], ["strategy.spreads", "min_bps"]),
        (["strategy.hedger.target_base=0.010"], ["strategy.hedger", "target_base"]),
        (["strategy.hedger.target_base=0.02"], ["strategy.hedger", "target_base"]),
        (["strategy.hedger.bogus=1"], ["strategy.hedger.bogus"]),
        (["nonsense=1"], ["nonsense"]),
        (["strategy.pnl_guard.size_mult=1.5"], ["strategy.pnl_guard.size_mult"]),
        (["venue.queue.at_price_fill_ratio=2"], ["venue.queue.at_price_fill_ratio"]),
        (["strategy.volatility.window=abc"], ["strategy.volatility.window"]),
        (["markets.bybit:SOLUSDT.tick_size=0"], ["markets.bybit:SOLUSDT.tick_size"]),
        (["preset=phase3"], ["preset"]),
        (
            ["strategy.inventory.spread_bonus_tiers=[[0.02, 2], [0.01, 4]]"],
            ["strategy.inventory", "spread_bonus_tiers"],
        ),
    ],
)
def test_bad_values_raise_config_error_naming_the_field(overrides: list[str], names: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(overrides=overrides)
    message = str(info.value)
    for name in names:
        assert name in message


def test_bad_yaml_value_names_the_field(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "strategy:\n  hedger:\n    trigger_base: -1\n")
    with pytest.raises(ConfigError, match=r"strategy\.hedger\.trigger_base"):
        load_settings(config_file=path)


def test_yaml_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_settings(config_file=write_yaml(tmp_path, "- 1\n- 2\n"))


def test_bad_env_value_names_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMFLOW_STRATEGY__HEDGER__TRIGGER_BASE", "-0.5")
    with pytest.raises(ConfigError, match=r"strategy\.hedger\.trigger_base"):
        load_settings()


def test_settings_are_frozen() -> None:
    s = load_settings()
    with pytest.raises(ValidationError):
        s.strategy.hedger.trigger_base = D("1")  # type: ignore[misc]
    assert isinstance(s, Settings)


# -- cross-field checks: a configuration that cannot be wrong quietly ----------------------------


@pytest.mark.parametrize(
    ("overrides", "names"),
    [
        (
            ["strategy.inventory.soft_cap_base=0.2"],
            ["strategy", "inventory.soft_cap_base (0.2)", "safety.max_position_base (0.10)"],
        ),
        (
            ["strategy.hedger.trigger_base=0.2"],
            ["strategy", "hedger.trigger_base", "safety.max_position_base"],
        ),
        (
            ["strategy.safety.max_position_base=0.04"],
            ["inventory.soft_cap_base", "safety.max_position_base (0.04)"],
        ),
        (
            ["strategy.volatility.min_returns=100", "strategy.volatility.window=10"],
            ["strategy.volatility", "min_returns (100)", "window (10)"],
        ),
        (
            ["strategy.inventory.spread_bonus_tiers=[[0.01, -2]]"],
            ["strategy.inventory", "spread_bonus_tiers"],
        ),
        (
            [f"markets.{BTC}.strategy.inventory.soft_cap_base=0.5"],
            [f"markets.{BTC}.strategy", "inventory.soft_cap_base", "safety.max_position_base"],
        ),
        (
            ["markets.bybit:ETHUSDT.strategy.hedger.max_clip_base=0.005"],
            ["markets.bybit:ETHUSDT", "hedger.max_clip_base (0.005)", "lot_size (0.01)"],
        ),
        # the shared clip is checked against every market's lot
        (["strategy.hedger.max_clip_base=0.005"], ["markets.bybit:ETHUSDT", "hedger.max_clip_base"]),
    ],
)
def test_cross_field_checks_name_both_fields(overrides: list[str], names: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(overrides=overrides)
    for name in names:
        assert name in str(info.value)


def test_clip_of_one_lot_is_enough() -> None:
    s = load_settings(overrides=["markets.bybit:ETHUSDT.strategy.hedger.max_clip_base=0.01"])
    assert s.strategy_for("bybit:ETHUSDT").hedger.max_clip_base == D("0.01")


@pytest.mark.parametrize(
    "item",
    [
        "strategy.quoting.refresh_tolerance_bps=inf",
        "strategy.spreads.max_bps=nan",
        "strategy.pnl_guard.trigger_quote=-inf",
        "strategy.trend.cooldown_s=.inf",
        "strategy.inventory.spread_bonus_tiers=[[0.01, .inf]]",
        f"markets.{SOL}.maker_fee_rate=nan",
    ],
)
def test_infinite_or_nan_numbers_are_refused(item: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(item.partition("=")[0])):
        load_settings(overrides=[item])


def test_non_finite_yaml_numbers_are_refused(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "strategy:\n  quoting:\n    refresh_tolerance_bps: .inf\n")
    with pytest.raises(ConfigError, match=r"strategy\.quoting\.refresh_tolerance_bps"):
        load_settings(config_file=path)


# -- every source's problems come back as one line naming the file, field or variable ------------


def test_unparsable_yaml_names_the_file_and_line(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "strategy:\n  hedger:\n    trigger_base: [0.02\n")
    with pytest.raises(ConfigError) as info:
        load_settings(config_file=path)
    message = str(info.value)
    assert message.startswith(f"{path}: invalid YAML: ") and "\n" not in message
    assert re.search(r"\(line \d+\)$", message)


def test_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=f"^{re.escape(str(path))}: no such file$"):
        load_settings(config_file=path)


def test_yaml_top_level_error_names_the_file(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "just a string\n")
    with pytest.raises(ConfigError, match=re.escape(f"{path}: top level must be a mapping")):
        load_settings(config_file=path)


def test_bad_json_in_env_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMFLOW_KAFKA__EXTRA", "{not json")
    with pytest.raises(ConfigError, match=r"^MMFLOW_KAFKA__EXTRA: invalid JSON: "):
        load_settings()


@pytest.mark.parametrize(
    "name",
    [
        "MMFLOW_STRATEGY__HEDGR__TRIGGER_BASE",
        "MMFLOW_STRATEGYY",
        "MMFLOW_VENUE__ORDER_LATENCY_MS__EXTRA",
        "MMFLOW_API_TOKEN",
    ],
)
def test_unknown_env_variable_is_an_error(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv(name, "0.02")
    with pytest.raises(ConfigError, match=f"^{name}: unknown setting$"):
        load_settings()


def test_process_variables_are_not_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    plain = load_settings()
    for name in ("MMFLOW_RUN_ID", "MMFLOW_RUN_DIR", "MMFLOW_API_KEY", "MMFLOW_API_SECRET"):
        monkeypatch.setenv(name, "x")
    assert load_settings() == plain


def test_several_problems_come_back_on_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMFLOW_STRATEGY__HEDGR__TRIGGER_BASE", "1")
    monkeypatch.setenv("MMFLOW_KAFKA__EXTRA", "[")
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert "\n" not in message and "; " in message
    assert "MMFLOW_STRATEGY__HEDGR__TRIGGER_BASE" in message and "MMFLOW_KAFKA__EXTRA" in message


def test_validation_errors_come_back_on_one_line() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(overrides=["strategy.hedger.cooldown_s=-1", "venue.latency.order_ms=-1"])
    message = str(info.value)
    assert "\n" not in message
    assert "strategy.hedger.cooldown_s" in message and "venue.latency.order_ms" in message


def test_env_json_targets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMFLOW_STRATEGY__INVENTORY__SPREAD_BONUS_TIERS", "[[0.01, 1], [0.02, 3]]")
    monkeypatch.setenv("MMFLOW_KAFKA__EXTRA", '{"security.protocol": "SASL_SSL"}')
    s = load_settings()
    assert s.strategy.inventory.spread_bonus_tiers == ((D("0.01"), 1.0), (D("0.02"), 3.0))
    assert str(s.strategy.inventory.spread_bonus_tiers[0][0]) == "0.01"
    assert s.kafka.extra == {"security.protocol": "SASL_SSL"}


def test_env_rest_of_a_free_form_key_is_one_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMFLOW_KAFKA__EXTRA__SASL.MECHANISM", "PLAIN")
    assert load_settings().kafka.extra == {"sasl.mechanism": "PLAIN"}


def test_env_market_keys_map_onto_existing_markets(monkeypatch: pytest.MonkeyPatch) -> None:
    shipped = set(load_settings().markets)
    monkeypatch.setenv("MMFLOW_MARKETS__BINANCE-FUTURES:BTCUSDT__MAKER_FEE_RATE", "0.0001")
    monkeypatch.setenv("MMFLOW_MARKETS__BYBIT:SOLUSDT__STRATEGY__HEDGER__TRIGGER_BASE", "0.02")
    s = load_settings()
    assert set(s.markets) == shipped  # no lower-cased twin
    assert s.markets[BTC].maker_fee_rate == D("0.0001") and s.markets[BTC].tick_size == D("0.1")
    assert s.strategy_for(SOL).hedger.trigger_base == D("0.02")


def test_env_adds_a_market_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    shipped = set(load_settings().markets)
    spec = '{"binance:LINKUSDT": {"tick_size": 0.01, "lot_size": "0.01", "min_qty": "0.01"}}'
    monkeypatch.setenv("MMFLOW_MARKETS", spec)
    s = load_settings()
    assert set(s.markets) == shipped | {"binance:LINKUSDT"}
    assert str(s.markets["binance:LINKUSDT"].tick_size) == "0.01"  # JSON numbers stay exact


def test_env_unknown_market_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMFLOW_MARKETS__KRAKEN:XBTUSD__TICK_SIZE", "0.1")
    with pytest.raises(ConfigError, match=r"^MMFLOW_MARKETS__KRAKEN:XBTUSD__TICK_SIZE: unknown market"):
        load_settings()


# -- secrets are never echoed -------------------------------------------------------------------


@pytest.mark.parametrize(
    "yaml_text",
    [
        "kafka:\n  extra:\n    sasl.password: 12345678\n",
        "kafka:\n  extra:\n    ssl.ca.location: 12345678\n",
        "kafka:\n  sasl_password: 12345678\n",
        "kafka:\n  api_token: 12345678\n",
    ],
)
def test_secret_values_are_not_echoed(tmp_path: Path, yaml_text: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(config_file=write_yaml(tmp_path, yaml_text))
    message = str(info.value)
    assert "12345678" not in message and "(value hidden)" in message
    assert "kafka." in message


def test_secret_values_from_env_are_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMFLOW_KAFKA__EXTRA", '{"sasl.password": 12345678}')
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "12345678" not in str(info.value) and "kafka.extra.sasl.password" in str(info.value)


def test_ordinary_values_are_still_echoed() -> None:
    with pytest.raises(ConfigError, match=r"strategy\.hedger\.cooldown_s: .*\(got -7\)"):
        load_settings(overrides=["strategy.hedger.cooldown_s=-7"])


# -- --set follows the schema -------------------------------------------------------------------


def test_parse_set_keeps_free_form_keys_whole() -> None:
    assert parse_set(["kafka.extra.sasl.password=x"]) == {"kafka": {"extra": {"sasl.password": "x"}}}
    # a str setting keeps its text: a numeric-looking password is still a string
    s = load_settings(overrides=["kafka.extra.sasl.password=12345678", "kafka.group_id=0042"])
    assert s.kafka.extra == {"sasl.password": "12345678"} and s.kafka.group_id == "0042"


def test_parse_set_walks_into_markets() -> None:
    assert parse_set(["markets.ftx:SOL/USD.tick_size=0.01"]) == {
        "markets": {"ftx:SOL/USD": {"tick_size": "0.01"}}
    }
    assert parse_set([f"markets.{SOL}.strategy.hedger.trigger_base=0.02"]) == {
        "markets": {SOL: {"strategy": {"hedger": {"trigger_base": "0.02"}}}}
    }
    # a symbol with a dot stays one market id: the id ends where the spec's fields begin
    assert parse_set(["markets.x:A.B.lot_size=1"]) == {"markets": {"x:A.B": {"lot_size": 1}}}


def test_set_problems_name_the_key_not_the_value() -> None:
    with pytest.raises(ConfigError) as info:
        parse_set(["=hunter2"])
    assert "hunter2" not in str(info.value)
    with pytest.raises(ConfigError, match=r"--set strategy\.inventory\.spread_bonus_tiers: invalid value"):
        parse_set(["strategy.inventory.spread_bonus_tiers=[[0.01, 2]"])


@pytest.mark.parametrize("how", ["env", "set"])
def test_preset_named_by_env_or_set_brings_its_switches(monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    if how == "env":
        monkeypatch.setenv("MMFLOW_PRESET", "phase1")
        s = load_settings()
    else:
        s = load_settings(overrides=["preset=phase1"])
    assert s.preset == "phase1" and not s.strategy.inventory.asymmetric_enabled
