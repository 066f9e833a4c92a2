"""The exchange simulator (``mmflow exchange-sim``): Binance USD-M or spot on 127.0.0.1.

It serves the subset of the venue's REST and websocket API that mmflow's connectors and ccxt use,
with the venue's paths, parameters, JSON shapes and error codes, so a connector is rehearsed against
the exchange's own protocol with no exchange reachable. Market data is a recorded frames file
replayed at a chosen speed; orders match through the paper venue (connectors/paper_venue.py) and
its queue and fee models, so fills are as realistic as a replay's.

One module per idea: ``errors`` (Binance's error codes), ``auth`` (HMAC signatures, recvWindow,
the secret's source), ``limits`` (request weights, order counts, 429), ``exchange_info`` (symbols,
filters, rate limits), ``market`` (the replay, public REST, market streams), ``records`` (orders,
fills, positions), ``orders`` (the account: Binance orders on the paper venue), ``answers`` (its
REST JSON), ``user_stream`` (listen keys and account events), ``faults`` (switches for tests and
rehearsals), ``sockets`` (one websocket's sender), ``exchange`` (one venue's state and call path),
``routes`` (the venue's REST routes), ``app`` (the aiohttp application).
"""
