"""Human-readable report of a replay output directory.

``write_report(out_dir)`` reads ``timeline.parquet``, ``intents.parquet``, ``fills.parquet`` and
``summary.json`` from a replay output directory and writes:

* ``report_<market>_markouts.png`` -- per market with mark-outs in the summary, the finding first:
  mean mark-out (bps) by horizon per fill cause, and the PnL attribution as a waterfall;
* ``report_<market>.png`` -- one figure per market, five stacked panels sharing the time axis
  (price + our quotes + fills, inventory, realized PnL, volatility + regime, guard states);
* ``report.html`` -- a self-contained page: run header, "Where the PnL goes" (the mark-out and
  attribution tables and figure of each market), a summary table per market and the PNGs
  embedded as base64 ``<img>`` tags.

Decimal money columns are cast to Float64 for plotting only; the tables show the exact strings
from ``summary.json`` (trimmed for display).
"""

from __future__ import annotations

import base64
import html
import json
import pathlib
import re
from decimal import Decimal, InvalidOperation
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from mmflow.connectors.tables import DEC, TIMELINE_SCHEMA  # noqa: E402
from mmflow.markouts import CAUSES  # noqa: E402

# The reference lines (PnL-guard trigger, regime threshold, inventory thresholds) come from each
# market's own effective settings, written by the run into summary.json ("thresholds"), so a run
# with ``--set`` or per-market overrides is drawn as it ran.
GUARD_OFFSET = 0.04  # vertical offset of pnl_guard so it does not hide trend_guard

_FIG_SIZE = (13.0, 14.0)
_DPI = 110
_PNG_METADATA = {"Software": None}

#: The timeline's columns (``connectors.tables.TIMELINE_SCHEMA``), as plotting types.
_TIMELINE_COLUMNS: dict[str, Any] = {
    name: pl.Float64 if dtype == DEC else dtype for name, dtype in TIMELINE_SCHEMA.items()
}
_FILL_COLUMNS = {
    "ts": pl.Int64,
    "market": pl.Utf8,
    "side": pl.Utf8,
    "price": pl.Float64,
    "qty": pl.Float64,
    "source": pl.Utf8,
}


# -- loading --------------------------------------------------------------------------------------


def _read_parquet(path: pathlib.Path, columns: dict[str, pl.DataType]) -> pl.DataFrame:
    """Read ``path`` keeping ``columns`` cast to plotting dtypes; missing file/column -> nulls."""
    df = pl.read_parquet(path) if path.exists() else pl.DataFrame()
    exprs = []
    for name, dtype in columns.items():
        if name in df.columns:
            exprs.append(pl.col(name).cast(dtype, strict=False))
        else:
            exprs.append(pl.lit(None, dtype=dtype).alias(name))
    if df.width == 0:
        return pl.DataFrame(schema=columns)
    return df.select(exprs)


