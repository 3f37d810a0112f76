"""Numbers an admin or a user writes must be finite: ``nan`` and ``inf`` pass ``<`` and
``>`` bound checks (every comparison with ``nan`` is False), so they are refused here."""

from __future__ import annotations

import math

from traitlets import Float


def finite(what: str, value) -> float:
    """``value`` as a float, or ValueError saying it must be a finite number."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number, got {str(value)[:40]!r}.") from None
    if not math.isfinite(number):
        raise ValueError(f"{what} must be a finite number, got {number!r}.")
    return number


class FiniteFloat(Float):
    """A traitlets ``Float`` (with its ``min``/``max``) that refuses ``nan`` and ``inf``."""

    def validate(self, obj, value):
        value = super().validate(obj, value)
        if not math.isfinite(value):
            self.error(obj, value, info="a finite number")
        return value
