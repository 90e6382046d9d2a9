"""Money and quantities: exact ``Decimal``, bounded in size and in precision.

One implementation serves the dispatcher (tenant replies and caller arguments) and the
receiver kit (request bodies and the tenant's own values), so both sides agree on what a
valid amount is.  The limits are the platform's choice (the contract only says "a finite
number >= 0"); they fit any shop's prices and quantities and keep every value cheap: an
amount inside them has at most 14 significant digits, whereas ``1E+100000000`` would be
written out as a 100 MB body.

==========  ==============================  ===================
rule        range                           decimal places
==========  ==============================  ===================
money       0 <= value <= 1,000,000,000     at most 4
quantity    0 < value <= 1,000,000          at most 3
==========  ==============================  ===================

Trailing zeros do not count as places: ``45.9000000`` is ``45.9``; ``0.00001`` is refused.

Every check costs microseconds at any size: an ``int`` is compared as an ``int`` (never
turned into a ``Decimal`` or text: ``10**1000000`` took 17 s that way), a ``Decimal`` by
its exponent (``adjusted()``) before anything reads its digits.  An accepted amount is kept
in plain positional form: ``1E+9`` becomes ``1000000000`` (cheap, since it is bounded).

A caller's amount written as text must be a plain ASCII decimal: digits, then optionally
a ``.`` and more digits.  No sign (no amount here is negative, and ``-0`` is a mistake), no
exponent (``1e9`` is refused: a written amount is read as written), no spaces, ``_``
separators or non-ASCII digits (``" 1"``, ``"1_000"`` and ``"٣"`` are refused, though
Python's ``Decimal`` reads them).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Context, Decimal, InvalidOperation
from typing import Final

#: A caller's amount given as a string is read only up to this length.
MAX_NUMBER_CHARS: Final = 100
#: What a caller's amount given as a string must look like: ASCII digits, an optional
#: fraction (``re.ASCII``: ``[0-9]`` only, whatever digits Unicode has).
_PLAIN_NUMBER: Final = re.compile(r"[0-9]+(?:\.[0-9]+)?", re.ASCII)
# Quantize needs room for every digit of an in-range value (10 + 4); the caller's own
# decimal context (its precision, its traps) must not change what is accepted.
_CONTEXT: Final = Context(prec=40, traps=[InvalidOperation])


@dataclass(frozen=True, slots=True)
class AmountRule:
    """The bounds of one kind of amount; ``positive`` means the minimum 0 is excluded."""

    maximum: Decimal
    places: int
    positive: bool
    #: The smallest unit, ``10 ** -places``.
    step: Decimal = field(init=False)
    #: ``maximum`` as an ``int`` and a ``float``: a number compares with its own kind,
    #: without converting (an ``int`` compared with a ``Decimal`` is converted whole).
    int_maximum: int = field(init=False)
    float_maximum: float = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "step", Decimal((0, (1,), -self.places)))
        object.__setattr__(self, "int_maximum", int(self.maximum))
        object.__setattr__(self, "float_maximum", float(self.maximum))


#: Prices and promotion prices (docs/webhooks.md §4-6).
MONEY: Final = AmountRule(maximum=Decimal(1_000_000_000), places=4, positive=False)
#: Cart quantities, fractional for goods sold by weight (docs/webhooks.md §5-6).
QUANTITY: Final = AmountRule(maximum=Decimal(1_000_000), places=3, positive=True)


def decimal_problem(number: Decimal, rule: AmountRule) -> str | None:
    """Why ``number`` breaks ``rule``, or ``None``; every check is cheap at any size.

    The exponent is looked at first (``adjusted()``, the power of ten of the first digit):
    a number far too large, or non-zero with a first digit past the allowed places, is
    refused before any digit is compared or rounded.
    """
    if not number.is_finite():
        return "is not a finite number"
    if rule.positive and number <= 0:
        return "must be greater than 0"
    if number < 0:
        return "must not be negative"
    if not number.is_zero():
        if number.adjusted() > rule.maximum.adjusted():
            return f"must be at most {rule.maximum}"
        if number.adjusted() < -rule.places:
            return f"must have at most {rule.places} decimal places"
    if number > rule.maximum:
        return f"must be at most {rule.maximum}"
    # In range, the quantized value has at most 14 digits; ``!=`` compares exactly.
    if number.quantize(rule.step, rounding=ROUND_DOWN, context=_CONTEXT) != number:
        return f"must have at most {rule.places} decimal places"
    return None


def amount_problem(value: object, rule: AmountRule) -> str | None:
    """Why a value decoded by ``_json.loads`` is not an amount under ``rule``, or ``None``.

    JSON integers arrive as ``float`` (see ``_json.loads``), other numbers as ``Decimal``.
    """
    if isinstance(value, bool):
        return "is a boolean, not a number"
    if isinstance(value, str):
        return "is a string, not a number"
    if value is None:
        return "is missing"
    if isinstance(value, int | float):
        if (problem := magnitude_problem(value, rule)) is not None:
            return problem
        value = Decimal(value)  # exact: an in-range float from JSON holds an integer
    if isinstance(value, Decimal):
        return decimal_problem(value, rule)
    return "is not a number"


def magnitude_problem(value: int | float, rule: AmountRule) -> str | None:
    """Why an ``int`` or ``float`` is out of ``rule``'s range, or ``None``; call it before
    converting: it compares ``int`` with ``int`` and ``float`` with ``float``, so a huge
    ``int`` costs no more than a small one (turning it into text or a ``Decimal`` is the
    slow part; a JSON integer too long for a float arrives as infinity)."""
    if isinstance(value, float) and math.isnan(value):
        return "is not a finite number"
    maximum = rule.int_maximum if isinstance(value, int) else rule.float_maximum
    if value > maximum:
        return f"must be at most {rule.maximum}"
    if value < 0:
        return "must be greater than 0" if rule.positive else "must not be negative"
    return None


def as_amount(value: object, rule: AmountRule) -> Decimal:
    """A value :func:`amount_problem` accepted under ``rule``, as a short ``Decimal``."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int | float):
        raise TypeError("not a JSON number")
    return _shortest(value if isinstance(value, Decimal) else Decimal(value), rule)


