"""The command line: the top layer, which alone may import flows, connectors and the core."""
