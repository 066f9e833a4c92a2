"""The ``mmflow`` command line: demo, replay, compare, the live Kafka processes (``live``) and the
exchange simulator (``exchange-sim``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mmflow.cli import exchange_sim, execute, live
from mmflow.cli.args import common, inputs
from mmflow.config import ConfigError, Settings, load_settings
from mmflow.connectors.files import InputError, load_inputs
from mmflow.connectors.metrics import FlowMetrics
from mmflow.connectors.synthetic import DEFAULT_SCENARIO, SCENARIOS, describe, generate
from mmflow.flows.replay import replay

VALIDATION_ROWS: tuple[tuple[str, str], ...] = (
    ("realized PnL (quote)", "realized_pnl_quote"),
    ("fees (quote)", "fees_quote"),
    ("final inventory", "final_inventory_base"),
    ("max |inventory|", "max_abs_inventory_base"),
    ("longest |inv| > 0.02 (s)", "inventory_longest_above_s.0.02"),
    ("time |inv| <= 0.01", "inventory_time_share_below.0.01"),
    ("time |inv| <= 0.02", "inventory_time_share_below.0.02"),
    ("time |inv| <= 0.05", "inventory_time_share_below.0.05"),
    ("PnL guard engagements", "pnl_guard_engagements"),
    ("trend guard engagements", "trend_guard_engagements"),
    ("regime switches", "regime_switches"),
    ("maker fills", "maker_fills"),
    ("hedge fills", "hedge_fills"),
    ("hedge volume (base)", "hedge_volume_base"),
    ("hedge cost (quote)", "hedge_cost_quote"),
    ("quote intents", "quote_intents"),
    ("hedge intents", "hedge_intents"),
)


#: The PnL attribution (mmflow/markouts.py), part by part; they add up to the total.
ATTRIBUTION_ROWS: tuple[tuple[str, str], ...] = (
    ("PnL: spread earned", "spread_quote"),
    ("PnL: adverse selection", "adverse_selection_quote"),
    ("PnL: fees", "fees_quote"),
    ("PnL: hedging", "hedging_quote"),
    ("PnL: inventory", "inventory_quote"),
    ("PnL: total", "total_quote"),
)


def _get(d: dict[str, Any], key: str | tuple[str, ...]) -> Any:
    """``d[key]``; a dotted string (one level) or a tuple of keys reaches into nested dicts."""
    if isinstance(key, tuple):
        for part in key:
            d = d.get(part) if isinstance(d, dict) else None  # type: ignore[assignment]
        return d
    head, _, rest = key.partition(".")
    if rest and isinstance(d.get(head), dict):
        return d[head].get(rest)
    return d.get(key)


def _rows(stats: list[dict[str, Any]]) -> list[tuple[str, str | tuple[str, ...]]]:
    """The table's rows for one market: the validation metrics, the maker fills' mark-out at each
    horizon the runs used, and the PnL attribution."""
    rows: list[tuple[str, str | tuple[str, ...]]] = list(VALIDATION_ROWS)
    labels: list[str] = []
    for st in stats:
        for lab in _get(st, ("markouts", "horizons_s")) or []:
            if lab not in labels:
                labels.append(lab)
    rows += [(f"mark-out {lab} s (bps, maker)", ("markouts", "maker", "markout_bps", lab)) for lab in labels]
    causes: list[str] = []
    for st in stats:
        for cause in _get(st, ("markouts", "by_cause")) or {}:
            if cause not in causes:
                causes.append(cause)
    for cause in sorted(causes):
        where = ("markouts", "by_cause", cause)
        rows += [(f"{cause}: fills", (*where, "count")), (f"{cause}: volume (base)", (*where, "volume_base"))]
        rows += [(f"{cause}: mark-out {lab} s (bps)", (*where, "markout_bps", lab)) for lab in labels]
    horizons = sorted({str(_get(st, ("attribution", "horizon_s"))) for st in stats if "attribution" in st})
    if horizons:
        rows += [
            (
                label + (f" ({'/'.join(horizons)} s)" if key == "adverse_selection_quote" else ""),
                ("attribution", key),
            )
            for label, key in ATTRIBUTION_ROWS
        ]
    return rows


#: Rows whose float is a duration, not a share.
_SECONDS_KEYS = frozenset({"inventory_longest_above_s.0.02"})


def _fmt(value: Any, key: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and key in _SECONDS_KEYS:
        return f"{value:,.1f}"
    if isinstance(value, float):
        return f"{value:.1%}" if value <= 1.0 else f"{value:,.1f}"
    return str(value)


def comparison_table(results: dict[str, dict[str, Any]]) -> str:
    """The analysis' validation metrics, one column per run, one block per market."""
    names = list(results)
    markets = sorted({m for r in results.values() for m in r["markets"]})
    width = max(len(n) for n in names) + 2
    lines = []
    for market in markets:
        lines.append(f"\n{market}")
        lines.append(f"  {'metric':<38}" + "".join(f"{n:>{max(width, 16)}}" for n in names))
        stats = [results[n]["markets"].get(market, {}) for n in names]
        for label, key in _rows(stats):
            cells = [_fmt(_get(st, key), key) for st in stats]
            lines.append(f"  {label:<38}" + "".join(f"{c:>{max(width, 16)}}" for c in cells))
    return "\n".join(lines)


