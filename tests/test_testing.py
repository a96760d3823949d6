"""The shipped testing helpers."""

from __future__ import annotations

import pytest

from aria_actors import Clock, SystemClock
from aria_actors.testing import VirtualClock, wait_until


def test_virtual_clock_moves_only_when_told() -> None:
    clock = VirtualClock(10)
    assert isinstance(clock, Clock)
    assert clock.monotonic() == 10
    clock.advance(2.5)
    assert clock.monotonic() == 12.5
    with pytest.raises(ValueError, match="cannot go back"):
        clock.advance(-1)


def test_system_clock_is_monotonic() -> None:
    clock = SystemClock()
    assert isinstance(clock, Clock)
    assert clock.monotonic() <= clock.monotonic()


async def test_wait_until_has_a_deadline() -> None:
    await wait_until(lambda: True)
    with pytest.raises(TimeoutError):
        await wait_until(lambda: False, timeout=0.01)
