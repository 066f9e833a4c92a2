"""Why a record became a dead letter: a fixed set of codes, and the rule that names the code of a
refusal's text.

The code is what a metric may carry as a label and an operator may filter on (the Kafka header
``reason``); the text (``DeadLetter.detail``, the header ``detail``) keeps what only this record
says: the trade id, the field, the row. A label taken from the text itself grew one series per
trade id.

Each refusal is written where its check lives (the wire decoder, the file readers, the runtime,
the maker's books) as text with a fixed opening; ``reason_of`` maps that opening to its code. A
text no rule knows is ``other``: still counted, still bounded, and
``tests/unit/flows/test_dead_letter_reasons.py`` holds one sample of every known opening.
"""

from __future__ import annotations

from enum import StrEnum


class DeadReason(StrEnum):
    """The codes of ``maker_dead_letters_total{reason}``, the dead-letter header ``reason`` and
    the ``reason`` column of dead_letters.parquet."""

    MALFORMED_JSON = "malformed_json"  # not JSON, not a '<recv> <JSON>' frame, not an object
    MALFORMED_ROW = "malformed_row"  # a file line that is not UTF-8 or has the wrong field count
    SCHEMA_VERSION = "schema_version"  # "v" missing or not this product's
    SCHEMA = "schema"  # a field missing, extra, mistyped or out of range; an unknown record type
    CROSSED_BOOK = "crossed_book"
    INTERNAL_RECORD = "internal_record"  # a journal-only record (timer, incarnation) on an input
    UNKNOWN_MARKET = "unknown_market"  # no instrument spec, or not subscribed (ingest)
    FUTURE_TIMESTAMP = "future_timestamp"  # stamped after the wall clock allows
    OUT_OF_ORDER = "out_of_order"  # market data older than what the market already processed
    DUPLICATE_TRADE_ID = "duplicate_trade_id"
    DUPLICATE_FILL_ID = "duplicate_fill_id"
    FILL_REFUSED = "fill_refused"  # too large for the hard limit, or for an intent never sent
    DEPTH_GAP = "depth_gap"  # Binance depth diffs that do not continue the book
    DEPTH_SNAPSHOT = "depth_snapshot"  # a depth snapshot not needed, too old, or never matched
    OTHER = "other"


#: The opening of each refusal's text and its code, checked in order (the first match wins).
_OPENINGS: tuple[tuple[str, DeadReason], ...] = (
    ("malformed json", DeadReason.MALFORMED_JSON),
    ("malformed frame", DeadReason.MALFORMED_JSON),
    ("not a combined-stream frame", DeadReason.MALFORMED_JSON),
    ("not utf-8 text", DeadReason.MALFORMED_ROW),
    ("ragged row", DeadReason.MALFORMED_ROW),
    ("unknown schema version", DeadReason.SCHEMA_VERSION),
    ("invalid", DeadReason.SCHEMA),
    ("unsupported stream", DeadReason.SCHEMA),
    ("crossed book", DeadReason.CROSSED_BOOK),
    ("internal record", DeadReason.INTERNAL_RECORD),
    ("unknown market", DeadReason.UNKNOWN_MARKET),
    ("unsubscribed market", DeadReason.UNKNOWN_MARKET),
    ("ahead of the wall clock", DeadReason.FUTURE_TIMESTAMP),
    ("out of order", DeadReason.OUT_OF_ORDER),
    ("duplicate trade id", DeadReason.DUPLICATE_TRADE_ID),
    ("duplicate fill id", DeadReason.DUPLICATE_FILL_ID),
    ("fill ", DeadReason.FILL_REFUSED),
    ("depth gap", DeadReason.DEPTH_GAP),
    ("depth snapshot", DeadReason.DEPTH_SNAPSHOT),
    ("depth not synced", DeadReason.DEPTH_SNAPSHOT),
)


def reason_of(detail: str) -> DeadReason:
    """The code of a refusal's text (``other`` when no known opening starts it)."""
    text = detail.lstrip().lower()
    for opening, code in _OPENINGS:
        if text.startswith(opening):
            return code
    return DeadReason.OTHER
