"""Arguments shared by the commands: settings sources and input files, and what the Kafka
commands do with them before they start (settings, the broker check, the metrics endpoint)."""

from __future__ import annotations

import argparse
import sys
from typing import TypeVar

from mmflow.config import Settings, load_settings
from mmflow.connectors.kafka_io import broker_problem
from mmflow.connectors.metrics import ProcessMetrics

M = TypeVar("M", bound=ProcessMetrics)


def common(p: argparse.ArgumentParser, preset_multi: bool = False) -> None:
    if preset_multi:
        p.add_argument("--preset", action="append", choices=["phase1", "phase2"], help="repeatable")
        p.add_argument("--config", action="append", help="YAML settings file (repeatable)")
    else:
        p.add_argument("--preset", choices=["phase1", "phase2"], default="phase2")
        p.add_argument("--config", help="YAML settings file")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a setting, e.g. strategy.hedger.trigger_base=0.02",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def inputs(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--quotes", action="append", default=[], help="Tardis quotes CSV(.gz) or an mmflow recording"
    )
    p.add_argument(
        "--trades", action="append", default=[], help="Tardis trades CSV(.gz) or an mmflow recording"
    )
    p.add_argument(
        "--depth",
        action="append",
        default=[],
        metavar="FILE",
        help="Tardis incremental_book_L2 CSV(.gz): order book depth (repeatable)",
    )
    p.add_argument(
        "--frames",
        action="append",
        default=[],
        metavar="FILE",
        help="raw Binance websocket frames (.txt.gz): book ticks, trades and depth (repeatable)",
    )
    p.add_argument(
        "--fills", action="append", help="recorded fills or a live journal (faithful mode: no venue)"
    )


def overrides(args: argparse.Namespace) -> list[str]:
    """The ``--set`` overrides, with ``--bootstrap`` (where the command has it) as the last."""
    data = list(args.set or [])
    if getattr(args, "bootstrap", None):
        data.append(f"kafka.bootstrap_servers={args.bootstrap}")
    return data


def kafka_settings(args: argparse.Namespace) -> Settings:
    """The settings of a Kafka command: preset, config file, ``--set`` and ``--bootstrap``."""
    return load_settings(args.preset, args.config, overrides(args))


def broker_unusable(settings: Settings, command: str) -> bool:
    """True, having said why in one line, when the settings' broker cannot be used."""
    problem = broker_problem(settings.kafka)
    if problem is not None:
        print(f"mmflow {command}: {problem}", file=sys.stderr)
    return problem is not None


def serving(metrics: M, args: argparse.Namespace, settings: Settings) -> M:
    """``metrics``, served on ``--metrics-port`` when one is given."""
    if args.metrics_port is not None:
        metrics.serve(args.metrics_port, settings.metrics.host)
    return metrics
