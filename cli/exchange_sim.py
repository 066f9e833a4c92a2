"""``mmflow exchange-sim``: the Binance USD-M or spot API on 127.0.0.1, over a recorded market."""

from __future__ import annotations

import argparse
import asyncio
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path

from aiohttp import web

from mmflow.cli.args import common
from mmflow.config import ConfigError, load_settings
from mmflow.connectors.exchange_sim.app import VENUES, SimConfig, SimError, create_app
from mmflow.connectors.exchange_sim.auth import SECRET_ENV, SecretError, load_secret
from mmflow.connectors.exchange_sim.faults import Faults


def _balances(items: list[str]) -> dict[str, Decimal] | None:
    if not items:
        return None
    out = {}
    for item in items:
        asset, _, amount = item.partition("=")
        try:
            out[asset.upper()] = Decimal(amount)
        except InvalidOperation:
            raise ConfigError(f"--balance {item!r}: expected ASSET=AMOUNT") from None
    return out


def _faults(args: argparse.Namespace) -> Faults:
    faults = Faults(
        ws_drop_after=args.drop_ws_after, delay_ms=args.delay_ms, clock_skew_ms=args.clock_skew_ms
    )
    if args.fail_status is not None:
        try:
            faults.fail_for(args.fail_status, args.fail_for)
        except ValueError as err:
            raise ConfigError(f"--fail-status: {err}") from None
    return faults


def cmd_exchange_sim(args: argparse.Namespace) -> int:
    try:
        secret = load_secret(args.api_secret)
    except SecretError as err:
        raise ConfigError(str(err)) from None
    cfg = SimConfig(
        venue=args.venue,
        frames=Path(args.frames),
        api_key=args.api_key,
        api_secret=secret,
        speed=args.speed,
        exchange_info=Path(args.exchange_info) if args.exchange_info else None,
        start=args.start,
        balances=_balances(args.balance),
        faults=_faults(args),
        settings=load_settings(args.preset, args.config, args.set),
        restamp=args.restamp,
    )
    try:
        app = create_app(cfg)
    except SimError as err:
        raise ConfigError(str(err)) from None
    asyncio.run(_serve(app, args.port, args.venue, args.seconds))
    return 0


async def _serve(app: web.Application, port: int, venue: str, seconds: float | None) -> None:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    host, bound = runner.addresses[0][:2]
    print(
        f"exchange-sim: {venue} on http://{host}:{bound} (ws://{host}:{bound}/stream)",
        file=sys.stderr,
        flush=True,
    )
    try:
        if seconds is None:
            await asyncio.Event().wait()
        else:
            await asyncio.sleep(seconds)
    finally:
        await runner.cleanup()


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("exchange-sim", help="serve Binance's REST and websocket API over a recorded market")
    p.add_argument("--venue", required=True, choices=sorted(VENUES))
    p.add_argument("--frames", required=True, metavar="FILE", help="raw Binance websocket frames (.txt.gz)")
    p.add_argument("--speed", type=float, default=1.0, help="x recorded pace; 0 = as fast as possible")
    p.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (0: any free one)")
    p.add_argument("--api-key", required=True, help="the API key clients send in X-MBX-APIKEY")
    p.add_argument(
        "--api-secret",
        default=f"env:{SECRET_ENV}",
        metavar="env:NAME|file:PATH",
        help=f"where the HMAC secret is read from (default env:{SECRET_ENV}); a literal secret is refused",
    )
    p.add_argument(
        "--exchange-info",
        metavar="FILE",
        help="a recorded GET .../exchangeInfo response ('<URL> -> <time>: <body>' lines) to serve; "
        "default: built from the instrument specs with the venue's documented rate limits",
    )
    p.add_argument(
        "--restamp",
        action="store_true",
        help="move the frames' exchange times (E, T) to the wall clock, for a flow's stale-data check",
    )
    p.add_argument("--start", choices=["now", "subscribe"], default="now", help="when the replay starts")
    p.add_argument("--balance", action="append", default=[], metavar="ASSET=AMOUNT", help="starting balance")
    p.add_argument("--seconds", type=float, help="stop after this long (default: run until killed)")
    p.add_argument(
        "--drop-ws-after", type=int, metavar="N", help="fault: drop every websocket after N messages"
    )
    p.add_argument(
        "--fail-status", type=int, metavar="STATUS", help="fault: answer REST with 429 or a 5xx..."
    )
    p.add_argument(
        "--fail-for", type=float, default=30.0, metavar="SECONDS", help="...for this long from start"
    )
    p.add_argument("--delay-ms", type=float, default=0.0, help="fault: hold every REST answer this long")
    p.add_argument("--clock-skew-ms", type=int, default=0, help="fault: the server clock runs this far ahead")
    common(p)
    p.set_defaults(func=cmd_exchange_sim)
