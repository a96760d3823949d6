"""Making and checking macaroons: the functional core of aria_auth's tokens.

Tokens are *built* with pymacaroons (minting, first- and third-party caveats,
discharges, ``prepare_for_request``, v2 serialization), so what aria_auth writes
is what every macaroon library reads. Tokens are *read and verified* here, with
:mod:`.codec` and :func:`verify`, because that is where pymacaroons 0.13 is weak:

- its verifier accepts a discharge that no caveat used, and lets one discharge
  satisfy several caveats; here every discharge is used exactly once;
- a discharge whose third-party caveat asks for itself sends it into unbounded
  recursion; here chains stop at ``max_depth`` with :class:`DischargeError`;
- an unmet first-party caveat surfaces as "signatures do not match"; here the
  signatures are checked first (:class:`InvalidSignature`) and then the caveats,
  so an expired token is :class:`TokenExpired`, never a crypto error;
- malformed input raises ``IndexError``, ``struct.error``, ``nacl`` errors...;
  here only :class:`InvalidToken` and its subclasses.

The algorithm is libmacaroons': the signature starts as
``HMAC(HMAC("macaroons-key-generator", root_key), identifier)`` and each caveat
moves it on; a third-party caveat carries its caveat key encrypted (NaCl
secretbox) under the signature at that point; a discharge is bound to the token
it is used with by ``HMAC0(HMAC0(token_sig) || HMAC0(discharge_sig))``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Sequence
from typing import Final

import pymacaroons
from nacl.exceptions import CryptoError
from nacl.secret import SecretBox
from pymacaroons.serializers import BinarySerializer, JsonSerializer

from . import caveats as language
from .codec import MAX_CAVEATS, MAX_FIELD, Caveat, Format, Token, decode
from .errors import DischargeError, InvalidSignature, InvalidToken

MAX_DEPTH: Final = 4
"""Discharges of discharges followed at most this deep."""
MAX_DISCHARGES: Final = 16
KEY_SIZE: Final = 32
_GENERATOR: Final = b"macaroons-key-generator"
_ZERO: Final = bytes(32)
_BINARY: Final = BinarySerializer()
_JSON: Final = JsonSerializer()

Checker = Callable[[list[bytes], language.Request, "str | None"], language.Grant]
"""Checks the first-party caveats (in token order) of a verified token; raises
:class:`CaveatUnmet` for one that does not hold."""


def derive(key: bytes) -> bytes:
    """The macaroon key of a root or caveat key (libmacaroons' key generator)."""
    return hmac.digest(_GENERATOR, key, "sha256")


def bind(token_signature: bytes, discharge_signature: bytes) -> bytes:
    """The signature of a discharge once bound to the token it travels with."""
    return hmac.digest(
        _ZERO,
        hmac.digest(_ZERO, token_signature, "sha256")
        + hmac.digest(_ZERO, discharge_signature, "sha256"),
        "sha256",
    )


# -- building, with pymacaroons ---------------------------------------------------------------


def mint(
    root_key: bytes,
    identifier: bytes,
    caveats: Iterable[str] = (),
    location: str = "",
    fmt: Format = "binary",
) -> str:
    """A new token under ``root_key``, its first-party caveats in order, serialized
    as v2 (URL-safe base64 of the binary form, or JSON)."""
    if len(root_key) < 16:
        raise ValueError("a root key has at least 16 bytes (32 are generated)")
    return _mint(root_key, identifier, caveats, location, fmt)


def _mint(key: bytes, identifier: bytes, caveats: Iterable[str], location: str, fmt: Format) -> str:
    if len(identifier) > MAX_FIELD or len(location.encode()) > MAX_FIELD:
        raise ValueError(f"an identifier or location is at most {MAX_FIELD} bytes")
    macaroon = pymacaroons.Macaroon(
        location=location, identifier=identifier, key=key, version=pymacaroons.MACAROON_V2
    )
    _add_first_party(macaroon, caveats)
    return _serialize(macaroon, fmt)


def _add_first_party(macaroon: pymacaroons.Macaroon, caveats: Iterable[str]) -> None:
    """Add caveats within the limits the decoder enforces (a token we write, we read).

    Raises:
        ValueError: more than :data:`MAX_CAVEATS` caveats, or one of more than
            :data:`MAX_FIELD` bytes.
    """
    for caveat in caveats:
        if len(macaroon.caveats) >= MAX_CAVEATS:
            raise ValueError(f"a token has at most {MAX_CAVEATS} caveats")
        if len(caveat.encode()) > MAX_FIELD:
            raise ValueError(f"a caveat is at most {MAX_FIELD} bytes")
        macaroon.add_first_party_caveat(caveat)


def attenuate(token: str, caveats: Iterable[str], fmt: Format = "binary") -> str:
    """``token`` with more first-party caveats: weaker, never stronger. Needs no key.

    Raises:
        InvalidToken: ``token`` cannot be read.
    """
    macaroon = to_pymacaroon(decode(token))
    _add_first_party(macaroon, caveats)
    return _serialize(macaroon, fmt)


def add_third_party_caveat(
    token: str, location: str, caveat_key: bytes, caveat_id: bytes, fmt: Format = "binary"
) -> str:
    """``token`` with a caveat only the third party at ``location`` can discharge.

    ``caveat_key`` is a fresh random key shared with that party; ``caveat_id``
    tells the party the key and what to check (see :mod:`.thirdparty`).
    """
    macaroon = to_pymacaroon(decode(token))
    if len(macaroon.caveats) >= MAX_CAVEATS or len(caveat_id) > MAX_FIELD:
        raise ValueError(f"a token has at most {MAX_CAVEATS} caveats of {MAX_FIELD} bytes")
    macaroon.add_third_party_caveat(location, caveat_key, caveat_id)
    return _serialize(macaroon, fmt)


def discharge(
    caveat_key: bytes,
    caveat_id: bytes,
    caveats: Iterable[str] = (),
    location: str = "",
    fmt: Format = "binary",
) -> str:
    """A discharge for the third-party caveat ``caveat_id`` (before binding).

    ``caveat_key`` is whatever key the caveat's author chose (other libraries allow
    short ones, so no length is imposed here).
    """
    return _mint(caveat_key, caveat_id, caveats, location, fmt)


def prepare_for_request(token: str, discharge_token: str, fmt: Format = "binary") -> str:
    """``discharge_token`` bound to ``token``: usable with that token only."""
    root = to_pymacaroon(decode(token))
    return _serialize(root.prepare_for_request(to_pymacaroon(decode(discharge_token))), fmt)


def to_pymacaroon(token: Token) -> pymacaroons.Macaroon:
    """A pymacaroons ``Macaroon`` with the same fields (for building on it)."""
    macaroon = pymacaroons.Macaroon(
        location=token.location,
        identifier=token.identifier,
        signature=token.signature.hex(),
        version=pymacaroons.MACAROON_V2,
    )
    macaroon.caveats = [
        pymacaroons.Caveat(
            caveat_id=caveat.id,
            verification_key_id=caveat.vid,
            location=caveat.location if caveat.vid is not None else None,
            version=pymacaroons.MACAROON_V2,
        )
        for caveat in token.caveats
    ]
    return macaroon


def _serialize(macaroon: pymacaroons.Macaroon, fmt: Format) -> str:
    return str(macaroon.serialize(_JSON if fmt == "json" else _BINARY))


# -- verifying ----------------------------------------------------------------------------------


def verify(
    token: Token,
    root_key: bytes,
    discharges: Sequence[Token] = (),
    request: language.Request | None = None,
    principal: str | None = None,
    max_depth: int = MAX_DEPTH,
    checker: Checker = language.check,
) -> language.Grant:
    """Check ``token`` (with ``discharges``) for ``request``; what it grants.

    First the cryptography of the token and of every discharge it needs, then
    that each discharge was used exactly once, then every first-party caveat of
    the token and of its discharges with ``checker`` (by default aria's caveat
    language, :func:`.caveats.check`; another language can be plugged in).

    Raises:
        InvalidSignature: the token was not made with ``root_key`` or was altered.
        DischargeError: a discharge is missing, bound to another token or forged,
            used twice, left unused, or nested deeper than ``max_depth``.
        CaveatUnmet: a first-party caveat does not hold (its subclasses say which
            kind: expired, not yet valid, permission denied).
        InvalidToken: a caveat names an unknown language version.
    """
    if len(discharges) > MAX_DISCHARGES:
        raise DischargeError(f"{len(discharges)} discharges; at most {MAX_DISCHARGES}")
    walk = _Walk(token.signature, discharges, max_depth)
    pending = walk.chain(token, derive(root_key), depth=0)
    walk.discharge_all(pending, depth=1)
    unused = [d for d, used in zip(discharges, walk.used, strict=True) if not used]
    if unused:
        raise DischargeError(f"a discharge no caveat asked for: {_label(unused[0].identifier)}")
    return checker(walk.first_party, request or language.Request(), principal)


class _Walk:
    """One verification: the first-party caveats met so far, the discharges used."""

    __slots__ = ("discharges", "first_party", "max_depth", "root_signature", "used")

    def __init__(self, root_signature: bytes, discharges: Sequence[Token], depth: int) -> None:
        self.root_signature = root_signature
        self.discharges = discharges
        self.used = [False] * len(discharges)
        self.first_party: list[bytes] = []
        self.max_depth = depth

    def chain(self, macaroon: Token, key: bytes, depth: int) -> list[tuple[Caveat, bytes]]:
        """Recompute ``macaroon``'s signature from ``key``; its third-party caveats
        with their caveat keys (to discharge next).

        Raises:
            InvalidSignature / DischargeError: the signature does not match (for
                the token / for a discharge).
        """
        signature = hmac.digest(key, macaroon.identifier, "sha256")
        third_party: list[tuple[Caveat, bytes]] = []
        for caveat in macaroon.caveats:
            if caveat.vid is None:
                self.first_party.append(caveat.id)
                signature = hmac.digest(signature, caveat.id, "sha256")
                continue
            try:
                caveat_key = SecretBox(signature).decrypt(caveat.vid)
            except (CryptoError, ValueError, TypeError):
                caveat_key = b""  # the signature check below fails: a wrong key or tampering
            third_party.append((caveat, caveat_key))
            signature = hmac.digest(
                signature,
                hmac.digest(signature, caveat.vid, "sha256")
                + hmac.digest(signature, caveat.id, "sha256"),
                "sha256",
            )
        if depth:
            signature = bind(self.root_signature, signature)
        if not hmac.compare_digest(signature, macaroon.signature):
            if depth:
                raise DischargeError(
                    f"the discharge {_label(macaroon.identifier)} does not match: bound to "
                    "another token, not prepared for this request, or forged"
                )
            raise InvalidSignature(
                "the token's signature does not match: altered, or not made with this key"
            )
        if any(not caveat_key for _, caveat_key in third_party):
            if depth:
                raise DischargeError(
                    f"a third-party caveat of the discharge {_label(macaroon.identifier)} "
                    "does not decrypt"
                )
            raise InvalidSignature("a third-party caveat's key does not decrypt")
        return third_party

    def discharge_all(self, pending: list[tuple[Caveat, bytes]], depth: int) -> None:
        for caveat, caveat_key in pending:
            if depth > self.max_depth:
                raise DischargeError(
                    f"discharges nested deeper than {self.max_depth} (a discharge that "
                    "needs itself?)"
                )
            index = self._unused(caveat.id)
            self.used[index] = True
            more = self.chain(self.discharges[index], caveat_key, depth)
            self.discharge_all(more, depth + 1)

    def _unused(self, caveat_id: bytes) -> int:
        seen = False
        for index, candidate in enumerate(self.discharges):
            if candidate.identifier == caveat_id:
                if not self.used[index]:
                    return index
                seen = True
        if seen:
            raise DischargeError(
                f"the discharge {_label(caveat_id)} is asked for twice; each is used once"
            )
        raise DischargeError(f"no discharge for the third-party caveat {_label(caveat_id)}")


def _label(identifier: bytes) -> str:
    text = identifier[:48].decode("utf-8", errors="replace")
    return repr(text + ("..." if len(identifier) > 48 else ""))


def decode_all(token: str, discharges: Iterable[str] = ()) -> tuple[Token, list[Token]]:
    """Decode a token and its discharges.

    Raises:
        InvalidToken: one of them cannot be read (the message says which).
        DischargeError: more than :data:`MAX_DISCHARGES` discharges.
    """
    root = decode(token)
    bound: list[Token] = []
    for index, text in enumerate(discharges):
        if index == MAX_DISCHARGES:
            raise DischargeError(f"more than {MAX_DISCHARGES} discharges")
        try:
            bound.append(decode(text))
        except InvalidToken as exc:
            raise InvalidToken(f"discharge {index + 1}: {exc}") from None
    return root, bound


def fingerprint(token: Token) -> str:
    """A short stable name for a token (for logs; reveals nothing usable)."""
    return hashlib.sha256(token.signature).hexdigest()[:16]
