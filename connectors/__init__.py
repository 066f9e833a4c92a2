"""Every edge to the outside world: files, Kafka, the paper venue, metrics, reports."""