def _settings(args: argparse.Namespace, preset: str | None = None) -> Settings:
    return load_settings(preset or args.preset, args.config, args.set)


def _serve_metrics(port: int | None) -> FlowMetrics:
    metrics = FlowMetrics()
    if port is not None:
        metrics.serve(port)
        print(f"metrics on http://127.0.0.1:{port}/metrics", file=sys.stderr)
    return metrics


def _load(args: argparse.Namespace, settings: Settings) -> list[Any]:
    if not args.quotes and not args.trades and not args.frames:
        raise ConfigError("give at least one of --quotes / --trades / --frames")
    events, dead = load_inputs(
        args.quotes, args.trades, args.fills or [], settings.markets, depth=args.depth, frames=args.frames
    )
    return [*dead, *events]


def cmd_replay(args: argparse.Namespace) -> int:
    settings = _settings(args)
    events = _load(args, settings)
    metrics = _serve_metrics(args.metrics_port)
    result = replay(
        events,
        settings,
        Path(args.out),
        venue=None if args.fills else "paper",
        progress=not args.quiet,
        metrics=metrics,
        report=not args.no_report,
    )
    s = result.summary
    if not s["markets"]:
        return _nothing_processed(s)
    print(
        f"{s['events']:,} events in {s['wall_seconds']:.2f} s ({s['events_per_second']:,.0f} ev/s), "
        f"{s['dead_letters']} dead letters -> {args.out}"
    )
    print(comparison_table({settings.preset: s}))
    return 0


def _nothing_processed(summary: dict[str, Any]) -> int:
    """A run that decided nothing is a failure, whatever the reason: say so, exit 1."""
    print(
        f"mmflow: warning: processed no event ({summary['events']:,} read, "
        f"{summary['dead_letters']:,} dead letters): nothing was replayed",
        file=sys.stderr,
    )
    return 1


def _compare(
    events: list[Any], runs: dict[str, Settings], out: Path | None, quiet: bool
) -> dict[str, dict[str, Any]]:
    results = {}
    for name, settings in runs.items():
        res = replay(events, settings, out / name if out else None, progress=not quiet)
        results[name] = res.summary
    return results


#: The sensitivity table's columns per run: (heading, summary key).
SENSITIVITY_COLUMNS: tuple[tuple[str, str | tuple[str, ...]], ...] = (
    ("fills", "maker_fills"),
    ("PnL", "realized_pnl_quote"),
    ("<=0.01", "inventory_time_share_below.0.01"),
    ("max|inv|", "max_abs_inventory_base"),
    ("guard", "pnl_guard_engagements"),
    ("rejects", "post_only_rejects"),
    ("mo 1s", ("markouts", "maker", "markout_bps", "1")),
)


def _cell(value: Any, key: str | tuple[str, ...]) -> str:
    if value is None:
        return "-"
    if key == "realized_pnl_quote":
        return f"{float(value):.3f}"
    return _fmt(value, key if isinstance(key, str) else "")


def sensitivity_table(results: dict[tuple[str, str, float], dict[str, Any]]) -> str:
    """Each run (preset or config) under each venue model: one row per (queue, latency), the
    validation figures of every run side by side."""
    runs = list(dict.fromkeys(r for r, _, _ in results))
    models = list(dict.fromkeys((q, lat) for _, q, lat in results))
    markets = sorted({m for r in results.values() for m in r["markets"]})
    lines = []
    for market in markets:
        lines.append(f"\n{market}")
        heads = [f"{run} {h}" for run in runs for h, _ in SENSITIVITY_COLUMNS]
        lines.append(f"  {'queue':<14}{'latency':>9}" + "".join(f"{h:>{len(h) + 2}}" for h in heads))
        for queue, lat in models:
            cells = []
            for run in runs:
                stats = results[(run, queue, lat)]["markets"].get(market, {})
                for h, key in SENSITIVITY_COLUMNS:
                    cells.append(f"{_cell(_get(stats, key), key):>{len(run) + len(h) + 3}}")
            lines.append(f"  {queue:<14}{f'{lat:g} ms':>9}" + "".join(cells))
    return "\n".join(lines)


