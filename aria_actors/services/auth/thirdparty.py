"""aria_auth as a third party: caveats it alone can discharge.

A service that wants a check made by aria_auth adds a third-party caveat to a
token (``Auth.third_party_caveat``): aria_auth draws a fresh caveat key and writes
the caveat id as ``aria-tp1:`` followed by the key and the condition, encrypted
(NaCl secretbox) under aria_auth's discharge key, which lives in aria_security
(``aria_auth/discharge``). Nobody else can read or forge such an id.

The holder asks aria_auth for a discharge (``Auth.discharge``), proving who they
are with their own access token; aria_auth decrypts the id, checks the condition
for that caller, and mints a discharge that lives ``discharge_lifetime`` seconds.
The holder binds it to the token (``prepare_for_request``) and sends both.

Conditions (version 1)::

    user = alice        the caller is user alice
    role = editor       the caller has role editor now
    mfa = 1             the caller's login passed a second factor
"""

from __future__ import annotations

import base64
import json
import secrets
from typing import Final

from nacl.exceptions import CryptoError
from nacl.secret import SecretBox

from . import caveats as language
from .errors import InvalidToken, PermissionDenied
from .tokens import Verified

ID_PREFIX: Final = b"aria-tp1:"
SECRET_PATH: Final = "aria_auth/discharge"
CONDITIONS: Final = ("user", "role", "mfa")


def new_discharge_key() -> bytes:
    return secrets.token_bytes(SecretBox.KEY_SIZE)


def check_condition(condition: str) -> tuple[str, str]:
    """``condition`` split into (name, value).

    Raises:
        ValueError: not a condition of version 1.
    """
    name, sep, value = condition.partition(" = ")
    if not sep or name not in CONDITIONS:
        raise ValueError(
            f"a condition is one of {', '.join(CONDITIONS)} '= value', not {condition!r}"
        )
    if name == "mfa" and value != "1":
        raise ValueError("the mfa condition is 'mfa = 1'")
    if name != "mfa" and not language.NAME.fullmatch(value):
        raise ValueError(f"{name} must match {language.NAME.pattern}: {value!r}")
    return name, value


def caveat_id(discharge_key: bytes, caveat_key: bytes, condition: str) -> bytes:
    """The encrypted caveat id for ``condition`` (see the module documentation)."""
    check_condition(condition)
    plain = json.dumps(
        {"k": base64.b64encode(caveat_key).decode(), "c": condition}, separators=(",", ":")
    ).encode()
    sealed = SecretBox(discharge_key).encrypt(plain)
    return ID_PREFIX + base64.urlsafe_b64encode(bytes(sealed)).rstrip(b"=")


def open_caveat_id(discharge_key: bytes, cid: bytes) -> tuple[bytes, str]:
    """(caveat key, condition) of a caveat id aria_auth wrote.

    Raises:
        InvalidToken: not such an id, or not written with this discharge key.
    """
    if not cid.startswith(ID_PREFIX) or len(cid) > 2048:
        raise InvalidToken("not a third-party caveat of aria_auth")
    body = cid[len(ID_PREFIX) :]
    try:
        sealed = base64.urlsafe_b64decode(body + b"=" * (-len(body) % 4))
        document = json.loads(SecretBox(discharge_key).decrypt(sealed))
        caveat_key = base64.b64decode(document["k"], validate=True)
        condition = document["c"]
    except (CryptoError, ValueError, KeyError, TypeError):
        raise InvalidToken("a third-party caveat id that aria_auth cannot open") from None
    if not isinstance(condition, str):
        raise InvalidToken("a third-party caveat id that aria_auth cannot open")
    return caveat_key, condition


def holds(condition: str, caller: Verified, roles: list[str]) -> None:
    """Check ``condition`` for the caller of a discharge request.

    Raises:
        PermissionDenied: it does not hold.
        InvalidToken: the condition is not one of version 1.
    """
    try:
        name, value = check_condition(condition)
    except ValueError as exc:
        raise InvalidToken(str(exc)) from None
    if name == "user" and caller.principal == value:
        return
    if name == "role" and value in roles:
        return
    if name == "mfa" and caller.mfa:
        return
    raise PermissionDenied(f"the third-party condition {condition!r} does not hold", condition)
