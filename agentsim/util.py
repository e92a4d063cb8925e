"""Small helpers without a better home."""

from __future__ import annotations

from typing import TypeVar

E = TypeVar("E", bound=BaseException)


def find_exception(exc: BaseException, kind: type[E]) -> E | None:
    """The first ``kind`` inside ``exc``, looking through (nested) exception groups."""
    if isinstance(exc, kind):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = find_exception(inner, kind)
            if found is not None:
                return found
    return None