def _runs(args: argparse.Namespace, extra: list[str]) -> dict[str, Settings]:
    runs: dict[str, Settings] = {}
    for preset in args.preset or []:
        runs[preset] = load_settings(preset, None, [*args.set, *extra])
    for cfg in args.config or []:
        runs[Path(cfg).stem] = load_settings(None, cfg, [*args.set, *extra])
    if not runs:
        runs = {p: load_settings(p, None, [*args.set, *extra]) for p in ("phase1", "phase2")}
    return runs


def cmd_compare(args: argparse.Namespace) -> int:
    if args.queue or args.latency_ms:
        return _sensitivity(args)
    runs = _runs(args, [])
    events = _load(args, next(iter(runs.values())))
    results = _compare(events, runs, Path(args.out) if args.out else None, args.quiet)
    first = next(iter(results.values()))
    if not first["markets"]:
        return _nothing_processed(first)
    print(comparison_table(results))
    return 0


def _sensitivity(args: argparse.Namespace) -> int:
    """Every run under every queue model and latency asked for (order entry and cancel alike)."""
    queues = args.queue or ["front", "back", "probabilistic"]
    latencies = args.latency_ms or [50.0]
    events: list[Any] | None = None
    results: dict[tuple[str, str, float], dict[str, Any]] = {}
    for queue in queues:
        for lat in latencies:
            model = [
                f"venue.queue.model={queue}",
                f"venue.latency.order_ms={lat}",
                f"venue.latency.cancel_ms={lat}",
            ]
            runs = _runs(args, model)
            if events is None:
                events = _load(args, next(iter(runs.values())))
            out = Path(args.out) / f"{queue}-{lat:g}ms" if args.out else None
            for name, summary in _compare(events, runs, out, args.quiet).items():
                if not summary["markets"]:
                    return _nothing_processed(summary)
                results[(name, queue, lat)] = summary
    print(sensitivity_table(results))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """The embedded default: synthetic market, phase 1 vs phase 2, no file and no Kafka needed."""
    events = generate(seconds=args.seconds, seed=args.seed, scenario=args.scenario)
    d = describe(events)
    print(
        f"synthetic market synthetic:SYNTH-SOL, scenario {args.scenario}: {d['events']:,} events "
        f"({d['books']:,} books, {d['trades']:,} trades) over {d['seconds']:.0f} s, seed {args.seed}"
    )
    runs = {p: load_settings(p, None, args.set) for p in ("phase1", "phase2")}
    out = Path(args.out)
    results = _compare(list(events), runs, out, args.quiet)
    print(comparison_table(results))
    print(f"\nreports: {out / 'phase1' / 'report.html'}  {out / 'phase2' / 'report.html'}")
    return 0


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="mmflow", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="synthetic market, phase 1 vs phase 2 (the embedded default)")
    p.add_argument("--seconds", type=float, default=1800.0)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument(
        "--scenario",
        choices=sorted(SCENARIOS),
        default=DEFAULT_SCENARIO,
        help=f"synthetic market to simulate (default {DEFAULT_SCENARIO}; quiet is the historic market)",
    )
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--set", action="append", default=[])
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("replay", help="replay recorded market data through the flow")
    inputs(p)
    common(p)
    p.add_argument("--out", required=True)
    p.add_argument("--metrics-port", type=int)
    p.add_argument("--no-report", action="store_true")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("compare", help="validation metrics of several presets/configs side by side")
    inputs(p)
    common(p, preset_multi=True)
    p.add_argument("--out")
    p.add_argument(
        "--queue",
        action="append",
        choices=["front", "back", "probabilistic"],
        help="venue queue model (repeatable): a sensitivity table of every run under each",
    )
    p.add_argument(
        "--latency-ms",
        action="append",
        type=float,
        help="venue order and cancel latency (repeatable), with --queue or alone",
    )
    p.set_defaults(func=cmd_compare)

    live.register(sub)
    exchange_sim.register(sub)
    execute.register(sub)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ConfigError, InputError) as err:
        print(f"mmflow: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
