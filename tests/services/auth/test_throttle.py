"""Login throttling, on a fake clock: the sliding window, lockouts and their doubling, memory."""

from __future__ import annotations

import inspect
import re
import time

import pytest

from aria_actors.services.auth.errors import LoginThrottled
from aria_actors.services.auth.throttle import Throttle

ALICE = "user:alice"
SOURCE = "source:10.0.0.7"


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def throttle(clock: FakeClock) -> Throttle:
    return Throttle(max_failures=3, window=60.0, lockout=10.0, max_lockout=35.0, clock=clock)


def fail(throttle: Throttle, key: str, times: int) -> None:
    for _ in range(times):
        throttle.failure(key)


def retry_after(throttle: Throttle, key: str) -> float:
    with pytest.raises(LoginThrottled) as raised:
        throttle.check(key)
    return raised.value.retry_after


def test_an_unknown_key_passes(throttle: Throttle) -> None:
    throttle.check(ALICE)
    throttle.check_all([ALICE, SOURCE])
    throttle.check_all([])


def test_fewer_failures_than_the_limit_do_not_lock(throttle: Throttle) -> None:
    fail(throttle, ALICE, 2)
    throttle.check(ALICE)


def test_max_failures_within_the_window_lock(throttle: Throttle, clock: FakeClock) -> None:
    fail(throttle, ALICE, 3)
    with pytest.raises(LoginThrottled, match="too many failed logins for user:alice") as raised:
        throttle.check(ALICE)
    assert raised.value.retry_after == 10.0
    clock.advance(4.0)
    assert retry_after(throttle, ALICE) == 6.0
    clock.advance(6.0)
    throttle.check(ALICE)


def test_failures_spread_beyond_the_window_do_not_lock(
    throttle: Throttle, clock: FakeClock
) -> None:
    throttle.failure(ALICE)
    clock.advance(30.0)
    throttle.failure(ALICE)
    clock.advance(30.0)  # the first failure leaves the window
    throttle.failure(ALICE)
    throttle.check(ALICE)
    clock.advance(1.0)
    throttle.failure(ALICE)  # the 2nd, 3rd and 4th are within 60 s
    assert retry_after(throttle, ALICE) == 10.0


def test_keys_are_independent(throttle: Throttle) -> None:
    fail(throttle, ALICE, 3)
    throttle.check("user:bob")
    throttle.check(SOURCE)


def test_lockouts_double_up_to_the_maximum(throttle: Throttle, clock: FakeClock) -> None:
    for expected in [10.0, 20.0, 35.0, 35.0]:
        fail(throttle, ALICE, 3)
        assert retry_after(throttle, ALICE) == expected
        clock.advance(expected)
        throttle.check(ALICE)


def test_each_lockout_needs_max_failures_afresh(throttle: Throttle, clock: FakeClock) -> None:
    fail(throttle, ALICE, 3)
    clock.advance(10.0)
    fail(throttle, ALICE, 2)
    throttle.check(ALICE)
    throttle.failure(ALICE)
    assert retry_after(throttle, ALICE) == 20.0


def test_the_doubling_resets_after_a_quiet_window(throttle: Throttle, clock: FakeClock) -> None:
    fail(throttle, ALICE, 3)
    clock.advance(10.0 + 59.0)  # the lockout ended 59 s ago: the doubling holds
    fail(throttle, ALICE, 3)
    assert retry_after(throttle, ALICE) == 20.0
    clock.advance(20.0 + 60.0)  # a whole quiet window after the lockout
    throttle.check(ALICE)
    assert len(throttle) == 0
    fail(throttle, ALICE, 3)
    assert retry_after(throttle, ALICE) == 10.0


def test_failures_while_locked_are_ignored(throttle: Throttle, clock: FakeClock) -> None:
    fail(throttle, ALICE, 3)
    fail(throttle, ALICE, 10)
    assert retry_after(throttle, ALICE) == 10.0
    clock.advance(10.0)
    fail(throttle, ALICE, 2)
    throttle.check(ALICE)


def test_success_clears_the_failures(throttle: Throttle) -> None:
    fail(throttle, ALICE, 2)
    throttle.success(ALICE)
    fail(throttle, ALICE, 2)
    throttle.check(ALICE)
    throttle.failure(ALICE)
    assert retry_after(throttle, ALICE) == 10.0


