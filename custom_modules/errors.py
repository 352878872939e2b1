"""The one exception type for problems with what the user gave us.

``InputError`` means: a file, a list, a folder or a configuration value that the user supplied
cannot be used. Its message is one line that names the thing and the problem
(``x.wav: silent (peak amplitude below 0.0001)``), so the recipes and the command line print it
as ``error: <message>`` and exit. Every other exception is a bug and keeps its traceback: the
entry points catch ``InputError`` only.

It is a ``ValueError``, so code that already catches ``ValueError`` keeps working.

Example
-------
>>> try:
...     raise InputError("lists.txt:3: expected 'label enrol test'")
... except ValueError as error:
...     print(f"error: {error}")
error: lists.txt:3: expected 'label enrol test'
"""


import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager


class InputError(ValueError):
    """A problem with the user's input; the message is one line naming it."""


def finite_number(value) -> bool:
    """Whether a value read from a file is a finite int or float (a boolean is not).

    >>> [finite_number(v) for v in (3, 0.5, True, "1", float("nan"), 10 ** 400)]
    [True, True, False, False, False, True]
    """
    return isinstance(value, int | float) and not isinstance(value, bool) and \
        (isinstance(value, int) or math.isfinite(value))


def first_line(error: BaseException) -> str:
    """The first non-empty line of an exception's message, or its type name.

    >>> first_line(RuntimeError("Error opening 'x.wav'\\nmore detail"))
    "Error opening 'x.wav'"
    """
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Turn an ``InputError``, or an ``OSError`` on a named file (unwritable output, full
    disk), into ``error: <message>`` and exit status 1; every other exception keeps its
    traceback (it is a bug)."""
    try:
        yield
    except InputError as error:
        sys.exit(f"error: {error}")
    except OSError as error:
        if error.filename is None:
            raise
        sys.exit(f"error: {error.filename}: {error.strerror}")
