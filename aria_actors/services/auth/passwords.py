"""Password hashing for aria_auth: argon2id (argon2-cffi), off the event loop.

A hash is the PHC string argon2-cffi writes, ``$argon2id$v=19$m=...,t=...,p=...$salt$hash``:
it carries its own salt and parameters, so raising the parameters later leaves old
hashes readable; :meth:`Passwords.needs_rehash` tells when to re-hash one (after a
successful login, when the password is at hand).

Hashing and verifying take tens of milliseconds and ``memory_cost`` KiB each, so
they run in a worker thread (:func:`~aria_actors._runtime.blocking.run_blocking`);
pass a ``limiter`` to bound how many run at once, and with it the memory they use
(anyio's default allows 40 threads: 40 x 64 MiB with the default parameters).

A login for a user that does not exist should take as long as one for a user that
does, or the time tells which user names exist: verify the password against
:meth:`Passwords.verify_dummy` instead.

:func:`check_policy` is the rule a new password must meet: :data:`MIN_CHARACTERS`
characters or more, :data:`MAX_BYTES` bytes (UTF-8) or fewer.
"""

from __future__ import annotations

import secrets
from typing import Final

import anyio
from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from argon2.profiles import RFC_9106_LOW_MEMORY

from ..._runtime.blocking import run_blocking

MIN_CHARACTERS: Final = 10
MAX_BYTES: Final = 1024
TIME_COST: Final = RFC_9106_LOW_MEMORY.time_cost
"""Passes over memory (3): RFC 9106's second recommended option."""
MEMORY_COST: Final = RFC_9106_LOW_MEMORY.memory_cost
"""KiB of memory per hash (65536: 64 MiB)."""
PARALLELISM: Final = RFC_9106_LOW_MEMORY.parallelism
"""Lanes (4)."""


def check_policy(password: str) -> None:
    """Check that ``password`` may be set as a new password.

    Raises:
        ValueError: it has fewer than :data:`MIN_CHARACTERS` characters, or more
            than :data:`MAX_BYTES` bytes in UTF-8, or it holds a lone surrogate
            (not text UTF-8 can encode).
    """
    if len(password) < MIN_CHARACTERS:
        raise ValueError(
            f"a password has at least {MIN_CHARACTERS} characters; this one has {len(password)}"
        )
    size = len(_encoded(password))
    if size > MAX_BYTES:
        raise ValueError(f"a password has at most {MAX_BYTES} bytes (UTF-8); this one has {size}")


class Passwords:
    """Hashes and verifies passwords with argon2id at the given cost.

    ``time_cost`` passes over ``memory_cost`` KiB in ``parallelism`` lanes; the
    defaults are RFC 9106's low-memory profile. Tests may use cheap parameters
    (``time_cost=1, memory_cost=1024, parallelism=1``). ``limiter`` bounds how
    many hashes run at once (default: anyio's thread limiter, 40).

    :meth:`prepare` hashes a random password once, in a worker thread, for
    :meth:`verify_dummy` (which does it itself when it was not called).

    Raises:
        ValueError: a parameter is below argon2's minimum (``time_cost`` and
            ``parallelism`` 1, ``memory_cost`` 8 KiB per lane).
    """

    def __init__(
        self,
        time_cost: int = TIME_COST,
        memory_cost: int = MEMORY_COST,
        parallelism: int = PARALLELISM,
        *,
        limiter: anyio.CapacityLimiter | None = None,
    ) -> None:
        if time_cost < 1 or parallelism < 1 or memory_cost < 8 * parallelism:
            raise ValueError(
                "argon2 needs time_cost >= 1, parallelism >= 1 and memory_cost >= 8 KiB "
                f"per lane; got {time_cost}, {parallelism} and {memory_cost}"
            )
        self._hasher = PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_cost,
            parallelism=parallelism,
            type=Type.ID,
        )
        self._limiter = limiter
        self._dummy: str | None = None

    async def prepare(self) -> None:
        """Make the dummy hash of :meth:`verify_dummy` now (at start-up)."""
        if self._dummy is None:
            self._dummy = await self.hash(secrets.token_urlsafe(32))

    async def hash(self, password: str) -> str:
        """The argon2id hash of ``password`` (a fresh random salt each time).

        It does not check :func:`check_policy`; the caller does, for new passwords.

        Raises:
            ValueError: ``password`` holds a lone surrogate (UTF-8 cannot encode it).
            argon2.exceptions.HashingError: libargon2 failed (out of memory).
        """
        secret = _encoded(password)
        return await run_blocking(self._hasher.hash, secret, limiter=self._limiter)

    async def verify(self, stored_hash: str, password: str) -> bool:
        """Whether ``password`` is the one ``stored_hash`` was made from.

        A wrong password gives False, never an error (one UTF-8 cannot encode,
        which no stored hash can be made from, gives False at once). Any argon2
        variant and parameters are read from the hash itself.

        Raises:
            ValueError: ``stored_hash`` is not an argon2 hash, or a corrupt one.
        """
        try:
            secret = _encoded(password)
        except ValueError:
            return False
        try:
            return await run_blocking(
                self._hasher.verify, stored_hash, secret, limiter=self._limiter
            )
        except VerifyMismatchError:
            return False
        except InvalidHashError:
            raise ValueError("the stored password hash is not an argon2 hash") from None
        except VerificationError as error:
            raise ValueError(f"the stored password hash is corrupt: {error}") from None

    def needs_rehash(self, stored_hash: str) -> bool:
        """Whether ``stored_hash`` was made with another variant or other parameters
        than this instance's (re-hash the password at the next successful login).

        Raises:
            ValueError: ``stored_hash`` is not an argon2 hash.
        """
        try:
            return self._hasher.check_needs_rehash(stored_hash)
        except InvalidHashError:
            raise ValueError("the stored password hash is not an argon2 hash") from None

    async def verify_dummy(self, password: str) -> None:
        """Verify ``password`` against a fixed hash made at construction, and ignore
        the result: for a user that does not exist, this takes as long as
        :meth:`verify` of a hash made with this instance's parameters.
        """
        await self.prepare()
        assert self._dummy is not None
        await self.verify(self._dummy, password)


def _encoded(password: str) -> bytes:
    try:
        return password.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("a password must be text UTF-8 can encode (no lone surrogates)") from None
