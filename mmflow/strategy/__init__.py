"""The pure strategy core: no Bytewax, Kafka or I/O imports anywhere below this package."""