def test_success_does_not_end_a_lockout_nor_the_doubling(
    throttle: Throttle, clock: FakeClock
) -> None:
    fail(throttle, ALICE, 3)
    clock.advance(5.0)
    throttle.success(ALICE)
    assert retry_after(throttle, ALICE) == 5.0
    clock.advance(5.0)
    throttle.success(ALICE)
    fail(throttle, ALICE, 3)
    assert retry_after(throttle, ALICE) == 20.0


def test_success_of_an_unknown_key_is_harmless(throttle: Throttle) -> None:
    throttle.success(ALICE)
    assert len(throttle) == 0


def test_check_all_raises_for_the_longest_lockout(throttle: Throttle, clock: FakeClock) -> None:
    fail(throttle, ALICE, 3)
    clock.advance(10.0)
    fail(throttle, ALICE, 3)  # locked 20 s
    clock.advance(5.0)
    fail(throttle, SOURCE, 3)  # locked 10 s
    with pytest.raises(LoginThrottled, match="user:alice") as raised:
        throttle.check_all([SOURCE, "user:bob", ALICE])
    assert raised.value.retry_after == 15.0
    clock.advance(15.0)
    throttle.check_all([SOURCE, ALICE])


def test_check_all_picks_the_first_key_on_a_tie(throttle: Throttle) -> None:
    fail(throttle, ALICE, 3)
    fail(throttle, SOURCE, 3)
    with pytest.raises(LoginThrottled, match=re.escape(SOURCE)):
        throttle.check_all(["user:bob", SOURCE, ALICE])
    with pytest.raises(LoginThrottled, match="user:alice"):
        throttle.check_all([ALICE, SOURCE])


def test_the_message_rounds_retry_after_up(throttle: Throttle, clock: FakeClock) -> None:
    fail(throttle, ALICE, 3)
    clock.advance(0.5)
    with pytest.raises(LoginThrottled, match="retry in 10 s") as raised:
        throttle.check(ALICE)
    assert raised.value.retry_after == 9.5


def test_quiet_keys_are_forgotten(throttle: Throttle, clock: FakeClock) -> None:
    for number in range(100):
        throttle.failure(f"user:u{number}")
    assert len(throttle) == 100
    clock.advance(59.0)
    throttle.check(ALICE)
    assert len(throttle) == 100
    clock.advance(1.0)
    throttle.check(ALICE)
    assert len(throttle) == 0


def test_a_locked_key_is_remembered_until_quiet(throttle: Throttle, clock: FakeClock) -> None:
    fail(throttle, ALICE, 3)
    clock.advance(69.0)
    throttle.check(ALICE)
    assert len(throttle) == 1
    clock.advance(1.0)
    throttle.check(ALICE)
    assert len(throttle) == 0


def test_the_number_of_keys_is_capped(clock: FakeClock) -> None:
    throttle = Throttle(3, 60.0, 10.0, 40.0, clock=clock, max_keys=10)
    fail(throttle, ALICE, 3)  # locked, and the oldest
    for number in range(9):
        clock.advance(0.1)
        throttle.failure(f"user:u{number}")
    assert len(throttle) == 10
    throttle.check_all(["user:u0"])
    with pytest.raises(LoginThrottled):
        throttle.check(ALICE)
    throttle.failure("user:u0")  # refreshed: no longer among the oldest
    throttle.failure("user:new")  # one key too many: the oldest (alice) goes
    assert len(throttle) == 10
    throttle.check(ALICE)
    fail(throttle, "user:u0", 1)
    assert retry_after(throttle, "user:u0") == 10.0


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ((0, 60.0, 10.0, 10.0), "max_failures"),
        ((3, 0.0, 10.0, 10.0), "positive"),
        ((3, 60.0, 0.0, 10.0), "positive"),
        ((3, 60.0, 10.0, 5.0), "max_lockout"),
    ],
)
def test_invalid_settings_are_value_errors(
    arguments: tuple[int, float, float, float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Throttle(*arguments)


def test_max_keys_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_keys"):
        Throttle(3, 60.0, 10.0, 10.0, max_keys=0)


def test_the_default_clock_is_monotonic() -> None:
    assert inspect.signature(Throttle).parameters["clock"].default is time.monotonic