def _read_summary(path: pathlib.Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    with path.open() as fh:
        return json.load(fh)


def _intent_counts(path: pathlib.Path) -> dict[str, dict[str, int]]:
    """{market: {kind: rows}} from intents.parquet (empty if absent)."""
    if not path.exists():
        return {}
    df = pl.read_parquet(path, columns=None)
    if df.height == 0 or "market" not in df.columns or "kind" not in df.columns:
        return {}
    counts = df.group_by("market", "kind").len().sort("market", "kind")
    out: dict[str, dict[str, int]] = {}
    for market, kind, n in counts.iter_rows():
        out.setdefault(str(market), {})[str(kind)] = int(n)
    return out


# -- plotting helpers -----------------------------------------------------------------------------


def _times(ts: pl.Series) -> np.ndarray:
    """Integer microseconds since the epoch -> naive-UTC ``datetime64[us]``."""
    return ts.cast(pl.Int64).to_numpy().astype("datetime64[us]")


def _floats(s: pl.Series) -> np.ndarray:
    """Float array with NaN for nulls (NaN breaks lines, which is what "not quoting" should look like)."""
    return s.cast(pl.Float64).fill_null(float("nan")).to_numpy().astype(float)


def _change_points(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lossless thinning for ``steps-post`` plots: keep the first point, every change, the last point."""
    n = len(y)
    if n <= 2:
        return x, y
    same = (y[1:] == y[:-1]) | (np.isnan(y[1:]) & np.isnan(y[:-1]))
    keep = np.ones(n, dtype=bool)
    keep[1:] = ~same
    keep[-1] = True
    return x[keep], y[keep]


def _runs(x: np.ndarray, y: np.ndarray, value: float) -> list[tuple[Any, Any]]:
    """(start, end) of each maximal run where ``y == value``, each lasting until the next row's time
    (step-post semantics); a run reaching the last row ends there."""
    hit = y == value
    if not hit.any():
        return []
    edges = np.diff(np.concatenate(([0], hit.astype(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)
    stops = np.flatnonzero(edges == -1)  # index of the first row after the run
    last = len(x) - 1
    return [(x[a], x[min(b, last)]) for a, b in zip(starts, stops, strict=True)]


def _step(ax: plt.Axes, x: np.ndarray, y: np.ndarray, **kwargs: Any) -> None:
    xs, ys = _change_points(x, y)
    ax.plot(xs, ys, drawstyle="steps-post", **kwargs)


def reference_lines(thresholds: dict[str, Any] | None) -> dict[str, list[float]]:
    """The dashed lines of each panel, from a market's effective settings as the run wrote them
    (an output folder without them gets none rather than another run's numbers)."""
    th = thresholds or {}

    def values(*keys: str) -> list[float]:
        return [float(th[k]) for k in keys if th.get(k) is not None]

    return {
        "inventory": values("asymmetric_base", "soft_cap_base"),
        "pnl": values("pnl_guard_trigger_quote"),
        "volatility": values("regime_threshold_bps"),
    }


def _safe_name(market: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", market) or "market"


def _plot_market(
    market: str,
    preset: str | None,
    timeline: pl.DataFrame,
    fills: pl.DataFrame,
    png_path: pathlib.Path,
    thresholds: dict[str, Any] | None = None,
) -> None:
    fig, axes = plt.subplots(
        5,
        1,
        sharex=True,
        figsize=_FIG_SIZE,
        gridspec_kw={"height_ratios": [3.0, 1.6, 1.6, 1.6, 1.0]},
        layout="constrained",
    )
    ax_px, ax_inv, ax_pnl, ax_vol, ax_guard = axes
    title = market if not preset else f"{market}  —  preset: {preset}"
    fig.suptitle(title, fontsize=14, fontweight="bold")

    tl = timeline.sort("ts")
    fl = fills.sort("ts")
    has_timeline = tl.height > 0

    if has_timeline:
        t = _times(tl["ts"])

        # 1. price, quotes, fills
        ax_px.plot(
            *_change_points(t, _floats(tl["mid"])), drawstyle="steps-post", color="0.35", lw=1.0, label="mid"
        )
        _step(ax_px, t, _floats(tl["bid_px"]), color="tab:green", lw=1.0, alpha=0.8, label="our bid")
        _step(ax_px, t, _floats(tl["ask_px"]), color="tab:red", lw=1.0, alpha=0.8, label="our ask")

        # 2. inventory
        _step(ax_inv, t, _floats(tl["inventory"]), color="tab:blue", lw=1.2, label="inventory")

        # 3. realized PnL
        _step(ax_pnl, t, _floats(tl["realized_pnl"]), color="tab:purple", lw=1.2, label="realized PnL")

        # 4. volatility + regime shading
        regime = _floats(tl["regime"])
        for k, (start, end) in enumerate(_runs(t, regime, 0.0)):
            ax_vol.axvspan(
                start,
                end,
                color="tab:red",
                alpha=0.12,
                lw=0,
                label="defensive regime (0)" if k == 0 else None,
            )
        ax_vol.plot(t, _floats(tl["volatility_bps"]), color="tab:orange", lw=1.0, label="volatility")

        # 5. guards
        _step(ax_guard, t, _floats(tl["trend_guard"]), color="tab:brown", lw=1.5, label="trend_guard")
        _step(
            ax_guard, t, _floats(tl["pnl_guard"]) + GUARD_OFFSET, color="tab:pink", lw=1.5, label="pnl_guard"
        )
        # Safety guards, each offset a little further so overlapping states stay visible.
        for k, (col, color) in enumerate(
            (("stale_guard", "tab:gray"), ("operator_halt", "black"), ("loss_halt", "tab:red")), start=2
        ):
            values = _floats(tl[col].fill_null(0)) + k * GUARD_OFFSET
            _step(ax_guard, t, values, color=color, lw=1.2, label=col)
    else:
        ax_px.text(
            0.5,
            0.5,
            "no timeline rows for this market",
            transform=ax_px.transAxes,
            ha="center",
            va="center",
            fontsize=12,
            color="0.4",
        )

    if fl.height > 0:
        ft = _times(fl["ts"])
        fpx = _floats(fl["price"])
        source = fl["source"].to_numpy()
        side = fl["side"].to_numpy()
        maker_buy = (source == "maker") & (side == "buy")
        maker_sell = (source == "maker") & (side == "sell")
        hedge = source == "hedge"
        if maker_buy.any():
            ax_px.scatter(
                ft[maker_buy],
                fpx[maker_buy],
                marker="^",
                color="green",
                s=36,
                zorder=5,
                label=f"maker buy ({int(maker_buy.sum())})",
            )
        if maker_sell.any():
            ax_px.scatter(
                ft[maker_sell],
                fpx[maker_sell],
                marker="v",
                color="red",
                s=36,
                zorder=5,
                label=f"maker sell ({int(maker_sell.sum())})",
            )
        if hedge.any():
            ax_px.scatter(
                ft[hedge],
                fpx[hedge],
                marker="x",
                color="black",
                s=42,
                zorder=6,
                label=f"hedge ({int(hedge.sum())})",
            )

    # reference lines (drawn even without data so the panels keep their meaning)
    ax_inv.axhline(0.0, color="0.6", lw=0.6)
    lines = reference_lines(thresholds)
    for i, level in enumerate(lines["inventory"]):
        style = {"color": "0.45" if i == 0 else "tab:red", "ls": "--", "lw": 0.8}
        ax_inv.axhline(level, label=f"±{level:g}", **style)
        ax_inv.axhline(-level, **style)
    ax_pnl.axhline(0.0, color="0.6", lw=0.6)
    for trigger in lines["pnl"]:
        ax_pnl.axhline(trigger, color="tab:red", ls="--", lw=0.8, label=f"PnL guard {trigger:g}")
    for regime in lines["volatility"]:
        ax_vol.axhline(regime, color="0.3", ls="--", lw=0.8, label=f"{regime:g} bps")

    ax_guard.set_ylim(-0.25, 1.25 + GUARD_OFFSET)
    ax_guard.set_yticks([0, 1], ["off", "on"])
    ax_vol.set_ylim(bottom=0)

    ax_px.set_ylabel("price")
    ax_inv.set_ylabel("inventory (base)")
    ax_pnl.set_ylabel("realized PnL (quote)")
    ax_vol.set_ylabel("volatility (bps)")
    ax_guard.set_ylabel("guards")
    ax_guard.set_xlabel("time (UTC)")

    for ax in axes:
        ax.grid(True, color="0.9", lw=0.6)
        ax.set_axisbelow(True)
        handles, _ = ax.get_legend_handles_labels()
        if handles:
            ax.legend(loc="upper left", fontsize=8, framealpha=0.85, ncols=min(len(handles), 6))
    if has_timeline or fl.height > 0:
        locator = mdates.AutoDateLocator()
        ax_guard.xaxis.set_major_locator(locator)
        ax_guard.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    else:  # nothing to place in time: don't pretend the run happened in 1970
        ax_guard.xaxis.set_major_formatter(matplotlib.ticker.NullFormatter())

    fig.savefig(png_path, dpi=_DPI, metadata=_PNG_METADATA)
    plt.close(fig)


# -- where the PnL goes: mark-outs and attribution --------------------------------------------------

_CAUSE_COLORS = {
    "trade_through": "tab:red",
    "trade_at_price": "tab:orange",
    "touch": "tab:purple",
    "ioc": "0.45",
    "unknown": "tab:brown",
}
_ATTRIBUTION_PARTS = (
    ("spread earned", "spread_quote"),
    ("adverse selection", "adverse_selection_quote"),
    ("fees", "fees_quote"),
    ("hedging", "hedging_quote"),
    ("inventory", "inventory_quote"),
)


def _num(value: Any) -> float | None:
    """A summary's decimal string as a float for drawing (None stays None)."""
    return None if value is None else float(Decimal(str(value)))


def _plot_markouts(market: str, preset: str | None, stats: dict[str, Any], png_path: pathlib.Path) -> None:
    """Left: mean mark-out (bps, notional-weighted) by horizon, one bar per cause and a line for
    all maker fills. Right: the PnL attribution as a waterfall ending at the total."""
    marks, attribution = stats.get("markouts") or {}, stats.get("attribution") or {}
    labels = list(marks.get("horizons_s") or [])
    fig, (ax_m, ax_a) = plt.subplots(1, 2, figsize=(13.0, 4.6), layout="constrained")
    title = f"{market}: where the PnL goes" + (f"  —  preset: {preset}" if preset else "")
    fig.suptitle(title, fontsize=13, fontweight="bold")

    by_cause = marks.get("by_cause") or {}
    causes = [(c, by_cause[c]) for c in (*CAUSES, *sorted(set(by_cause) - set(CAUSES))) if c in by_cause]
    x = np.arange(len(labels), dtype=float)
    width = 0.8 / max(len(causes), 1)
    for i, (cause, group) in enumerate(causes):
        ys = [_num((group.get("markout_bps") or {}).get(lab)) for lab in labels]
        values = np.array([np.nan if y is None else y for y in ys], dtype=float)
        ax_m.bar(
            x - 0.4 + width * (i + 0.5),
            values,
            width,
            color=_CAUSE_COLORS.get(cause, "tab:gray"),
            label=f"{cause} ({group.get('count', 0)})",
        )
    maker = marks.get("maker") or {}
    ys = [_num((maker.get("markout_bps") or {}).get(lab)) for lab in labels]
    if labels and any(y is not None for y in ys):
        ax_m.plot(
            x,
            [np.nan if y is None else y for y in ys],
            color="black",
            marker="o",
            lw=1.5,
            label=f"all maker fills ({maker.get('count', 0)})",
        )
    ax_m.axhline(0.0, color="0.5", lw=0.8)
    ax_m.set_xticks(x, [f"{lab} s" for lab in labels])
    ax_m.set_ylabel("mean mark-out (bps, notional-weighted)")
    ax_m.set_title("mark-out of our fills by horizon (negative: adverse selection)", fontsize=10)
    if not causes:
        ax_m.text(0.5, 0.5, "no fills", transform=ax_m.transAxes, ha="center", va="center", color="0.4")

    parts = [(name, _num(attribution.get(key)) or 0.0) for name, key in _ATTRIBUTION_PARTS]
    total = _num(attribution.get("total_quote")) or 0.0
    level = 0.0
    for i, (_name, value) in enumerate(parts):
        color = "tab:green" if value >= 0 else "tab:red"
        ax_a.bar(i, value, bottom=level, color=color, width=0.6)
        ax_a.text(
            i, level + value, f"{value:+.4g}", ha="center", va="bottom" if value >= 0 else "top", fontsize=8
        )
        level += value
    ax_a.bar(len(parts), total, color="tab:blue", width=0.6)
    ax_a.text(
        len(parts), total, f"{total:+.4g}", ha="center", va="bottom" if total >= 0 else "top", fontsize=8
    )
    ax_a.axhline(0.0, color="0.5", lw=0.8)
    horizon = attribution.get("horizon_s")
    names = [
        name if key != "adverse_selection_quote" or not horizon else f"{name}\n({horizon} s)"
        for name, key in _ATTRIBUTION_PARTS
    ]
    ax_a.set_xticks(range(len(parts) + 1), [*names, "total"], fontsize=8)
    ax_a.set_ylabel("PnL (quote)")
    ax_a.set_title("PnL attribution (realized + unrealized at the final mid)", fontsize=10)
    for ax in (ax_m, ax_a):
        ax.grid(True, axis="y", color="0.9", lw=0.6)
        ax.set_axisbelow(True)
    handles, _ = ax_m.get_legend_handles_labels()
    if handles:
        ax_m.legend(loc="best", fontsize=8, framealpha=0.85)
    fig.savefig(png_path, dpi=_DPI, metadata=_PNG_METADATA)
    plt.close(fig)


def _markout_table(stats: dict[str, Any]) -> str:
    """Per cause: count, volume and the mean mark-out at each horizon; then the attribution."""
    marks, attribution = stats.get("markouts") or {}, stats.get("attribution") or {}
    labels = list(marks.get("horizons_s") or [])
    by_cause = marks.get("by_cause") or {}
    order = (*CAUSES, *sorted(set(by_cause) - set(CAUSES)))
    groups = [
        *((c, by_cause[c]) for c in order if c in by_cause),
        ("all maker fills", marks.get("maker") or {}),
    ]
    head = "".join(f"<th>{html.escape(lab)} s (bps)</th>" for lab in labels)
    rows = []
    for name, group in groups:
        bps = group.get("markout_bps") or {}
        unresolved = group.get("unresolved") or {}
        cells = "".join(
            f"<td>{'—' if bps.get(lab) is None else html.escape(_fmt(bps[lab]))}"
            + (f" <span class='muted'>({unresolved[lab]} open)</span>" if unresolved.get(lab) else "")
            + "</td>"
            for lab in labels
        )
        rows.append(
            f"<tr><th>{html.escape(name)}</th><td>{group.get('count', 0):,}</td>"
            f"<td>{html.escape(_fmt(group.get('volume_base', '0')))}</td>"
            f"<td>{html.escape(_fmt(group.get('volume_quote', '0')))}</td>{cells}</tr>"
        )
    table = (
        "<table class='stats marks'>\n<tr><th>cause</th><th>fills</th><th>volume (base)</th>"
        f"<th>volume (quote)</th>{head}</tr>\n" + "\n".join(rows) + "\n</table>"
    )
    parts = [(name, attribution.get(key)) for name, key in _ATTRIBUTION_PARTS]
    parts.append(("total", attribution.get("total_quote")))
    attr_rows = "".join(
        f"<tr><th>{html.escape(name)}</th><td class='{_sign_class(value)}'>{html.escape(_fmt(value))}</td></tr>"
        for name, value in parts
        if value is not None
    )
    if attr_rows:
        horizon = attribution.get("horizon_s")
        note = f" (adverse selection at {html.escape(str(horizon))} s)" if horizon else ""
        table += f"\n<table class='stats'>\n<tr><th colspan='2'>PnL attribution, quote{note}</th></tr>{attr_rows}</table>"
    return table


def _sign_class(value: Any) -> str:
    try:
        d = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return ""
    return "neg" if d < 0 else ("pos" if d > 0 else "")


def _finding_section(markets: list[str], market_stats: dict[str, Any], pngs: dict[str, pathlib.Path]) -> str:
    """The report's first section: mark-outs and attribution of each market that has them."""
    parts = []
    for market in markets:
        png = pngs.get(market)
        if png is None:
            continue
        b64 = base64.b64encode(png.read_bytes()).decode("ascii")
        parts.append(
            f"<h3>{html.escape(market)}</h3>\n<div class='market-body'>\n"
            f"{_markout_table(market_stats.get(market) or {})}\n"
            f"<img alt='{html.escape(market)} mark-outs and attribution' src='data:image/png;base64,{b64}'>\n"
            "</div>"
        )
    if not parts:
        return ""
    return (
        "<section class='market' id='where-the-pnl-goes'>\n<h2>Where the PnL goes</h2>\n"
        "<p class='muted'>Mark-out of a fill at horizon h: sign &middot; (mid(t+h) &minus; price) / price, "
        "in bps (buy +1, sell &minus;1), mean weighted by notional over the fills resolved at h. "
        "Attribution: spread earned against the mid at the fill, adverse selection (the mid's move "
        "after our maker fills), fees, hedging (half-spread paid by hedges) and inventory (the rest: "
        "carrying the position to the end); the parts add up to the total exactly.</p>\n"
        + "\n".join(parts)
        + "\n</section>"
    )


# -- HTML -----------------------------------------------------------------------------------------


def _fmt_decimal(value: Any) -> str:
    """Trim a decimal string for display (``"0.500000000000000000"`` -> ``"0.5"``)."""
    try:
        d = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return str(value)
    if d == 0:
        return "0"
    if abs(d) < Decimal("1e-8"):
        return f"{d:.3e}"
    d = d.quantize(Decimal("1e-8")).normalize()
    return format(d, "f")


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.3f}"
    if isinstance(value, str):
        return _fmt_decimal(value)
    return json.dumps(value, sort_keys=True)


_PNL_KEYS = {"realized_pnl_quote"}


def _market_table(stats: dict[str, Any], intents: dict[str, int]) -> str:
    rows: list[tuple[str, str, str]] = []  # (label, value, css class)
    for key, value in stats.items():
        if key == "inventory_time_share_below" and isinstance(value, dict):
            for level, share in sorted(value.items(), key=lambda kv: float(kv[0])):
                rows.append(
                    (
                        f"time with |inventory| &lt; {html.escape(str(level))}",
                        html.escape(f"{float(share) * 100:.1f} %"),
                        "",
                    )
                )
            continue
        if key in ("markouts", "attribution"):  # their own section, first in the report
            continue
        if key == "thresholds" and isinstance(value, dict):
            rows.extend((f"setting: {html.escape(k)}", html.escape(_fmt(v)), "") for k, v in value.items())
            continue
        css = ""
        if key in _PNL_KEYS:
            try:
                pnl = Decimal(str(value))
                css = "neg" if pnl < 0 else ("pos" if pnl > 0 else "")
            except (InvalidOperation, ValueError):
                css = ""
        rows.append((html.escape(key), html.escape(_fmt(value)), css))
    for kind, n in sorted(intents.items()):
        rows.append((f"intents.parquet rows: {html.escape(kind)}", f"{n:,}", ""))
    if not rows:
        return "<p class='muted'>no summary for this market</p>"
    body = "\n".join(f"<tr><th>{label}</th><td class='{css}'>{value}</td></tr>" for label, value, css in rows)
    return f"<table class='stats'>\n{body}\n</table>"


_CSS = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 24px; color: #222;
       background: #fafafa; }
h1 { margin-bottom: 4px; }
.muted { color: #777; }
.run th, .stats th { text-align: left; font-weight: 500; color: #555; padding: 2px 16px 2px 0; }
.run td, .stats td { text-align: right; font-variant-numeric: tabular-nums; padding: 2px 0; }
.stats tr:nth-child(even) { background: #f0f0f0; }
section.market { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: 16px;
                 margin: 24px 0; }
.market-body { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
.market-body img { max-width: 100%; height: auto; flex: 1 1 800px; }
td.neg { color: #b00020; font-weight: 600; }
td.pos { color: #1b5e20; font-weight: 600; }
nav a { margin-right: 12px; }
"""


def _html_page(
    summary: dict[str, Any],
    markets: list[str],
    pngs: dict[str, pathlib.Path],
    intents: dict[str, dict[str, int]],
    mark_pngs: dict[str, pathlib.Path] | None = None,
) -> str:
    preset = summary.get("preset")
    run_rows = []
    for key in ("preset", "events", "wall_seconds", "events_per_second"):
        if key in summary:
            value = summary[key] if key == "preset" else _fmt(summary[key])
            run_rows.append(f"<tr><th>{key}</th><td>{html.escape(str(value))}</td></tr>")
    nav = " ".join(f"<a href='#m-{html.escape(_safe_name(m))}'>{html.escape(m)}</a>" for m in markets)
    sections = []
    market_stats = summary.get("markets") or {}
    for market in markets:
        b64 = base64.b64encode(pngs[market].read_bytes()).decode("ascii")
        sections.append(
            f"<section class='market' id='m-{html.escape(_safe_name(market))}'>\n"
            f"<h2>{html.escape(market)}</h2>\n<div class='market-body'>\n"
            f"{_market_table(market_stats.get(market) or {}, intents.get(market, {}))}\n"
            f"<img alt='{html.escape(market)} timeline' src='data:image/png;base64,{b64}'>\n"
            "</div>\n</section>"
        )
    title = "mmflow replay report" + (f" — {preset}" if preset else "")
    return (
        "<!DOCTYPE html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n"
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1>\n"
        f"<table class='run'>\n{''.join(run_rows)}\n</table>\n"
        f"<nav>{nav}</nav>\n"
        + _finding_section(markets, market_stats, mark_pngs or {})
        + "\n".join(sections)
        + "\n</body>\n</html>\n"
    )


# -- entry point ----------------------------------------------------------------------------------


def write_report(out_dir: pathlib.Path) -> pathlib.Path:
    """Write ``report.html`` and ``report_<market>.png`` into ``out_dir``; return the HTML path."""
    out_dir = pathlib.Path(out_dir)
    summary = _read_summary(out_dir / "summary.json")
    timeline = _read_parquet(out_dir / "timeline.parquet", _TIMELINE_COLUMNS)
    fills = _read_parquet(out_dir / "fills.parquet", _FILL_COLUMNS)
    intents = _intent_counts(out_dir / "intents.parquet")

    preset = summary.get("preset")
    markets = sorted(
        set((summary.get("markets") or {}).keys())
        | set(timeline["market"].drop_nulls().unique().to_list())
        | set(fills["market"].drop_nulls().unique().to_list())
    )

    pngs: dict[str, pathlib.Path] = {}
    for market in markets:
        png = out_dir / f"report_{_safe_name(market)}.png"
        _plot_market(
            market,
            preset,
            timeline.filter(pl.col("market") == market),
            fills.filter(pl.col("market") == market),
            png,
            ((summary.get("markets") or {}).get(market) or {}).get("thresholds"),
        )
        pngs[market] = png
    mark_pngs: dict[str, pathlib.Path] = {}
    for market in markets:
        stats = (summary.get("markets") or {}).get(market) or {}
        if stats.get("markouts") or stats.get("attribution"):
            png = out_dir / f"report_{_safe_name(market)}_markouts.png"
            _plot_markouts(market, preset, stats, png)
            mark_pngs[market] = png

    report = out_dir / "report.html"
    report.write_text(_html_page(summary, markets, pngs, intents, mark_pngs), encoding="utf-8")
    return report
