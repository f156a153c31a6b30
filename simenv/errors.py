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

    def __reduce__(self):
        # Pickled with its code, message and attributes (a subclass's too), so it crosses process
        # boundaries (a parallel evaluation's workers) intact; the default would call cls(message).
        return (_restore_error, (type(self), self.code, self.detail, dict(self.__dict__)))


def _restore_error(cls: type[PainloopError], code: str, message: str, state: dict) -> PainloopError:
    error = cls.__new__(cls)
    PainloopError.__init__(error, code, message)
    error.__dict__.update(state)
    return error


class UnsafeStimulationError(PainloopError):
    """A stimulation setting breaks a charge-density or Shannon limit."""


class NonFiniteStateError(PainloopError, FloatingPointError):
    """The simulator state holds NaN or inf."""
