"""connectors.report: HTML + PNG report from a (small, synthetic but real-format) replay output dir."""

from __future__ import annotations

import json
import pathlib
import random
from decimal import Decimal

import polars as pl
import pytest

from mmflow.connectors.report import write_report
from mmflow.connectors.tables import FILL_SCHEMA as FILLS_SCHEMA
from mmflow.connectors.tables import TIMELINE_SCHEMA

DEC = pl.Decimal(38, 18)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
T0_US = 1_717_200_000_000_000  # 2024-06-01 00:00:00 UTC
MARKETS = {"BTC-USD": Decimal("67000"), "SOL-USD": Decimal("165")}

# The report must read exactly what the replay writes: share its schemas.
INTENTS_SCHEMA = {
    "ts": pl.Int64,
    "market": pl.Utf8,
    "seq": pl.Int64,
    "intent_id": pl.Utf8,
    "kind": pl.Utf8,
}


def _q(x: Decimal, places: str = "0.0001") -> Decimal:
    return x.quantize(Decimal(places))


def _make_run(out: pathlib.Path, *, with_fills: bool = True, rows: int = 360) -> None:
    rng = random.Random(7)
    tl, fills, intents = [], [], []
    summary_markets = {}
    for market, start in MARKETS.items():
        mid = start
        inv = Decimal(0)
        pnl = Decimal(0)
        regime = 1
        n_fills = {"maker": 0, "hedge": 0}
        for i in range(rows):
            ts = T0_US + i * 1_000_000
            mid = _q(mid * (1 + Decimal(str(rng.gauss(0, 0.0004)))))
            half = _q(mid * Decimal("0.00005"))
            vol = abs(rng.gauss(5.0, 2.0))
            if i % 60 == 0:
                regime = 0 if vol > 6.0 else 1
            trend = 1 if 120 <= i < 150 else 0
            pnl_guard = 1 if 250 <= i < 280 else 0
            quoting = not (trend or pnl_guard)
            off = half * (3 if regime == 0 else 2)
            if with_fills and quoting and i % 17 == 5:
                side = "buy" if rng.random() < 0.5 else "sell"
                qty = Decimal("0.003")
                px = mid - off if side == "buy" else mid + off
                inv += qty if side == "buy" else -qty
                pnl += _q(Decimal(str(rng.gauss(0.002, 0.01))), "0.000001")
                fills.append(
                    (
                        ts,
                        market,
                        f"f{len(fills)}",
                        f"i{i}",
                        side,
                        px,
                        qty,
                        Decimal("0"),
                        "maker",
                        "maker",
                        "trade_through",
                    )
                )
                n_fills["maker"] += 1
                if abs(inv) > Decimal("0.01"):
                    hside = "sell" if inv > 0 else "buy"
                    fills.append(
                        (
                            ts + 200_000,
                            market,
                            f"f{len(fills)}",
                            f"h{i}",
                            hside,
                            mid,
                            abs(inv),
                            _q(mid * abs(inv) * Decimal("0.0004"), "0.000001"),
                            "taker",
                            "hedge",
                            "ioc",
                        )
                    )
                    pnl -= _q(mid * abs(inv) * Decimal("0.0004"), "0.000001")
                    inv = Decimal(0)
                    n_fills["hedge"] += 1
                    intents.append((ts + 100_000, market, len(intents), f"h{i}", "hedge"))
            intents.append((ts, market, len(intents), f"i{i}", "quote" if quoting else "cancel_all"))
            tl.append(
                (
                    ts,
                    market,
                    mid,
                    mid - half,
                    mid + half,
                    mid - off if quoting else None,
                    mid + off if quoting else None,
                    vol,
                    regime,
                    trend,
                    pnl_guard,
                    inv,
                    Decimal(0),  # hedge_in_flight
                    2 if quoting else 0,  # open_orders
                    pnl,
                    float(2 * half / mid * 10_000),
                    1 if 300 <= i < 310 else 0,  # stale_guard
                    1 if 320 <= i < 330 else 0,  # operator_halt
                    0,  # loss_halt
                )
            )
        summary_markets[market] = {
            "quotes": rows,
            "trades": 40,
            "maker_fills": n_fills["maker"],
            "hedge_fills": n_fills["hedge"],
            "realized_pnl_quote": f"{pnl:.18f}",
            "fees_quote": "0.012000000000000000",
            "final_inventory_base": f"{inv:.18f}",
            "max_abs_inventory_base": "0.012000000000000000",
            "inventory_time_share_below": {"0.01": 0.8, "0.02": 0.95, "0.05": 1.0},
            "pnl_guard_engagements": 1,
            "trend_guard_engagements": 1,
            "regime_switches": 2,
            "hedge_volume_base": "0.036",
            "hedge_cost_quote": "0.5",
            "quote_intents": rows,
            "hedge_intents": n_fills["hedge"],
        }
    # A market the summary knows about but that produced no timeline rows.
    summary_markets["ETH-USD"] = {
        "quotes": 0,
        "trades": 0,
        "maker_fills": 0,
        "hedge_fills": 0,
        "realized_pnl_quote": "0",
        "inventory_time_share_below": {},
    }

    pl.DataFrame(tl, schema=TIMELINE_SCHEMA, orient="row").write_parquet(out / "timeline.parquet")
    pl.DataFrame(fills, schema=FILLS_SCHEMA, orient="row").write_parquet(out / "fills.parquet")
    pl.DataFrame(intents, schema=INTENTS_SCHEMA, orient="row").write_parquet(out / "intents.parquet")
    (out / "summary.json").write_text(
        json.dumps(
            {
                "events": 12345,
                "wall_seconds": 1.5,
                "events_per_second": 8230.0,
                "preset": "baseline",
                "markets": summary_markets,
            }
        )
    )


