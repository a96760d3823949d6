"""Login throttling: lock a user name or a source out after repeated failures.

A :class:`Throttle` tracks failures per **key**, any string the caller chooses:
``user:alice`` for a user name (existing or not, so the throttle tells nothing
about which exist), ``source:10.0.0.7`` for a client address. A login checks every
key it involves before verifying anything (:meth:`Throttle.check_all`), then
reports the outcome for each (:meth:`Throttle.failure`, :meth:`Throttle.success`).

The rule, per key:

* ``max_failures`` failures within ``window`` seconds (a sliding window) lock the
  key for ``lockout`` seconds, and start the count afresh;
* each further lockout lasts twice the one before, up to ``max_lockout``;
* the doubling resets once the key has been quiet for a whole ``window``: no
  failure and no lockout ending within it (the key is then forgotten);
* :meth:`Throttle.success` forgets the key's failures, not a lockout under way
  nor the doubling;
* failures reported while the key is locked are ignored: they are attempts that
  passed :meth:`Throttle.check` before the lockout began.

Memory is bounded: a key is forgotten as soon as it is quiet (above), and at most
``max_keys`` keys are tracked; past that, the key whose last failure is the oldest
is forgotten, **even if it is locked**. An attacker able to fail from more than
``max_keys`` keys within a lockout can thus release a lock early: size
``max_keys`` above the number of keys a legitimate load fails in a ``window``, and
throttle by source too, which such an attacker trips first.

Times come from ``clock`` (monotonic seconds); one throttle serves one event loop
(or one actor): it is not thread-safe.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .errors import LoginThrottled

_MAX_LEVEL = 64
"""Lockouts counted beyond this no longer double anything (2**64 x lockout is beyond any cap)."""


@dataclass(slots=True)
class _Key:
    failures: deque[float] = field(default_factory=deque)
    locked_until: float = -math.inf
    level: int = 0
    """Lockouts so far (since the key was last forgotten)."""


class Throttle:
    """Per-key failure counting and lockouts; see the module's documentation for the rule.

    Raises:
        ValueError: ``max_failures`` or ``max_keys`` is less than 1, ``window`` or
            ``lockout`` is not positive, or ``max_lockout`` is less than ``lockout``.
    """

    def __init__(
        self,
        max_failures: int,
        window: float,
        lockout: float,
        max_lockout: float,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        if max_failures < 1 or max_keys < 1:
            raise ValueError(
                f"max_failures and max_keys are 1 or more, not {max_failures} and {max_keys}"
            )
        if not (window > 0 and lockout > 0):
            raise ValueError(f"window and lockout are positive, not {window} and {lockout}")
        if not max_lockout >= lockout:
            raise ValueError(f"max_lockout ({max_lockout}) is less than lockout ({lockout})")
        self.max_failures = max_failures
        self.window = window
        self.lockout = lockout
        self.max_lockout = max_lockout
        self.max_keys = max_keys
        self._clock = clock
        self._keys: OrderedDict[str, _Key] = OrderedDict()
        """By last failure, oldest first."""

    def __len__(self) -> int:
        """How many keys are tracked (including quiet ones not pruned yet)."""
        return len(self._keys)

    def check(self, key: str) -> None:
        """Pass if ``key`` is not locked out.

        Raises:
            LoginThrottled: it is; ``retry_after`` is the seconds until the lockout ends.
        """
        self.check_all((key,))

    def check_all(self, keys: Iterable[str]) -> None:
        """Pass if none of ``keys`` is locked out.

        Raises:
            LoginThrottled: some are; for the one whose lockout ends last (the first
                such key on a tie), with ``retry_after`` the seconds until it ends.
        """
        now = self._clock()
        self._prune(now)
        worst: tuple[str, float] | None = None
        for key in keys:
            entry = self._keys.get(key)
            if entry is None or entry.locked_until <= now:
                continue
            retry_after = entry.locked_until - now
            if worst is None or retry_after > worst[1]:
                worst = (key, retry_after)
        if worst is not None:
            key, retry_after = worst
            raise LoginThrottled(
                f"too many failed logins for {key}; retry in {math.ceil(retry_after)} s",
                retry_after,
            )

    def failure(self, key: str) -> None:
        """Record a failed login for ``key``; lock it if that makes ``max_failures``
        failures within ``window`` (ignored while ``key`` is locked)."""
        now = self._clock()
        self._prune(now)
        entry = self._keys.get(key)
        if entry is None or self._quiet(entry, now):  # quiet but not pruned yet: start afresh
            entry = self._keys[key] = _Key(deque(maxlen=self.max_failures))
        elif entry.locked_until > now:
            return
        self._keys.move_to_end(key)
        failures = entry.failures
        failures.append(now)
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if len(failures) >= self.max_failures:
            entry.locked_until = now + min(self.lockout * 2.0**entry.level, self.max_lockout)
            entry.level = min(entry.level + 1, _MAX_LEVEL)
            failures.clear()
        while len(self._keys) > self.max_keys:
            self._keys.popitem(last=False)

    def success(self, key: str) -> None:
        """Forget ``key``'s failures (a lockout under way and the doubling remain)."""
        now = self._clock()
        entry = self._keys.get(key)
        if entry is not None:
            entry.failures.clear()
            if self._quiet(entry, now):
                del self._keys[key]
        self._prune(now)

    def _quiet(self, entry: _Key, now: float) -> bool:
        """Whether ``entry`` can be forgotten: no failure within the window, and no
        lockout under way or ended within it."""
        horizon = now - self.window
        last = entry.failures[-1] if entry.failures else -math.inf
        return last <= horizon and entry.locked_until <= horizon

    def _prune(self, now: float) -> None:
        """Forget the quiet keys among the oldest (stopping at the first that is not)."""
        while self._keys:
            key, entry = next(iter(self._keys.items()))
            if not self._quiet(entry, now):
                return
            del self._keys[key]
