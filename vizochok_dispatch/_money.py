"""Reading money and quantities from JSON: ``Decimal`` only, finite, never a boolean."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation


def number_problem(value: object, *, positive: bool = False) -> str | None:
    """Why ``value`` is not an acceptable amount, or ``None`` (``positive``: must be > 0)."""
    if isinstance(value, bool):
        return "is a boolean, not a number"
    if isinstance(value, str):
        return "is a string, not a number"
    if value is None:
        return "is missing"
    if not isinstance(value, int | Decimal):
        return "is not a number"
    if isinstance(value, Decimal) and not value.is_finite():
        return "is not a finite number"
    if positive and value <= 0:
        return "must be greater than 0"
    if value < 0:
        return "must not be negative"
    return None


def as_money(value: object) -> Decimal:
    """A checked JSON number as ``Decimal`` (ints become exact decimals)."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    raise TypeError("not a JSON number")


def to_decimal(value: object, field: str, *, positive: bool) -> Decimal:
    """A caller's amount as ``Decimal``; a float goes through ``str`` so 45.9 stays 45.9."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        raise TypeError(f"{field} must be a number")
    try:
        number = Decimal(str(value)) if not isinstance(value, Decimal) else value
    except InvalidOperation:
        raise ValueError(f"{field} must be a number") from None
    return checked_amount(number, field, positive=positive)


def checked_amount(number: Decimal, field: str, *, positive: bool) -> Decimal:
    """``number`` when it is finite and not negative (``positive``: greater than 0)."""
    if not number.is_finite():
        raise ValueError(f"{field} must be a finite number")
    if positive and number <= 0:
        raise ValueError(f"{field} must be greater than 0")
    if number < 0:
        raise ValueError(f"{field} must not be negative")
    return number
