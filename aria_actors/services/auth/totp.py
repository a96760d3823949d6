"""Time-based one-time passwords (RFC 6238) and recovery codes: aria_auth's second factor.

A TOTP code is HOTP (RFC 4226: HMAC of a counter, dynamic truncation to 31 bits,
the last ``digits`` decimal digits) with the counter set to the **time step**
``floor(when / period)``. Secrets are base32 text (RFC 4648, case-insensitive,
padding optional), at least :data:`MIN_SECRET_BYTES` bytes once decoded (RFC 4226,
R6); :func:`new_secret` makes 160-bit ones.

:func:`verify` accepts the codes of the steps within ``±window`` of the current one
(clock skew) and returns the step it matched. The caller stores that step and passes
it back as ``last_step``: a step at or before it is refused, so each code works once
(a replay). Codes are compared in constant time, every candidate step is checked
whatever matched, so timing tells nothing about which step matched.

Recovery codes are the fallback when the authenticator is lost: :func:`new_recovery_codes`
makes them, the caller shows them once and stores only :func:`hash_recovery_code` of
each; :func:`match_recovery_code` finds the one a user types, which the caller must
then delete (each recovery code works once).

==============  ==========================================================
parameter       allowed values
==============  ==========================================================
``digits``      6, 7 or 8
``period``      a whole number of seconds, 1 or more (30 is the standard)
``algorithm``   ``"SHA1"`` (what authenticator apps assume), ``"SHA256"``,
                ``"SHA512"``
``window``      0 or more steps (1: the previous and next codes also work)
==============  ==========================================================
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct
from collections.abc import Callable, Sequence
from typing import Any, Final
from urllib.parse import quote, urlencode

from .errors import MfaFailed

ALGORITHMS: Final[dict[str, Callable[..., Any]]] = {
    "SHA1": hashlib.sha1,
    "SHA256": hashlib.sha256,
    "SHA512": hashlib.sha512,
}
SECRET_BYTES: Final = 20
MIN_SECRET_BYTES: Final = 16
DIGITS: Final = (6, 7, 8)
RECOVERY_ALPHABET: Final = "23456789abcdefghjkmnpqrstuvwxyz"
"""Lowercase letters and digits without the look-alikes ``0 o 1 l i`` (31 symbols)."""
RECOVERY_GROUP: Final = 6
"""A recovery code is two groups of this many symbols: ``2 x 6 x log2(31)`` = 59 bits."""


# -- secrets --------------------------------------------------------------------------------


def new_secret() -> str:
    """A fresh random TOTP secret: 160 bits, as 32 base32 characters without padding."""
    return base64.b32encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii").rstrip("=")


def provisioning_uri(
    secret: str,
    account: str,
    issuer: str = "Aria",
    digits: int = 6,
    period: int = 30,
    algorithm: str = "SHA1",
) -> str:
    """The ``otpauth://totp/...`` URI an authenticator app reads (usually from a QR code).

    ``otpauth://totp/Issuer:account?secret=...&issuer=...&algorithm=...&digits=...&period=...``
    with the label and every value percent-encoded; the secret is written in
    upper case without padding.

    Raises:
        ValueError: ``secret`` is not valid base32 or too short; ``account`` or
            ``issuer`` is empty or holds a ``:`` (the label's separator);
            ``digits``, ``period`` or ``algorithm`` is not allowed.
    """
    _check_parameters(digits, period, algorithm)
    _decode_secret(secret)
    for what, value in (("account", account), ("issuer", issuer)):
        if not value or ":" in value:
            raise ValueError(f"the {what} must be non-empty and hold no ':', not {value!r}")
    label = f"{quote(issuer, safe='')}:{quote(account, safe='')}"
    query = urlencode(
        {
            "secret": _normalize_secret(secret),
            "issuer": issuer,
            "algorithm": algorithm,
            "digits": digits,
            "period": period,
        },
        quote_via=quote,
    )
    return f"otpauth://totp/{label}?{query}"


# -- codes ----------------------------------------------------------------------------------


def code_at(
    secret: str,
    when: float,
    digits: int = 6,
    period: int = 30,
    algorithm: str = "SHA1",
) -> str:
    """The code for the time step holding ``when`` (epoch seconds), ``digits`` long.

    Raises:
        ValueError: ``secret`` is not valid base32 or too short, ``when`` is
            negative, or ``digits``, ``period`` or ``algorithm`` is not allowed.
    """
    _check_parameters(digits, period, algorithm)
    key = _decode_secret(secret)
    return _hotp(key, _step(when, period), digits, algorithm)


def verify(
    secret: str,
    code: str,
    when: float,
    last_step: int | None,
    window: int = 1,
    digits: int = 6,
    period: int = 30,
    algorithm: str = "SHA1",
) -> int:
    """Check ``code`` at ``when`` (epoch seconds) and return the time step it matched.

    The codes of the steps ``current - window`` to ``current + window`` are accepted,
    except those of steps at or before ``last_step`` (the step the caller stored the
    last time a code was accepted; ``None``: no code accepted yet). Store the
    returned step as the next ``last_step``. If a code matches several steps (a
    one-in-a-million collision), the latest one not refused is returned.

    ``code`` must be exactly ``digits`` ASCII digits: the caller strips any spaces
    a user typed. Every candidate step is computed and compared in constant time,
    whichever matched.

    Raises:
        MfaFailed: ``code`` is malformed, wrong (for every step in the window), or
            matches only steps at or before ``last_step`` (replayed).
        ValueError: ``secret`` is not valid base32 or too short, ``when`` is
            negative, ``window`` is negative, or ``digits``, ``period`` or
            ``algorithm`` is not allowed.
    """
    _check_parameters(digits, period, algorithm)
    if window < 0:
        raise ValueError(f"the window is 0 or more steps, not {window}")
    key = _decode_secret(secret)
    current = _step(when, period)
    if not (len(code) == digits and code.isascii() and code.isdigit()):
        raise MfaFailed(f"a malformed code: a code is {digits} digits (0-9)")
    given = code.encode("ascii")
    matched = False
    accepted: int | None = None
    for step in range(max(0, current - window), current + window + 1):
        expected = _hotp(key, step, digits, algorithm).encode("ascii")
        if hmac.compare_digest(expected, given):
            matched = True
            if last_step is None or step > last_step:
                accepted = step
    if accepted is not None:
        return accepted
    if matched:
        raise MfaFailed("this code was already used; wait for the next one")
    raise MfaFailed("wrong code (or the clocks of this server and the authenticator differ)")


def _hotp(key: bytes, counter: int, digits: int, algorithm: str) -> str:
    """RFC 4226: HMAC the 8-byte big-endian counter, truncate dynamically, keep ``digits``."""
    mac = hmac.new(key, struct.pack(">Q", counter), ALGORITHMS[algorithm]).digest()
    offset = mac[-1] & 0x0F
    value = int.from_bytes(mac[offset : offset + 4], "big") & 0x7FFF_FFFF
    return str(value % 10**digits).zfill(digits)


def _step(when: float, period: int) -> int:
    if when < 0:
        raise ValueError(f"a time before 1970 has no TOTP step: {when}")
    return int(when // period)


def _check_parameters(digits: int, period: int, algorithm: str) -> None:
    if digits not in DIGITS:
        raise ValueError(f"a TOTP code has 6, 7 or 8 digits, not {digits}")
    if not isinstance(period, int) or period < 1:
        raise ValueError(f"the period is a whole number of seconds, 1 or more, not {period!r}")
    if algorithm not in ALGORITHMS:
        raise ValueError(f"the algorithm is one of {', '.join(ALGORITHMS)}, not {algorithm!r}")


def _normalize_secret(secret: str) -> str:
    return "".join(secret.split()).rstrip("=").upper()


def _decode_secret(secret: str) -> bytes:
    """The key bytes of base32 ``secret`` (case and padding ignored)."""
    text = _normalize_secret(secret)
    try:
        key = base64.b32decode(text + "=" * (-len(text) % 8))
    except ValueError:  # binascii.Error, or non-ASCII text
        raise ValueError(
            "the TOTP secret is not valid base32 (letters A-Z and digits 2-7)"
        ) from None
    if len(key) < MIN_SECRET_BYTES:
        raise ValueError(
            f"the TOTP secret holds {len(key)} bytes; RFC 4226 requires {MIN_SECRET_BYTES} or more"
        )
    return key


# -- recovery codes -------------------------------------------------------------------------


def new_recovery_codes(count: int = 10) -> list[str]:
    """``count`` distinct random recovery codes like ``k7m2qd-x9hwpa`` (59 bits each).

    Symbols come from :data:`RECOVERY_ALPHABET` (no ``0 o 1 l i``).

    Raises:
        ValueError: ``count`` is less than 1.
    """
    if count < 1:
        raise ValueError(f"make 1 or more recovery codes, not {count}")
    codes: list[str] = []
    while len(codes) < count:
        symbols = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(2 * RECOVERY_GROUP))
        code = f"{symbols[:RECOVERY_GROUP]}-{symbols[RECOVERY_GROUP:]}"
        if code not in codes:
            codes.append(code)
    return codes


def hash_recovery_code(code: str) -> str:
    """The SHA-256 (hex) of ``code`` normalized: stripped, lowercased, without dashes
    and spaces, so ``K7M2QD X9HWPA`` and ``k7m2qd-x9hwpa`` hash alike.

    A fast unsalted hash is right here, unlike for passwords: a recovery code is
    random with 59 bits of entropy, so guessing one from its hash is out of reach
    however fast the hash is.

    Raises:
        ValueError: nothing is left of ``code`` once normalized.
    """
    normalized = _normalize_code(code)
    if not normalized:
        raise ValueError("an empty recovery code")
    return hashlib.sha256(normalized.encode("utf-8")).hexdigest()


def match_recovery_code(code: str, hashes: Sequence[str]) -> int | None:
    """The index in ``hashes`` of the hash of ``code`` (normalized), or None.

    Every entry is compared in constant time, whichever matches. An empty
    ``code`` matches nothing. The caller deletes the matched hash: each recovery
    code works once.
    """
    if not _normalize_code(code):
        return None
    given = hash_recovery_code(code).encode("ascii")
    found: int | None = None
    for index, stored in enumerate(hashes):
        if hmac.compare_digest(given, stored.encode("utf-8")) and found is None:
            found = index
    return found


def _normalize_code(code: str) -> str:
    return "".join(code.split()).replace("-", "").lower()
