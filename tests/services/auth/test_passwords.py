"""argon2id password hashing: the format, verification, rehash detection, the dummy, the policy."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import pytest
from argon2 import PasswordHasher, Type, extract_parameters

from aria_actors._runtime.blocking import run_blocking
from aria_actors.services.auth import passwords
from aria_actors.services.auth.passwords import Passwords, check_policy

PASSWORD = "correct horse battery staple"


@pytest.fixture
def hasher() -> Passwords:
    return cheap()


def cheap(limiter: anyio.CapacityLimiter | None = None) -> Passwords:
    return Passwords(time_cost=1, memory_cost=1024, parallelism=1, limiter=limiter)


async def test_the_hash_is_argon2id_with_the_given_parameters(hasher: Passwords) -> None:
    stored = await hasher.hash(PASSWORD)
    assert stored.startswith("$argon2id$v=19$m=1024,t=1,p=1$")
    parameters = extract_parameters(stored)
    assert parameters.type is Type.ID
    assert PASSWORD not in stored


async def test_each_hash_has_its_own_salt(hasher: Passwords) -> None:
    assert await hasher.hash(PASSWORD) != await hasher.hash(PASSWORD)


async def test_verify_the_right_password(hasher: Passwords) -> None:
    stored = await hasher.hash(PASSWORD)
    assert await hasher.verify(stored, PASSWORD) is True


@pytest.mark.parametrize(
    "wrong", ["", "correct horse battery stapl", "Correct horse battery staple", PASSWORD + " "]
)
async def test_verify_a_wrong_password_is_false(hasher: Passwords, wrong: str) -> None:
    stored = await hasher.hash(PASSWORD)
    assert await hasher.verify(stored, wrong) is False


async def test_unicode_passwords(hasher: Passwords) -> None:
    stored = await hasher.hash("pässwörd-🔑-密码")
    assert await hasher.verify(stored, "pässwörd-🔑-密码") is True
    assert await hasher.verify(stored, "passwörd-🔑-密码") is False


async def test_a_password_utf8_cannot_encode(hasher: Passwords) -> None:
    stored = await hasher.hash(PASSWORD)
    assert await hasher.verify(stored, "lone \ud800 surrogate") is False
    with pytest.raises(ValueError, match="surrogate"):
        await hasher.hash("lone \ud800 surrogate")


async def test_verify_reads_the_parameters_from_the_hash(hasher: Passwords) -> None:
    other = Passwords(time_cost=2, memory_cost=2048, parallelism=2)
    stored = await other.hash(PASSWORD)
    assert await hasher.verify(stored, PASSWORD) is True


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "hunter2",
        "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",  # bcrypt
        "$argon2id$v=19$m=1024,t=1,p=1$not-base64!$nor-this!",
        "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHRzYWx0$",
    ],
)
async def test_a_stored_hash_that_is_not_argon2_is_a_value_error(
    hasher: Passwords, garbage: str
) -> None:
    with pytest.raises(ValueError, match="stored password hash"):
        await hasher.verify(garbage, PASSWORD)


async def test_a_truncated_hash_is_a_value_error(hasher: Passwords) -> None:
    stored = await hasher.hash(PASSWORD)
    with pytest.raises(ValueError, match="corrupt"):
        await hasher.verify(stored[:-10], PASSWORD)


async def test_needs_rehash_when_the_parameters_change(hasher: Passwords) -> None:
    stored = await hasher.hash(PASSWORD)
    assert hasher.needs_rehash(stored) is False
    assert cheap().needs_rehash(stored) is False
    assert Passwords(time_cost=2, memory_cost=1024, parallelism=1).needs_rehash(stored) is True
    assert Passwords(time_cost=1, memory_cost=2048, parallelism=1).needs_rehash(stored) is True
    assert Passwords(time_cost=1, memory_cost=1024, parallelism=2).needs_rehash(stored) is True


async def test_needs_rehash_when_the_variant_is_not_argon2id(hasher: Passwords) -> None:
    argon2i = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1, type=Type.I).hash(
        PASSWORD
    )
    assert hasher.needs_rehash(argon2i) is True
    assert await hasher.verify(argon2i, PASSWORD) is True


def test_needs_rehash_of_garbage_is_a_value_error(hasher: Passwords) -> None:
    with pytest.raises(ValueError, match="not an argon2 hash"):
        hasher.needs_rehash("hunter2")


async def test_the_dummy_verify_runs(hasher: Passwords) -> None:
    await hasher.verify_dummy(PASSWORD)
    await hasher.verify_dummy("")


async def test_the_dummy_hash_uses_the_instance_parameters(hasher: Passwords) -> None:
    # It costs what verifying a current hash costs: same variant and parameters.
    assert hasher._dummy is None  # made at prepare(), in a worker thread
    await hasher.prepare()
    assert hasher._dummy is not None
    assert hasher.needs_rehash(hasher._dummy) is False


def test_the_defaults_are_rfc_9106_low_memory() -> None:
    assert (passwords.TIME_COST, passwords.MEMORY_COST, passwords.PARALLELISM) == (3, 65536, 4)


@pytest.mark.parametrize(
    ("time_cost", "memory_cost", "parallelism"),
    [(0, 1024, 1), (1, 1024, 0), (1, 7, 1), (1, 31, 4)],
)
def test_parameters_below_argon2s_minimum_are_value_errors(
    time_cost: int, memory_cost: int, parallelism: int
) -> None:
    with pytest.raises(ValueError, match="argon2 needs"):
        Passwords(time_cost, memory_cost, parallelism)


async def test_a_limiter_bounds_the_worker_threads() -> None:
    limited = cheap(limiter=anyio.CapacityLimiter(1))
    stored = await limited.hash(PASSWORD)
    assert await limited.verify(stored, PASSWORD) is True


# -- the policy -----------------------------------------------------------------------------


@pytest.mark.parametrize("password", ["a" * 10, "ü" * 10, "🔑" * 10, "x" * 1024, "é" * 512])
def test_the_policy_accepts(password: str) -> None:
    check_policy(password)


@pytest.mark.parametrize("password", ["", "a" * 9, "🔑" * 9])
def test_the_policy_refuses_short_passwords(password: str) -> None:
    with pytest.raises(ValueError, match="at least 10 characters"):
        check_policy(password)


@pytest.mark.parametrize("password", ["x" * 1025, "é" * 513, "🔑" * 257])
def test_the_policy_refuses_long_passwords(password: str) -> None:
    with pytest.raises(ValueError, match="at most 1024 bytes"):
        check_policy(password)


def test_the_policy_refuses_lone_surrogates() -> None:
    with pytest.raises(ValueError, match="surrogate"):
        check_policy("lone \ud800 surrogate")


async def test_hashing_and_verifying_run_in_worker_threads(
    hasher: Passwords, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, object]] = []

    async def recording(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        calls.append((function.__name__, args[0]))
        return await run_blocking(function, *args, **kwargs)

    monkeypatch.setattr("aria_actors.services.auth.passwords.run_blocking", recording)
    await hasher.prepare()
    calls.clear()
    stored = await hasher.hash(PASSWORD)
    await hasher.verify(stored, PASSWORD)
    await hasher.verify_dummy(PASSWORD)
    assert calls == [
        ("hash", PASSWORD.encode()),
        ("verify", stored),
        ("verify", hasher._dummy),
    ]
