"""Kubernetes resource quantities ("500m", "4Gi", 2) as integers.

The scheduler compares CPU in millicores and memory in bytes, like
kube-scheduler's `MilliValue()` and `Value()`. Parsing follows the
`resource.Quantity` grammar: a decimal number with an optional binary suffix
(Ki, Mi, Gi, Ti, Pi, Ei), decimal suffix (n, u, m, k, M, G, T, P, E) or
exponent (`1e3`).
"""

from __future__ import annotations

import functools
import math
import re
from decimal import Decimal, InvalidOperation

_QUANTITY = re.compile(r"^([+-]?[0-9.]+)(([eE][+-]?[0-9]+)|Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")
_MULTIPLIERS: dict[str, Decimal] = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}


class QuantityError(ValueError):
    """A string that is not a Kubernetes quantity."""


def parse_quantity(value: str | int | float) -> Decimal:
    """Return the exact value of a quantity as a Decimal.

    Raises:
        QuantityError: the value does not follow the quantity grammar.
    """
    if isinstance(value, bool):
        raise QuantityError(
            f"invalid quantity {value!r}: expected a number or a string like '500m'"
        )
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise QuantityError(f"invalid quantity {value!r}: must be finite")
        return Decimal(str(value))
    match = _QUANTITY.match(value.strip())
    if match is None:
        raise QuantityError(
            f"invalid quantity {value!r}: expected a number with an optional suffix "
            "(m, k, M, G, Ki, Mi, Gi, ...), e.g. '500m' or '4Gi'"
        )
    number, suffix = match.group(1), match.group(2) or ""
    try:
        base = Decimal(number)
    except InvalidOperation as error:
        raise QuantityError(f"invalid quantity {value!r}: {number!r} is not a number") from error
    if suffix and suffix[0] in "eE":
        return base * (Decimal(10) ** int(suffix[1:]))
    return base * _MULTIPLIERS[suffix]


@functools.lru_cache(maxsize=4096, typed=True)
def milli_value(value: str | int | float) -> int:
    """Return a quantity in thousandths, rounded up (CPU "250m" -> 250, 2 -> 2000).

    Cached: the scheduler converts the same few request strings for every pod and node.
    """
    return math.ceil(parse_quantity(value) * 1000)


@functools.lru_cache(maxsize=4096, typed=True)
def int_value(value: str | int | float) -> int:
    """Return a quantity as an integer, rounded up (memory "1Ki" -> 1024)."""
    return math.ceil(parse_quantity(value))
