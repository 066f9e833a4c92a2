"""What every file reader shares: ``InputError``, a whole file's bytes (gzipped or not), and the
dead letter of one refused row.

Its own module so that the readers of different formats (``files``, ``binance_frames``) share one
convention without importing each other: ``files.load_inputs`` calls them all.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

from mmflow.models import DeadLetter


class InputError(ValueError):
    """An input file that cannot be read as a whole; the message names the file (and column)."""


def raw_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when they are gzip; InputError for a missing, corrupt or
    empty file."""
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (EOFError, OSError, zlib.error) as err:
            raise InputError(f"{path.name}: truncated or corrupt gzip ({err})") from None
    if not data.strip():
        raise InputError(f"{path.name}: empty file (no header, no rows)")
    return data


def dead_row(path: Path, raw: bytes, reason: str, row: int, market: str | None = None) -> DeadLetter:
    """A refused row of a file: its detail ends with the row number, which ``extra`` keeps too."""
    return DeadLetter.of(path.name, f"{reason} (row {row})", raw, market, row=str(row))
