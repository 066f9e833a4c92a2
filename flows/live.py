"""The flow on Kafka, for ``python -m bytewax.run "mmflow.flows.live:build()"`` (see ``mmflow run``).

Settings come from the environment: ``MMFLOW_RUN_PRESET``, ``MMFLOW_RUN_CONFIG`` (YAML path),
``MMFLOW_RUN_SET`` (JSON list of dotted overrides) and the usual ``MMFLOW_*`` variables.
``MMFLOW_RUN_METRICS_PORT`` serves /metrics (`mmflow run` gives process i port + i).
``MMFLOW_RUN_CONFIRM_WRITES=0`` lets the worker go on before the broker confirms its outputs
(`mmflow run` sets it when there is no recovery directory; see ``connectors.kafka_io.FlowSink``).

Ordering rule: the flow consumes the market-data and fills topics, each market keyed to one
partition, and books a fill when it arrives. It writes every fill it booked to the journal topic
with the number of that market's market events processed before it, so a replay (``mmflow
record`` then ``mmflow replay --fills``) puts each fill back at the same place and reproduces
every decision.
"""

from __future__ import annotations

import json
import os
from functools import partial

from bytewax.dataflow import Dataflow
from mmflow.connectors.kafka_io import flow_sink, flow_source, to_message
from mmflow.connectors.metrics import get_metrics
from mmflow.flows.engine import build_flow, tune_gc

from mmflow.config import load_settings


def build(tail: bool = True) -> Dataflow:
    env = os.environ
    settings = load_settings(
        env.get("MMFLOW_RUN_PRESET") or None,
        env.get("MMFLOW_RUN_CONFIG") or None,
        json.loads(env.get("MMFLOW_RUN_SET") or "[]"),
    )
    metrics = get_metrics()
    tune_gc()
    port = env.get("MMFLOW_RUN_METRICS_PORT")
    if port:
        metrics.serve(int(port), settings.metrics.host)
    return build_flow(
        flow_source(settings.kafka, tail=tail),
        flow_sink(settings.kafka, confirm=env.get("MMFLOW_RUN_CONFIRM_WRITES", "1") != "0"),
        settings,
        metrics,
        paper=False,
        flow_id="mmflow-live",
        route=partial(to_message, settings.kafka),
        live_clock=True,
    )
