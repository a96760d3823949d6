"""Clocks: where supervisors read the time for their restart-intensity windows.

The node's clock is :class:`SystemClock` unless another is given; tests pass
:class:`aria_actors.testing.VirtualClock` to step through intensity windows
without sleeping.
"""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """Anything with a monotonic ``monotonic() -> float`` in seconds."""

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin; never goes backwards."""
        ...


class SystemClock:
    """The real monotonic clock (``time.monotonic``)."""

    __slots__ = ()

    def monotonic(self) -> float:
        """Seconds since an arbitrary point, from ``time.monotonic``."""
        return time.monotonic()
