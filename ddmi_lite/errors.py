"""The library's one exception type.

Every public entry point raises :class:`DDMIError` (a ``ValueError``) for bad input, with a
message that names the argument or file and what was expected.
"""


class DDMIError(ValueError):
    """Invalid input or state: the message names the argument/file and what was expected."""


class NonFiniteLossError(DDMIError, FloatingPointError):
    """Training produced a NaN/inf loss; the message gives the step and last finite loss."""
