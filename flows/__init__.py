"""Dataflows: the wiring of the pure strategy core to sources and sinks (Bytewax lives here)."""
