"""Kubernetes resource quantities (`2`, `"2"`, `"2000m"`, `"1Gi"`, `"1024Mi"`, `"1e3"`), parsed exactly.

Admission compares quantities by value, so a client that writes `cpu: 2` where the stored object says
`cpu: "2000m"` is not changing anything. Values are kept as `Fraction`s: no float rounding, so
`"0.1"` equals `"100m"` and `"1Gi"` equals `"1024Mi"` exactly.

Grammar (apimachinery `resource.Quantity`):

    quantity ::= [+-] number suffix
    number   ::= digits | digits "." [digits] | "." digits
    suffix   ::= binarySI (Ki Mi Gi Ti Pi Ei) | decimalSI (n u m "" k M G T P E) | ("e"|"E") [+-] digits

The apiserver also rounds values finer than 1n up to 1n when it canonicalises; admission sees the
stored text, so that rounding is not reproduced here.
"""

from __future__ import annotations

import re
from fractions import Fraction

_QUANTITY = re.compile(
    r"""^(?P<number>[+-]?(?:\d+(?:\.\d*)?|\.\d+))
        (?P<suffix>[KMGTPE]i|[numkMGTPE]?|[eE][+-]?\d+)$""",
    re.VERBOSE,
)

# Bounds that keep parsing cheap whatever a request carries (the webhook answers within its timeout):
# `"1e10000000"` would otherwise cost seconds of exact arithmetic. Real quantities are far inside
# them (the largest suffix, E, is 1e18); text beyond them is not a quantity and compares literally.
MAX_EXPONENT = 100
MAX_TEXT_LENGTH = 100

_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}  # powers of 1024
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}


def parse_quantity(value: object) -> Fraction:
    """The exact value of a quantity given as a JSON number or a Kubernetes quantity string.

    Raises ValueError for anything else (booleans, nested objects, malformed strings)."""
    if isinstance(value, bool):
        raise ValueError(f"not a quantity: {value!r}")
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, float):
        # repr() is the shortest text that round-trips, i.e. what the JSON document said.
        return Fraction(repr(value))
    if not isinstance(value, str):
        raise ValueError(f"not a quantity: {value!r}")
    match = _QUANTITY.match(value.strip()) if len(value) <= MAX_TEXT_LENGTH else None
    if match is None:
        raise ValueError(f"not a quantity: {value[:MAX_TEXT_LENGTH]!r}")
    return Fraction(match["number"]) * _multiplier(match["suffix"])


def _multiplier(suffix: str) -> Fraction:
    if suffix in _BINARY:
        return Fraction(1024) ** _BINARY[suffix]
    if suffix in _DECIMAL:
        return Fraction(10) ** _DECIMAL[suffix]
    exponent = int(suffix[1:])  # decimal exponent, e.g. "e3" or "E-2"
    if abs(exponent) > MAX_EXPONENT:
        raise ValueError(f"quantity exponent out of range: {suffix}")
    return Fraction(10) ** exponent


def is_quantity(value: object) -> bool:
    try:
        parse_quantity(value)
    except ValueError:
        return False
    return True


def quantities_equal(a: object, b: object) -> bool:
    """Same value (`2` == `"2000m"`). Two values that are not both quantities are equal only if
    they are literally equal, so a malformed value still compares like plain data."""
    try:
        return parse_quantity(a) == parse_quantity(b)
    except ValueError:
        return type(a) is type(b) and a == b


_BINARY_SUFFIXES = (("Ei", 1024**6), ("Pi", 1024**5), ("Ti", 1024**4), ("Gi", 1024**3), ("Mi", 1024**2))


def format_quantity(value: Fraction) -> str:
    """A short exact quantity: `3`, `750m`, `3Gi` (binary suffixes from Mi up), else plain units;
    finer than 1m, nanos rounded down. Used by both kinds' PodGroups."""
    if value.denominator == 1:
        number = value.numerator
        for suffix, unit in _BINARY_SUFFIXES:
            if number and number % unit == 0:
                return f"{number // unit}{suffix}"
        return str(number)
    millis = value * 1000
    if millis.denominator == 1:
        return f"{millis.numerator}m"
    return f"{millis.numerator * 1_000_000 // millis.denominator}n"
