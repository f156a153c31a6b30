"""Errors with short, stable codes.

Every error painloop raises on purpose carries a code such as
``PL-COHORT-UNKNOWN``; ``docs/errors.md`` lists them all. The message names
what was wrong (field and value) and what is allowed, so a user can fix the
input without reading the source.
"""

from __future__ import annotations


class PainloopError(ValueError):
    """A painloop error with a short code, e.g. ``PL-PARAM-RANGE``.

    Subclasses ``ValueError`` because almost every case is bad input; the
    code, not the class, is the stable contract.
    """

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.detail = message
        super().__init__(f"{code}: {message}")


class UnsafeStimulationError(PainloopError):
    """A stimulation setting breaks a charge-density or Shannon limit."""


class NonFiniteStateError(PainloopError, FloatingPointError):
    """The simulator state holds NaN or inf."""
