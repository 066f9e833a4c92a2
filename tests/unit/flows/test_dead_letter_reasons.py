"""Dead-letter reasons are a fixed set of codes: the metric's label stays bounded whatever the
records say, and the human detail (a trade id, a field name) travels beside the code."""

from __future__ import annotations

from mmflow.config import load_settings
from mmflow.connectors.kafka_io import dead_letter_message
from mmflow.connectors.metrics import FlowMetrics
from mmflow.connectors.tables import dead_letters_frame
from mmflow.dead_reasons import DeadReason, reason_of
from mmflow.flows.replay import run_events
from mmflow.models import DeadLetter
from mmflow.wire import encode
from tests.builders import SOL, T0, S, settings, tick, trade


def _series(metrics: FlowMetrics, name: str) -> list[dict[str, str]]:
    return [s.labels for family in metrics.registry.collect() for s in family.samples if s.name == name]


def test_two_duplicate_trade_ids_make_one_series_not_two() -> None:
    """Today's label was the text before a colon: ``duplicate trade id 't-1'`` and ``... 't-2'``
    were two series, one per id, without bound."""
    metrics = FlowMetrics()
    records = [
        encode(tick(T0)),
        encode(trade(T0 + S, "t-1", "sell", "150.00", "0.5")),
        encode(trade(T0 + 2 * S, "t-2", "sell", "150.00", "0.5")),
        encode(trade(T0 + 3 * S, "t-1", "sell", "150.00", "0.5")),  # duplicates, different ids
        encode(trade(T0 + 4 * S, "t-2", "sell", "150.00", "0.5")),
    ]
    outputs, _ = run_events(records, settings(), metrics=metrics, workers=1)
    assert len(outputs.dead) == 2
    series = _series(metrics, "maker_dead_letters_total")
    assert series == [{"source": "bytes", "reason": "duplicate_trade_id"}]
    assert metrics.registry.get_sample_value("maker_dead_letters_total", series[0]) == 2
    assert sorted(d.detail for d in outputs.dead) == ["duplicate trade id 't-1'", "duplicate trade id 't-2'"]
    assert {d.reason for d in outputs.dead} == {"duplicate_trade_id"}
    assert SOL in {d.market for d in outputs.dead}


#: One refusal text of every kind the product writes, and its code.
SAMPLES = {
    "malformed json: unexpected character: line 1 column 2 (char 1)": "malformed_json",
    "malformed frame: expected '<receive time ns> <JSON>' (row 3)": "malformed_json",
    "not a combined-stream frame": "malformed_json",
    "not UTF-8 text at byte 7 (row 9)": "malformed_row",
    "ragged row: 3 fields, the header has 7 (row 4)": "malformed_row",
    "unknown schema version: 9": "schema_version",
    "invalid: bid_px: expected a decimal (a JSON string), got float": "schema",
    "unsupported stream 'btcusdt@kline_1m' (row 3)": "schema",
    "crossed book: bid >= ask": "crossed_book",
    "internal record: a timer is written by the flow to its journal, never read": "internal_record",
    "unknown market: 'binance-futures:DOGEUSDT'": "unknown_market",
    "unsubscribed market binance-futures:XRPUSDT": "unknown_market",
    "ahead of the wall clock: stamped 9 us, 6 s after the latest possible": "future_timestamp",
    "out of order: ts_recv 1 < 2 already processed": "out_of_order",
    "duplicate trade id '5266605247'": "duplicate_trade_id",
    "duplicate fill id 'f-1'": "duplicate_fill_id",
    "fill of 5 is larger than the hard position limit 0.10": "fill_refused",
    "fill for an intent this market never sent: 'x'": "fill_refused",
    "fill for intent 'm-000000009', not sent yet (last sent: 3)": "fill_refused",
    "depth gap: pu 5 != previous u 4; no depth until a later snapshot": "depth_gap",
    "depth snapshot too old: lastUpdateId 1, the next diff starts at U 9": "depth_snapshot",
    "depth snapshot not needed: the book is in sync at u 9": "depth_snapshot",
    "depth not synced: no REST depth snapshot matched the 3 depth diffs of m in the file": "depth_snapshot",
    "something nobody wrote yet": "other",
}


def test_every_refusal_text_has_its_code() -> None:
    assert {detail: reason_of(detail) for detail in SAMPLES} == SAMPLES
    assert {str(code) for code in DeadReason} == set(SAMPLES.values())


def test_the_code_and_the_detail_reach_the_header_and_the_table() -> None:
    dead = DeadLetter.of("mmflow.marketdata", "duplicate trade id '5266605247'", b"{}", SOL)
    headers = dict(dead_letter_message(load_settings().kafka, dead).headers)
    assert headers == {
        "reason": b"duplicate_trade_id",
        "detail": b"duplicate trade id '5266605247'",
        "source": b"mmflow.marketdata",
    }
    row = dead_letters_frame([dead]).row(0, named=True)
    assert (row["reason"], row["detail"]) == ("duplicate_trade_id", "duplicate trade id '5266605247'")