def _check_report(out: pathlib.Path, html_path: pathlib.Path) -> str:
    assert html_path == out / "report.html"
    assert html_path.exists()
    page = html_path.read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == len(MARKETS) + 1
    for market in [*MARKETS, "ETH-USD"]:
        assert market in page
        png = out / f"report_{market}.png"
        assert png.exists(), png
        data = png.read_bytes()
        assert data.startswith(PNG_MAGIC)
        assert len(data) > 10_000, (market, len(data))
    return page


def test_report_with_fills(tmp_path: pathlib.Path) -> None:
    _make_run(tmp_path)
    assert pl.read_parquet(tmp_path / "fills.parquet").height > 0
    page = _check_report(tmp_path, write_report(tmp_path))
    assert "baseline" in page
    assert "maker_fills" in page


def test_report_with_empty_fills(tmp_path: pathlib.Path) -> None:
    _make_run(tmp_path, with_fills=False)
    assert pl.read_parquet(tmp_path / "fills.parquet").height == 0
    _check_report(tmp_path, write_report(tmp_path))


def test_report_is_deterministic(tmp_path: pathlib.Path) -> None:
    _make_run(tmp_path, rows=120)
    first = write_report(tmp_path).read_bytes()
    second = write_report(tmp_path).read_bytes()
    assert first == second


@pytest.mark.parametrize("missing", ["intents.parquet", "summary.json"])
def test_report_tolerates_missing_side_files(tmp_path: pathlib.Path, missing: str) -> None:
    _make_run(tmp_path, rows=60)
    (tmp_path / missing).unlink()
    page = write_report(tmp_path).read_text(encoding="utf-8")
    for market in MARKETS:
        assert market in page


def test_a_failed_run_leaves_the_earlier_folder_as_it_was(tmp_path) -> None:
    """Outputs are written beside --out and moved into place only when every file is written: a
    failed run used to leave intents.parquet next to stale files of an earlier run."""
    from mmflow.connectors.tables import staged

    out = tmp_path / "run"
    out.mkdir()
    (out / "summary.json").write_text("earlier")
    (out / "stale.parquet").write_text("earlier")
    with pytest.raises(RuntimeError), staged(out) as folder:
        (folder / "intents.parquet").write_text("half")
        raise RuntimeError("the writer failed")
    assert sorted(p.name for p in out.iterdir()) == ["stale.parquet", "summary.json"]
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # nothing left beside it
    with staged(out) as folder:
        (folder / "summary.json").write_text("new")
    assert [p.name for p in out.iterdir()] == ["summary.json"] and (out / "summary.json").read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_where_the_pnl_goes_comes_first(tmp_path: pathlib.Path) -> None:
    """With mark-outs and an attribution in the summary, the report opens with them: a table per
    cause, the attribution and a figure per market, before the per-market sections."""
    _make_run(tmp_path, rows=60)
    summary = json.loads((tmp_path / "summary.json").read_text())
    group = {
        "count": 3,
        "volume_base": "0.009",
        "volume_quote": "603.0",
        "markout_bps": {"1": "-1.25", "5": "-0.50", "30": None},
        "markout_quote": {"1": "-0.07", "5": "-0.03", "30": "0"},
        "unresolved": {"1": 0, "5": 0, "30": 3},
    }
    summary["markets"]["BTC-USD"]["markouts"] = {
        "horizons_s": ["1", "5", "30"],
        "by_cause": {"touch": group, "trade_through": group},
        "maker": group,
    }
    summary["markets"]["BTC-USD"]["attribution"] = {
        "horizon_s": "5",
        "spread_quote": "0.5",
        "adverse_selection_quote": "-0.7",
        "fees_quote": "-0.2",
        "hedging_quote": "-0.05",
        "inventory_quote": "0.1",
        "total_quote": "-0.35",
    }
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    page = write_report(tmp_path).read_text(encoding="utf-8")
    assert (tmp_path / "report_BTC-USD_markouts.png").read_bytes().startswith(PNG_MAGIC)
    assert page.count("data:image/png;base64,") == len(MARKETS) + 2
    finding = page.index("Where the PnL goes")
    assert finding < page.index("id='m-BTC-USD'")
    assert "trade_through" in page and "all maker fills" in page and "(3 open)" in page
    assert "-1.25" in page and "adverse selection" in page and "-0.35" in page
    assert write_report(tmp_path).read_text(encoding="utf-8") == page
