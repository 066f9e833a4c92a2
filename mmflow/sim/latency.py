"""Latency models: how long an order entry, a cancel and a report take.

A draw is a pure function of the model's seed, what is timed (``entry``, ``cancel``,
``report``) and the id of the thing timed, never of a generator's position: so a replay draws
the same latencies whatever the batch size, the number of workers or a restart of the venue
(which has no generator state to save). Integer arithmetic only: the same microseconds on every
machine.
"""

from __future__ import annotations

from hashlib import blake2b
from typing import Literal, Protocol

from mmflow.config import LatencyConfig

Timed = Literal["entry", "cancel", "report"]
_SCALE = 1 << 32


def _ms_to_us(ms: float) -> int:
    return int(round(ms * 1000))


def unit_draw(seed: int, *key: str) -> int:
    """A uniform integer in [0, 2**32) fixed by ``seed`` and ``key``."""
    digest = blake2b("\x1f".join((str(seed), *key)).encode(), digest_size=8).digest()
    return int.from_bytes(digest[:4], "big")


class LatencyModel(Protocol):
    def latency_us(self, timed: Timed, key: str) -> int:
        """Microseconds the ``timed`` step of ``key`` (an intent or report id) takes."""
        ...


class ConstantLatency:
    """Every entry, cancel and report takes its configured time."""

    __slots__ = ("_base",)

    def __init__(self, cfg: LatencyConfig) -> None:
        self._base = {
            "entry": _ms_to_us(cfg.order_ms),
            "cancel": _ms_to_us(cfg.cancel_ms),
            "report": _ms_to_us(cfg.report_ms),
        }

    def latency_us(self, timed: Timed, key: str) -> int:
        return self._base[timed]


class SpikyLatency(ConstantLatency):
    """The base plus a uniform jitter, plus now and then a spike (a stalled link, a busy
    matching engine): the tail that decides whether a hedge lands twice."""

    __slots__ = ("_seed", "_jitter", "_spike", "_spike_below")

    def __init__(self, cfg: LatencyConfig) -> None:
        super().__init__(cfg)
        self._seed = cfg.seed
        self._jitter = _ms_to_us(cfg.jitter_ms)
        self._spike = _ms_to_us(cfg.spike_ms)
        self._spike_below = int(round(cfg.spike_probability * _SCALE))

    def latency_us(self, timed: Timed, key: str) -> int:
        jitter = unit_draw(self._seed, timed, key, "jitter") * self._jitter // _SCALE
        spiked = unit_draw(self._seed, timed, key, "spike") < self._spike_below
        return self._base[timed] + jitter + (self._spike if spiked else 0)


def latency_model(cfg: LatencyConfig) -> LatencyModel:
    return SpikyLatency(cfg) if cfg.model == "spiky" else ConstantLatency(cfg)
