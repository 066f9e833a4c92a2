"""The paper-trading execution connector: intents and market data in, fills out, over Kafka.

It drives the same ``PaperVenue`` as the backtest, one per market. A real exchange adapter
replaces it by implementing ``ExecutionVenue``: accept intents, report fills.
"""

from __future__ import annotations

import logging
import time
from typing import Protocol

from confluent_kafka import Consumer, KafkaException

from mmflow.config import Settings
from mmflow.connectors.kafka_io import client_config, producer, redacted
from mmflow.connectors.paper_venue import PaperVenue
from mmflow.models import BookTick, Fill, Intent, Trade
from mmflow.wire import WireError, decode_input, decode_intent, encode

log = logging.getLogger("mmflow.venue")


class ExecutionVenue(Protocol):
    """What the live loop needs from an exchange: take intents, report fills."""

    def submit(self, intent: Intent) -> bool: ...
    def on_book(self, tick: BookTick) -> list[Fill]: ...
    def on_trade(self, trade: Trade) -> list[Fill]: ...


class VenueService:
    def __init__(self, settings: Settings, group_id: str | None = None) -> None:
        self.settings = settings
        cfg = settings.kafka
        conf = client_config(
            cfg,
            **{
                "group.id": group_id or f"{cfg.group_id}-venue",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": "true",
            },
        )
        log.info("venue connecting with %s", redacted(conf))
        self.consumer = Consumer(conf)
        self.consumer.subscribe([cfg.market_data_topic, cfg.intents_topic])
        self.producer = producer(cfg)
        self.venues: dict[str, PaperVenue] = {}
        self.fills = 0
        self.rejected = 0

    def _venue(self, market: str) -> PaperVenue | None:
        venue = self.venues.get(market)
        if venue is None and market in self.settings.markets:
            venue = self.venues[market] = PaperVenue(
                market, self.settings.markets[market], self.settings.venue
            )
        return venue

    def handle(self, topic: str, value: bytes) -> list[Fill]:
        """One message; returns the fills it caused (already published)."""
        try:
            if topic == self.settings.kafka.intents_topic:
                intent = decode_intent(value)
                venue = self._venue(intent.market)
                if venue is not None:
                    venue.submit(intent)
                return []
            event = decode_input(value)
        except WireError as err:
            self.rejected += 1
            log.warning("venue dropped a message from %s: %s", topic, err)
            return []
        venue = self._venue(event.market)
        if venue is None or not isinstance(event, BookTick | Trade):
            return []
        fills = venue.on_book(event) if isinstance(event, BookTick) else venue.on_trade(event)
        for fill in fills:
            self.producer.produce(
                self.settings.kafka.fills_topic, key=fill.market.encode(), value=encode(fill)
            )
        self.fills += len(fills)
        return fills

    def run(self, seconds: float | None = None) -> None:
        """Serve until interrupted (or for ``seconds``); reconnects are librdkafka's job."""
        end = time.monotonic() + seconds if seconds else None
        try:
            while end is None or time.monotonic() < end:
                for msg in self.consumer.consume(500, 0.2):
                    if msg.error():
                        log.warning("consumer error: %s", msg.error())
                        continue
                    self.handle(msg.topic(), msg.value())
                self.producer.poll(0)
        except KafkaException as exc:  # pragma: no cover - surfaced to the operator
            log.error("kafka failure: %s", exc)
            raise
        finally:
            self.producer.flush(10)
            self.consumer.close()
