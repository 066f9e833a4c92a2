"""exchangeInfo: the symbols, their filters and the rate limits the simulator serves.

From a recorded response when one is given (``--exchange-info FILE``: a ``GET .../exchangeInfo``
line ``<URL> -> <time>: <body>``, as ../shared/data/exchange/ holds for USD-M), read at start and
served with a fresh ``serverTime``; otherwise built from the product's own instrument specs
(mmflow/config.py) with the venue's documented default rate limits. Either way the filters served
are the ones the simulator validates orders against.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from mmflow.config import InstrumentSpec, Settings

#: Binance's documented defaults (USD-M: 2400 weight/min, 1200 orders/min, 300 orders/10 s; spot:
#: 6000 weight/min, 100 orders/10 s, 200000 orders/day), served when no recorded file is given.
DEFAULT_RATE_LIMITS: dict[bool, list[dict[str, Any]]] = {
    False: [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400},
        {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
        {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300},
    ],
    True: [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
        {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
        {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
        {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
    ],
}
QUOTES = ("USDT", "USDC", "BUSD", "FDUSD", "BTC", "ETH")


@dataclass(frozen=True, slots=True)
class SymbolRules:
    """What an order on a symbol must satisfy, read back from the served filters."""

    symbol: str
    base: str
    quote: str
    tick: Decimal
    step: Decimal
    min_qty: Decimal
    min_notional: Decimal


class ExchangeInfoError(ValueError):
    """The recorded file holds no usable exchangeInfo for the venue."""


def read_recorded(path: str | Path, spot: bool) -> dict[str, Any]:
    """The exchangeInfo body of a recorded ``<URL> -> <time>: <body>`` file (gzipped or not)."""
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    for line in raw.splitlines():
        head, sep, body = line.partition(b": ")
        url = head.partition(b" -> ")[0]
        if sep and url.split(b"?")[0].endswith(b"/exchangeInfo"):
            info = orjson.loads(body)
            if ("futuresType" in info) == spot:
                kind = "spot" if spot else "USD-M"
                raise ExchangeInfoError(f"{path.name}: the recorded exchangeInfo is not a {kind} one")
            return info
    raise ExchangeInfoError(f"{path.name}: no GET .../exchangeInfo response in the file")


def _places(step: Decimal) -> int:
    return max(0, -step.normalize().as_tuple().exponent)  # type: ignore[operator]


def _split(symbol: str) -> tuple[str, str]:
    for quote in QUOTES:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)], quote
    raise ExchangeInfoError(f"cannot tell the base and quote assets of {symbol}")


def _usdm_symbol(symbol: str, spec: InstrumentSpec) -> dict[str, Any]:
    base, quote = _split(symbol)
    tick, lot = str(spec.tick_size), str(spec.lot_size)
    lot_filter = {"stepSize": lot, "maxQty": "1000", "minQty": str(spec.min_qty)}
    return {
        "symbol": symbol,
        "pair": symbol,
        "contractType": "PERPETUAL",
        "deliveryDate": 4133404800000,
        "onboardDate": 1569398400000,
        "status": "TRADING",
        "baseAsset": base,
        "quoteAsset": quote,
        "marginAsset": quote,
        "pricePrecision": _places(spec.tick_size),
        "quantityPrecision": _places(spec.lot_size),
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "underlyingType": "COIN",
        "underlyingSubType": [],
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": tick, "maxPrice": "10000000", "tickSize": tick},
            {"filterType": "LOT_SIZE", **lot_filter},
            {"filterType": "MARKET_LOT_SIZE", **lot_filter},
            {"filterType": "MAX_NUM_ORDERS", "limit": 200},
            {"filterType": "MIN_NOTIONAL", "notional": str(spec.min_notional)},
        ],
        "orderTypes": ["LIMIT", "MARKET"],
        "timeInForce": ["GTC", "IOC", "GTX"],
    }


def _spot_symbol(symbol: str, spec: InstrumentSpec) -> dict[str, Any]:
    base, quote = _split(symbol)
    tick, lot = str(spec.tick_size), str(spec.lot_size)
    return {
        "symbol": symbol,
        "status": "TRADING",
        "baseAsset": base,
        "baseAssetPrecision": 8,
        "quoteAsset": quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"],
        "icebergAllowed": False,
        "ocoAllowed": False,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": tick, "maxPrice": "1000000", "tickSize": tick},
            {"filterType": "LOT_SIZE", "minQty": str(spec.min_qty), "maxQty": "9000", "stepSize": lot},
            {
                "filterType": "NOTIONAL",
                "minNotional": str(spec.min_notional),
                "applyMinToMarket": True,
                "maxNotional": "9000000",
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            },
        ],
        "permissions": [],
        "permissionSets": [["SPOT"]],
    }


def from_specs(settings: Settings, venue: str, spot: bool) -> dict[str, Any]:
    """exchangeInfo for every market of ``venue`` in the settings (``binance-futures`` or
    ``binance``), with the documented default rate limits."""
    prefix = f"{venue}:"
    build = _spot_symbol if spot else _usdm_symbol
    symbols = [build(m[len(prefix) :], s) for m, s in settings.markets.items() if m.startswith(prefix)]
    info: dict[str, Any] = {
        "timezone": "UTC",
        "serverTime": 0,
        "rateLimits": DEFAULT_RATE_LIMITS[spot],
        "exchangeFilters": [],
        "symbols": symbols,
    }
    if not spot:
        info = {"futuresType": "U_MARGINED", **info, "assets": [{"asset": "USDT", "marginAvailable": True}]}
    return info


def _filter(entry: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((f for f in entry.get("filters", []) if f.get("filterType") == kind), {})


def rules(entry: dict[str, Any]) -> SymbolRules:
    """A symbol's order rules from its exchangeInfo entry (either venue's shape)."""
    price, lot = _filter(entry, "PRICE_FILTER"), _filter(entry, "LOT_SIZE")
    notional = _filter(entry, "MIN_NOTIONAL") or _filter(entry, "NOTIONAL")
    min_notional = notional.get("notional") or notional.get("minNotional") or "0"
    return SymbolRules(
        symbol=entry["symbol"],
        base=entry["baseAsset"],
        quote=entry["quoteAsset"],
        tick=Decimal(price.get("tickSize", "0")),
        step=Decimal(lot.get("stepSize", "0")),
        min_qty=Decimal(lot.get("minQty", "0")),
        min_notional=Decimal(str(min_notional)),
    )


def spec_for(entry: dict[str, Any], settings: Settings, market: str) -> InstrumentSpec:
    """The paper venue's spec of a symbol: the product's own when it has one (its fees), else
    one built from the served filters with the product's default fee rates."""
    if market in settings.markets:
        return settings.markets[market]
    r = rules(entry)
    lot = r.step if r.step > 0 else Decimal("0.001")
    tick = r.tick if r.tick > 0 else Decimal("0.01")
    return InstrumentSpec(
        tick_size=tick, lot_size=lot, min_qty=max(r.min_qty, lot), min_notional=r.min_notional
    )
