"""The paper venue's assumptions as small swappable models (latency, queue position, fees).

Pure: no I/O. Each model is chosen in ``venue`` settings and built by ``models_for``; the venue
(connectors/paper_venue.py) only calls them through their protocols.
"""
