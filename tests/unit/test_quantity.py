"""Kubernetes quantities are compared by exact value."""

from __future__ import annotations

from fractions import Fraction

import pytest

from jobwarden.core.quantity import is_quantity, parse_quantity, quantities_equal


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (2, Fraction(2)),
        (0.5, Fraction(1, 2)),
        ("2", Fraction(2)),
        ("2000m", Fraction(2)),
        ("250m", Fraction(1, 4)),
        ("1.5", Fraction(3, 2)),
        (".5", Fraction(1, 2)),
        ("5.", Fraction(5)),
        ("+3", Fraction(3)),
        ("-1k", Fraction(-1000)),
        ("100n", Fraction(1, 10_000_000)),
        ("7u", Fraction(7, 1_000_000)),
        ("1Ki", Fraction(1024)),
        ("1Gi", Fraction(1024**3)),
        ("1.5Gi", Fraction(3 * 1024**3, 2)),
        ("1Ei", Fraction(1024**6)),
        ("1M", Fraction(10**6)),
        ("1E", Fraction(10**18)),
        ("1e3", Fraction(1000)),
        ("1E3", Fraction(1000)),
        ("5e-3", Fraction(5, 1000)),
        ("12E+2", Fraction(1200)),
    ],
)
def test_parses_every_suffix_exactly(text: object, value: Fraction) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize(
    "text", ["", "abc", "1.2.3", "1Gb", "Gi", "1 Gi", "1e", "1ki", "1mi", "--1", True, None, [1]]
)
def test_rejects_what_is_not_a_quantity(text: object) -> None:
    assert not is_quantity(text)
    with pytest.raises(ValueError, match="not a quantity"):
        parse_quantity(text)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (2, "2"),
        (2, "2000m"),
        ("1", "1000m"),
        ("0.1", "100m"),
        ("1Gi", "1024Mi"),
        ("1Mi", "1048576"),
        ("1k", "1e3"),
    ],
)
def test_equal_values_written_differently(a: object, b: object) -> None:
    assert quantities_equal(a, b)
    assert quantities_equal(b, a)


@pytest.mark.parametrize(("a", "b"), [("1G", "1Gi"), ("2", "2001m"), ("1Mi", "1M"), (1, "1m")])
def test_different_values(a: object, b: object) -> None:
    assert not quantities_equal(a, b)


def test_malformed_values_compare_as_plain_data() -> None:
    assert quantities_equal("lots", "lots")
    assert not quantities_equal("lots", "many")
    assert not quantities_equal("lots", 1)


def test_huge_exponents_and_texts_are_not_quantities() -> None:
    # Parsing them exactly would take seconds inside the webhook; they compare as literal text.
    for text in ("1e10000000", "1E-999999", "1" * 5000, "9" * 101):
        assert not is_quantity(text)
        assert quantities_equal(text, text)
        assert not quantities_equal(text, "1")
    assert is_quantity("1e100") and not is_quantity("1e101")
