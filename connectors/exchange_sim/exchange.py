"""One simulated venue's state and its REST call path: the info, market, account, user streams,
rate limits and countdowns, and how a route is charged, authenticated and answered.

Every REST route is charged its weight (and, for a new order, one order) before anything else,
then checked as its security type says (NONE, USER_STREAM: the API key, SIGNED: the key, the
signature and recvWindow), then answered in the venue's JSON. Errors are Binance's
``{"code", "msg"}``.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import orjson
from aiohttp import web

from mmflow.config import LatencyConfig, Settings, VenueConfig, load_settings
from mmflow.connectors.binance_frames import venue_and_symbol
from mmflow.connectors.exchange_sim import auth, errors, exchange_info, limits
from mmflow.connectors.exchange_sim.errors import ApiError
from mmflow.connectors.exchange_sim.faults import Faults
from mmflow.connectors.exchange_sim.market import Market
from mmflow.connectors.exchange_sim.orders import Account
from mmflow.connectors.exchange_sim.user_stream import UserStreams

#: ``--venue`` -> (the Tardis venue name of the frames and instrument ids, spot?)
VENUES = {"binance-usdm": ("binance-futures", False), "binance-spot": ("binance", True)}
DEFAULT_QUOTE_BALANCE = Decimal(100_000)
DEFAULT_BASE_BALANCE = Decimal(10)  # spot: the frames symbol's base asset, so both sides can quote


class SimError(ValueError):
    """The simulator cannot start as configured; the message says why (never the secret)."""


@dataclass
class SimConfig:
    venue: str
    frames: Path
    api_key: str
    api_secret: str = field(repr=False)
    speed: float = 1.0
    exchange_info: Path | None = None
    #: ``now``: the replay starts with the server; ``subscribe``: at the first market stream.
    start: str = "now"
    balances: dict[str, Decimal] | None = None
    faults: Faults = field(default_factory=Faults)
    settings: Settings | None = None
    #: Serve the frames' exchange times moved to the wall clock (a fresh market for a consumer's
    #: stale-data check) instead of byte for byte as recorded.
    restamp: bool = False


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    name: str  # the weight table's key
    security: str  # NONE, USER_STREAM, SIGNED
    fn: Callable[[dict[str, str]], Any]
    weight: Callable[[dict[str, str]], int] | None = None
    orders: int = 0


class Exchange:
    """Everything one simulated venue holds: its info, market, account, streams and limits."""

    def __init__(self, cfg: SimConfig) -> None:
        if cfg.venue not in VENUES:
            raise SimError(f"--venue must be one of {sorted(VENUES)}, not {cfg.venue!r}")
        self.cfg = cfg
        self.venue_name, self.spot = VENUES[cfg.venue]
        frames_venue, self.symbol = venue_and_symbol(Path(cfg.frames))
        if frames_venue != self.venue_name:
            raise SimError(f"{Path(cfg.frames).name}: {frames_venue} frames, not {cfg.venue} ones")
        settings = cfg.settings or load_settings()
        self.info = self._info(settings)
        entries = {e["symbol"]: e for e in self.info["symbols"] if e.get("status", "TRADING") == "TRADING"}
        if self.symbol not in entries:
            raise SimError(
                f"the exchangeInfo served has no trading symbol {self.symbol} (the frames' symbol)"
            )
        self.faults = cfg.faults
        self.limiter = limits.RateLimiter.from_exchange_info(self.info["rateLimits"])
        self.streams = UserStreams(self.faults.server_ms)
        self.account = self._account(settings, entries)
        self.market = Market(Path(cfg.frames), self.spot, cfg.speed, self.account.on_market, cfg.restamp)
        self.countdowns: dict[str, asyncio.TimerHandle] = {}
        self.replay: asyncio.Task[None] | None = None

    def _info(self, settings: Settings) -> dict[str, Any]:
        if self.cfg.exchange_info is None:
            return exchange_info.from_specs(settings, self.venue_name, self.spot)
        try:
            return exchange_info.read_recorded(self.cfg.exchange_info, self.spot)
        except (OSError, exchange_info.ExchangeInfoError, orjson.JSONDecodeError) as err:
            raise SimError(f"--exchange-info: {err}") from None

    def _account(self, settings: Settings, entries: dict[str, dict[str, Any]]) -> Account:
        symbols = {s: exchange_info.rules(e) for s, e in entries.items()}
        specs = {s: exchange_info.spec_for(e, settings, f"{self.venue_name}:{s}") for s, e in entries.items()}
        # The network between client and simulator is real: the venue adds no latency of its own.
        zero = LatencyConfig(order_ms=0, cancel_ms=0, report_ms=0)
        cfg = VenueConfig(latency=zero, queue=settings.venue.queue, fees=settings.venue.fees)
        balances = self.cfg.balances
        if balances is None:
            rules = symbols[self.symbol]
            balances = {rules.quote: DEFAULT_QUOTE_BALANCE}
            if self.spot:
                balances[rules.base] = DEFAULT_BASE_BALANCE
        return Account(
            self.spot, self.venue_name, symbols, specs, cfg, balances, self.faults.server_ms, self._publish
        )

    def _publish(self, event: dict[str, Any]) -> None:
        self.streams.publish(event)

    def start_replay(self) -> None:
        if self.replay is None:
            self.replay = asyncio.get_running_loop().create_task(self.market.run())

    # -- REST --------------------------------------------------------------------------------
    async def call(self, request: web.Request, route: Route) -> web.Response:
        query = request.rel_url.raw_query_string
        body = await request.text() if request.can_read_body else ""
        params = dict(parse_qsl(query, keep_blank_values=True)) | dict(
            parse_qsl(body, keep_blank_values=True)
        )
        headers: dict[str, str] = {}
        try:
            weight = route.weight(params) if route.weight else limits.WEIGHTS[(self.spot, route.name)]
            headers = self.limiter.charge(weight, route.orders, self.faults.server_ms())
            if route.security != "NONE":
                self._check_key(request)
            if route.security == "SIGNED":
                auth.check_signature(self.cfg.api_secret, query, body)
                auth.check_timestamp(params, self.faults.server_ms())
            result = route.fn(params)
        except ApiError as err:
            return json_response(err.body(), err.status, headers | err.headers)
        return json_response(result, 200, headers)

    def _check_key(self, request: web.Request) -> None:
        key = request.headers.get("X-MBX-APIKEY")
        if not key:
            raise errors.bad_api_key(False)
        if not hmac.compare_digest(key.encode(), self.cfg.api_key.encode()):
            raise errors.bad_api_key(True)

    def symbol_param(self, p: dict[str, str], required: bool = True) -> str | None:
        symbol = p.get("symbol")
        if not symbol:
            if required:
                raise errors.missing("symbol")
            return None
        return self.account.rules(symbol).symbol

    def countdown(self, p: dict[str, str]) -> dict[str, Any]:
        """countdownCancelAll: cancel the symbol's orders unless refreshed within the time."""
        symbol = self.symbol_param(p)
        assert symbol is not None
        raw = p.get("countdownTime", "")
        if not raw.isdigit():
            raise errors.missing("countdownTime")
        ms = int(raw)
        old = self.countdowns.pop(symbol, None)
        if old is not None:
            old.cancel()
        if ms > 0:
            loop = asyncio.get_running_loop()
            self.countdowns[symbol] = loop.call_later(ms / 1000, self._countdown_fired, symbol)
        return {"symbol": symbol, "countdownTime": str(ms)}

    def _countdown_fired(self, symbol: str) -> None:
        self.countdowns.pop(symbol, None)
        self.account.cancel_all(symbol)


def json_response(value: Any, status: int, headers: dict[str, str]) -> web.Response:
    """A JSON answer (orjson: the answers carry no float, every decimal is already a string)."""
    return web.Response(
        body=orjson.dumps(value), status=status, content_type="application/json", headers=headers
    )
