"""``mmflow execute``: intents from Kafka as orders on Binance USD-M or spot (connectors/binance_exec.py)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from mmflow.cli.args import broker_unusable, common, kafka_settings, serving
from mmflow.cli.stopping import stop_event
from mmflow.config import ConfigError
from mmflow.connectors.binance_exec import ExchangeDown, Executor
from mmflow.connectors.binance_rest import ApiError, Unreachable
from mmflow.connectors.metrics import ExecMetrics
from mmflow.exchange_orders import ClientIdError, check_prefix

KEY_ENV, SECRET_ENV = "MMFLOW_API_KEY", "MMFLOW_API_SECRET"


def cmd_execute(args: argparse.Namespace) -> int:
    """Until SIGINT/SIGTERM or ``--seconds`` (then this bot's orders are cancelled): exit 0; 2 for
    bad arguments, settings that do not fit the exchange's filters or refused credentials; 1 when
    the broker or the exchange cannot be used."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.testnet and (args.ws_url or args.rest_url):
        raise ConfigError("execute: --testnet or --ws-url/--rest-url, not both")
    if bool(args.ws_url) != bool(args.rest_url):
        raise ConfigError("execute: --ws-url and --rest-url go together")
    key, secret = os.environ.get(KEY_ENV, ""), os.environ.get(SECRET_ENV, "")
    if not key or not secret:
        raise ConfigError(f"execute: set {KEY_ENV} and {SECRET_ENV} (never on the command line)")
    try:
        prefix = check_prefix(args.client_prefix)
    except ClientIdError as err:
        raise ConfigError(f"execute: --client-prefix: {err}") from None
    symbols = [s.strip().upper() for s in args.symbols.split(",") if s.strip()]
    if not symbols:
        raise ConfigError("execute: give --symbols SYM[,SYM...]")
    settings = kafka_settings(args)
    if broker_unusable(settings, "execute"):
        return 1
    metrics = serving(ExecMetrics(), args, settings)
    ex = Executor(
        settings,
        args.venue,
        symbols,
        key,
        secret,
        metrics,
        rest_url=args.rest_url,
        ws_url=args.ws_url,
        testnet=args.testnet,
        prefix=prefix,
        countdown_s=args.countdown,
        request_timeout_s=args.request_timeout,
    )

    async def main() -> None:
        stop = stop_event(args.seconds)
        await ex.run(stop)

    try:
        asyncio.run(main())
    except (ExchangeDown, ApiError, Unreachable) as err:
        print(f"mmflow execute: {err}", file=sys.stderr)
        return 1
    print(f"execute: stopped after {ex.sent:,} order request(s)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("execute", help="intents from Kafka as orders on Binance (USD-M or spot)")
    common(p)
    p.add_argument("--bootstrap", help="Kafka bootstrap servers (default: settings kafka.bootstrap_servers)")
    p.add_argument("--venue", choices=["binance-usdm", "binance-spot"], default="binance-usdm")
    p.add_argument("--symbols", required=True, help="comma separated, e.g. BTCUSDT,ETHUSDT")
    p.add_argument("--rest-url", help="REST base URL (with --ws-url; e.g. mmflow exchange-sim's)")
    p.add_argument("--ws-url", help="websocket base URL (with --rest-url)")
    p.add_argument("--testnet", action="store_true", help="the venue's testnet")
    p.add_argument(
        "--client-prefix",
        default="mmf",
        help="this bot's client-id prefix (1-8 letters/digits); orders without it are never touched",
    )
    p.add_argument(
        "--countdown",
        type=float,
        default=10.0,
        help="dead man's switch: seconds until the exchange "
        "cancels this bot's orders without a refresh (USD-M countdownCancelAll)",
    )
    p.add_argument("--request-timeout", type=float, default=10.0, help="seconds a REST request may take")
    p.add_argument("--metrics-port", type=int)
    p.add_argument("--seconds", type=float, help="stop after this long (default: run until killed)")
    p.set_defaults(func=cmd_execute)