def _shortest(number: Decimal, rule: AmountRule) -> Decimal:
    # An accepted amount is kept as written (45.90 stays 45.90) unless its form is longer
    # than its value needs, or is not positional: trailing zeros past the allowed places, a
    # zero such as -0, 0E+100 or 0E-100000000 (whose written-out form could be huge), and
    # an exponent form such as 1E+9 (written out: at most 10 digits, by the range).
    exponent = number.as_tuple().exponent
    if not isinstance(exponent, int):  # NaN or Infinity: never accepted, returned as given
        return number
    if number.is_zero():
        return Decimal(0) if exponent > 0 or exponent < -rule.places else number.copy_abs()
    if exponent < -rule.places:
        return number.quantize(rule.step, context=_CONTEXT)
    if exponent > 0:
        return number.quantize(_ONE, context=_CONTEXT)
    return number


_ONE: Final = Decimal(1)


def caller_amount(value: object, field: str, rule: AmountRule) -> Decimal:
    """A caller's amount as ``Decimal``; raises ``TypeError``/``ValueError`` naming ``field``.

    ``int``, ``float`` (read through ``str``, so 45.9 stays 45.9), ``Decimal`` and strings
    holding a plain ASCII decimal (``"45.90"``; no sign, exponent, spaces, ``_`` or
    non-ASCII digits) are accepted.  Sizes are checked before any conversion, so no value
    is slow.  The result is in plain positional form (``Decimal("1E+2")`` gives ``100``).
    """
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        raise TypeError(f"{field} must be a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{field} must be a finite number")
    if isinstance(value, int | float) and (problem := magnitude_problem(value, rule)):
        raise ValueError(f"{field} {problem}")
    if isinstance(value, str):
        if len(value) > MAX_NUMBER_CHARS:
            raise ValueError(f"{field} must be a number of at most {MAX_NUMBER_CHARS} characters")
        if not _PLAIN_NUMBER.fullmatch(value):
            raise ValueError(
                f"{field} must be a plain decimal number such as 45.90 (ASCII digits and one "
                "optional '.'; no sign, exponent, spaces or '_')"
            )
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{field} must be a number") from None
    return checked_amount(number, field, rule)


def checked_amount(number: Decimal, field: str, rule: AmountRule) -> Decimal:
    """``number``, in its short form, when it keeps ``rule``; else ``ValueError`` naming
    ``field``."""
    if (problem := decimal_problem(number, rule)) is not None:
        raise ValueError(f"{field} {problem}")
    return _shortest(number, rule)
