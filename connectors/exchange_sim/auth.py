"""Signed requests as Binance checks them, and where the simulator's API secret comes from.

A signed endpoint takes ``timestamp`` (and optional ``recvWindow``, at most 60000 ms, default
5000) and ``signature``: the hex HMAC-SHA256, keyed by the API secret, of the query string and
the request body concatenated (``signature`` itself left out). A bad signature is -1022; a
timestamp older than ``recvWindow`` or more than 1 s ahead of the server clock is -1021.

The secret never travels on the command line (the process list shows it to every user): it is read
from an environment variable or a file, ``--api-secret env:NAME`` or ``file:PATH``; a literal value
is refused without being echoed.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

from mmflow.connectors.exchange_sim import errors

#: The environment variable the secret is read from by default.
SECRET_ENV = "MMFLOW_EXCHANGE_SIM_API_SECRET"
MAX_RECV_WINDOW = 60_000
DEFAULT_RECV_WINDOW = 5_000


class SecretError(ValueError):
    """The secret's source is unusable; the message never contains the secret."""


def load_secret(source: str) -> str:
    """The API secret from ``env:NAME`` or ``file:PATH`` (its first line, stripped)."""
    kind, sep, where = source.partition(":")
    if not sep or kind not in ("env", "file") or not where:
        raise SecretError(
            "--api-secret takes env:NAME or file:PATH, not the secret itself "
            "(a value on the command line shows in the process list)"
        )
    if kind == "env":
        value = os.environ.get(where, "")
        if not value:
            raise SecretError(f"--api-secret: the environment variable {where} is unset or empty")
        return value
    try:
        text = Path(where).read_text(encoding="utf-8")
    except OSError as err:
        raise SecretError(f"--api-secret: cannot read the secret file {where}: {err.strerror}") from None
    value = text.strip().splitlines()[0].strip() if text.strip() else ""
    if not value:
        raise SecretError(f"--api-secret: the secret file {where} is empty")
    return value


def sign(secret: str, payload: str) -> str:
    """The hex HMAC-SHA256 of ``payload`` keyed by ``secret`` (what a client sends)."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def _without_signature(raw: str) -> tuple[str, str | None]:
    """``raw`` (a query string or form body) without its ``signature=`` item, and that value."""
    kept, found = [], None
    for item in raw.split("&") if raw else []:
        if item.startswith("signature="):
            found = item[len("signature=") :]
        else:
            kept.append(item)
    return "&".join(kept), found


def check_signature(secret: str, query: str, body: str) -> None:
    """-1022 unless ``signature`` (in the query or the body) signs query + body."""
    q, sig_q = _without_signature(query)
    b, sig_b = _without_signature(body)
    signature = sig_q or sig_b
    if not signature:
        raise errors.missing("signature")
    if not hmac.compare_digest(sign(secret, q + b), signature.lower()):
        raise errors.bad_signature()


def check_timestamp(params: dict[str, str], server_ms: int) -> None:
    """-1021 when ``timestamp`` falls outside ``recvWindow`` of the server clock."""
    raw_ts = params.get("timestamp", "")
    if not raw_ts.isdigit():
        raise errors.missing("timestamp")
    raw_window = params.get("recvWindow", str(DEFAULT_RECV_WINDOW))
    if not raw_window.isdigit():
        raise errors.bad_param("recvWindow")
    window = int(raw_window)
    if window > MAX_RECV_WINDOW:
        raise errors.ApiError(-1131, "recvWindow must be less than 60000")
    ts = int(raw_ts)
    if ts >= server_ms + 1000:
        raise errors.ahead_of_server()
    if server_ms - ts > window:
        raise errors.outside_recv_window()
