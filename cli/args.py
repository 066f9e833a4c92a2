"""Arguments shared by the commands: settings sources and input files."""

from __future__ import annotations

import argparse


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
