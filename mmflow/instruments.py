"""Instrument ids: one string per tradable thing, ``"<venue>:<symbol>"``.

A symbol alone is ambiguous (BTCUSDT trades on Binance spot, Binance USD-M and Bybit, with different
ticks and fees), so every market is keyed by venue and symbol. The venue is the Tardis ``exchange``
name (``binance-futures``, ``binance``, ``bybit``, ``ftx``, ``synthetic``) so recorded files map onto
ids without a lookup table; the symbol keeps the exchange's own spelling (``ftx:SOL/USD``).
"""

from __future__ import annotations

SEPARATOR = ":"


def instrument_id(venue: str, symbol: str) -> str:
    """The id of ``symbol`` on ``venue``; refuses parts that would not split back into the same two."""
    iid = f"{venue}{SEPARATOR}{symbol}"
    if split_instrument(iid) != (venue, symbol):
        raise ValueError(f"instrument id needs a venue and a symbol without {SEPARATOR!r}, got {iid!r}")
    return iid


def split_instrument(iid: str) -> tuple[str, str]:
    """``(venue, symbol)`` of an instrument id, or ValueError if it is not exactly ``venue:symbol``."""
    venue, sep, symbol = iid.partition(SEPARATOR)
    if not sep or not venue or not symbol or SEPARATOR in symbol:
        raise ValueError(f"instrument id must be '<venue>:<symbol>', got {iid!r}")
    return venue, symbol
