"""Money arithmetic at a declared precision: products exact, results at 18 decimal places.

Prices and sizes enter with at most 18 places (``models.DECIMAL_PLACES``), so a fee or a PnL
term (price x size x rate) can carry 36 or more: Python's default 28-digit context would round it
silently, and an 18-place output column would refuse it. Here products are taken in a 60-digit
context and only results finer than 18 places are rounded (half even), so the common case keeps
its exact digits and every value can be written.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Context, Decimal

from mmflow.models import DECIMAL_PLACES

#: Wide enough for any product of three in-bounds values (3 x (9 + 18) digits), exactly.
CONTEXT = Context(prec=90, rounding=ROUND_HALF_EVEN)
QUANTUM = Decimal(1).scaleb(-DECIMAL_PLACES)


def at_precision(value: Decimal) -> Decimal:
    """``value`` rounded to 18 places when it has more; untouched (digits and all) otherwise."""
    exponent = value.as_tuple().exponent
    if not isinstance(exponent, int) or exponent >= -DECIMAL_PLACES:
        return value
    return value.quantize(QUANTUM, context=CONTEXT)


def product(*factors: Decimal) -> Decimal:
    """The exact product of ``factors``, at the declared precision."""
    result = Decimal(1)
    for factor in factors:
        result = CONTEXT.multiply(result, factor)
    return at_precision(result)


def add(a: Decimal, b: Decimal) -> Decimal:
    return at_precision(CONTEXT.add(a, b))
