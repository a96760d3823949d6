"""The test vectors of libmacaroons' README, through aria_auth's codec and verifier.

libmacaroons (the C reference implementation) documents, step by step, the signature of
a macaroon as caveats are added, its v1 serialization, a forged token, and a third-party
caveat with its discharge, before and after binding. aria_auth builds tokens with
pymacaroons and reads and verifies them with its own code (:mod:`.codec`,
:func:`.macaroons.verify`): both must reproduce every one of these values.

The README's caveats (``account = ...``, ``time < ...``, ``email = ...``) are not aria's
caveat language, so they are checked with :func:`readme_checker`, plugged into
:func:`.macaroons.verify` as its ``checker``.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pymacaroons
import pytest
from pymacaroons.exceptions import MacaroonInvalidSignatureException
from pymacaroons.serializers import BinarySerializer, JsonSerializer

from aria_actors.services.auth import caveats, codec, macaroons
from aria_actors.services.auth.errors import (
    CaveatUnmet,
    DischargeError,
    InvalidSignature,
    TokenExpired,
)

# -- the vectors (libmacaroons README) --------------------------------------------------------

SECRET = b"this is our super secret key; only we should know it"
IDENTIFIER = b"we used our secret key"
LOCATION = "http://mybank/"
SIGNATURE = "e3d9e02908526c4c0039ae15114115d97fdd68bf2ba379b342aaf0f617d0552f"
SERIALIZED_V1 = (
    "MDAxY2xvY2F0aW9uIGh0dHA6Ly9teWJhbmsvCjAwMjZpZGVudGlmaWVyIHdlIHVzZWQgb3VyIHNlY3JldCBrZXkK"
    "MDAyZnNpZ25hdHVyZSDj2eApCFJsTAA5rhURQRXZf91ovyujebNCqvD2F9BVLwo"
)

ACCOUNT = "account = 3735928559"
TIME = "time < 2015-01-01T00:00"
EMAIL = "email = alice@example.org"
CAVEATS = (ACCOUNT, TIME, EMAIL)
SIGNATURES = (
    SIGNATURE,
    "1efe4763f290dbce0c1d08477367e11f4eee456a64933cf662d79772dbb82128",
    "696665d0229f9f801b588bb3f68bbdb806b26d1fbcd40ca22d9017bce4a075f1",
    "882e6d59496ed5245edb7ab5b8839ecd63e5d504e54839804f164070d8eed952",
)
"""The signature after 0, 1, 2 and 3 of :data:`CAVEATS`."""

TAMPERED = (
    "MDAxY2xvY2F0aW9uIGh0dHA6Ly9teWJhbmsvCjAwMjZpZGVudGlmaWVyIHdlIHVzZWQgb3VyIHNl\n"
    "Y3JldCBrZXkKMDAxZGNpZCBhY2NvdW50ID0gMzczNTkyODU1OQowMDIwY2lkIHRpbWUgPCAyMDE1\n"
    "LTAxLTAxVDAwOjAwCjAwMjJjaWQgZW1haWwgPSBhbGljZUBleGFtcGxlLm9yZwowMDJmc2lnbmF0\n"
    "dXJlID8f19FL+bkC9p/aoMmIecC7GxdOcLVyUnrv6lJMM7NSCg=="
)
"""The README's forged token: the three caveats under a signature not made with SECRET."""
TAMPERED_SIGNATURE = "3f1fd7d14bf9b902f69fdaa0c98879c0bb1b174e70b572527aefea524c33b352"

TP_SECRET = b"this is a different super-secret key; never use the same secret twice"
TP_IDENTIFIER = b"we used our other secret key"
TP_FIRST_SIGNATURE = "1434e674ad84fdfdc9bc1aa00785325c8b6d57341fc7ce200ba4680c80786dda"
AUTH_LOCATION = "http://auth.mybank/"
CAVEAT_KEY = b"4; guaranteed random by a fair toss of the dice"
CAVEAT_ID = b"this was how we remind auth of key/pred"
ZERO_NONCE = bytes(24)
TP_SIGNATURE = "d27db2fd1f22760e4c3dae8137e2d8fc1df6c0741c18aed4b97256bf78d1f55c"
TP_VID = (
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"  # the zero nonce
    "027FAuBYhtHwJ58FX6UlVNFtFsGxQHS7uD_w_dedwv4Jjw7UorCREw5rXbRqIKhr"
)
DISCHARGE_SIGNATURE = "82a80681f9f32d419af12f6a71787a1bac3ab199df934ed950ddf20c25ac8c65"
BOUND_SIGNATURE = "2eb01d0dd2b4475330739140188648cf25dda0425ea9f661f1574ca0a9eac54e"

DEADLINE = datetime(2015, 1, 1, tzinfo=UTC).timestamp()
IN_2014 = caveats.Request(now=datetime(2014, 6, 1, 12, tzinfo=UTC).timestamp())
IN_2015 = caveats.Request(now=datetime(2015, 1, 1, tzinfo=UTC).timestamp())
FORMATS = ("binary", "json")


def readme_checker(
    texts: list[bytes], request: caveats.Request, principal: str | None
) -> caveats.Grant:
    """The README's caveats, exactly: the account, the email, and the time caveat (which
    holds while ``request.now`` is before 2015-01-01T00:00 UTC)."""
    assert request.now is not None, "the README checker needs a fixed now"
    for raw in texts:
        text = raw.decode()
        if text == TIME:
            if not request.now < DEADLINE:
                raise TokenExpired("the README's token expired at 2015-01-01T00:00", text)
        elif text not in (ACCOUNT, EMAIL):
            raise CaveatUnmet(f"unknown caveat {text!r}", text)
    return caveats.Grant(expires=DEADLINE)


def signature_of(token: str) -> str:
    return codec.decode(token).signature.hex()


def verify(
    token: str,
    key: bytes = SECRET,
    discharges: tuple[str, ...] = (),
    request: caveats.Request = IN_2014,
) -> caveats.Grant:
    root, bound = macaroons.decode_all(token, discharges)
    return macaroons.verify(root, key, bound, request, checker=readme_checker)


# -- the first-party vectors -------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_root_signature(fmt: codec.Format) -> None:
    token = macaroons.mint(SECRET, IDENTIFIER, location=LOCATION, fmt=fmt)
    decoded = codec.decode(token)
    assert decoded.signature.hex() == SIGNATURE
    assert (decoded.location, decoded.identifier, decoded.caveats) == (LOCATION, IDENTIFIER, ())


def test_v1_serialization_decodes() -> None:
    assert codec.decode(SERIALIZED_V1) == codec.Token(
        LOCATION, IDENTIFIER, (), bytes.fromhex(SIGNATURE), version=1
    )


def test_pymacaroons_writes_the_v1_serialization() -> None:
    """The vector itself, as pymacaroons writes v1 (so the constants are the README's)."""
    macaroon = pymacaroons.Macaroon(location=LOCATION, identifier=IDENTIFIER, key=SECRET)
    assert macaroon.signature == SIGNATURE
    assert macaroon.serialize() == SERIALIZED_V1


@pytest.mark.parametrize("fmt", FORMATS)
def test_v1_token_reencoded_as_v2_keeps_its_signature(fmt: codec.Format) -> None:
    v1 = codec.decode(SERIALIZED_V1)
    v2 = codec.decode(codec.encode(v1, fmt))
    assert v2.version == 2
    assert (v2.location, v2.identifier, v2.caveats, v2.signature) == (
        v1.location,
        v1.identifier,
        v1.caveats,
        v1.signature,
    )
    assert verify(SERIALIZED_V1) == verify(codec.encode(v1, fmt))


@pytest.mark.parametrize("count", [1, 2, 3])
@pytest.mark.parametrize("fmt", FORMATS)
def test_first_party_caveat_signatures(count: int, fmt: codec.Format) -> None:
    minted = macaroons.mint(SECRET, IDENTIFIER, CAVEATS[:count], LOCATION, fmt)
    assert signature_of(minted) == SIGNATURES[count]
    before = macaroons.mint(SECRET, IDENTIFIER, CAVEATS[: count - 1], LOCATION, fmt)
    attenuated = macaroons.attenuate(before, [CAVEATS[count - 1]], fmt)
    assert signature_of(attenuated) == SIGNATURES[count]
    assert codec.decode(attenuated) == codec.decode(minted)


@pytest.mark.parametrize("fmt", FORMATS)
def test_readme_macaroon_verifies(fmt: codec.Format) -> None:
    token = macaroons.mint(SECRET, IDENTIFIER, CAVEATS, LOCATION, fmt)
    grant = verify(token)
    assert isinstance(grant, caveats.Grant)
    assert grant.expires == DEADLINE


def test_readme_checker_is_applied() -> None:
    token = macaroons.mint(SECRET, IDENTIFIER, CAVEATS, LOCATION)
    with pytest.raises(TokenExpired):
        verify(token, request=IN_2015)
    with pytest.raises(CaveatUnmet, match="unknown caveat"):
        verify(macaroons.attenuate(token, ["account = 1"]))


def test_aria_language_refuses_the_readme_caveats() -> None:
    """Without the README checker, aria's default language denies what it does not know."""
    root = codec.decode(macaroons.mint(SECRET, IDENTIFIER, CAVEATS, LOCATION))
    with pytest.raises(CaveatUnmet, match="unknown caveat"):
        macaroons.verify(root, SECRET, request=IN_2014)


def test_wrong_key_is_an_invalid_signature() -> None:
    token = macaroons.mint(SECRET, IDENTIFIER, CAVEATS, LOCATION)
    with pytest.raises(InvalidSignature):
        verify(token, key=TP_SECRET)


def test_tampered_token_is_refused() -> None:
    forged = codec.decode(TAMPERED)
    assert forged.version == 1
    assert forged.signature.hex() == TAMPERED_SIGNATURE
    assert [caveat.id.decode() for caveat in forged.caveats] == list(CAVEATS)
    assert all(caveat.first_party for caveat in forged.caveats)
    with pytest.raises(InvalidSignature):
        verify(TAMPERED)
    # pymacaroons agrees (it would accept the token were the signature SIGNATURES[3])
    verifier = pymacaroons.Verifier()
    for caveat in CAVEATS:
        verifier.satisfy_exact(caveat)
    macaroon = pymacaroons.Macaroon.deserialize("".join(TAMPERED.split()))
    with pytest.raises(MacaroonInvalidSignatureException):
        verifier.verify(macaroon, SECRET)


def test_tampered_token_with_the_right_signature_verifies() -> None:
    """The forged token differs from the genuine one only in its signature."""
    genuine = codec.Token(
        LOCATION,
        IDENTIFIER,
        codec.decode(TAMPERED).caveats,
        bytes.fromhex(SIGNATURES[3]),
        version=2,
    )
    assert verify(codec.encode(genuine)).expires == DEADLINE


# -- the third-party vectors ---------------------------------------------------------------------


def readme_root(version: int = pymacaroons.MACAROON_V2) -> pymacaroons.Macaroon:
    """The README's M: one first-party caveat, then the third-party caveat (zero nonce)."""
    macaroon = pymacaroons.Macaroon(
        location=LOCATION, identifier=TP_IDENTIFIER, key=TP_SECRET, version=version
    )
    macaroon.add_first_party_caveat(ACCOUNT)
    assert macaroon.signature == TP_FIRST_SIGNATURE
    macaroon.add_third_party_caveat(AUTH_LOCATION, CAVEAT_KEY, CAVEAT_ID, nonce=ZERO_NONCE)
    return macaroon


def serialize(macaroon: pymacaroons.Macaroon, fmt: codec.Format) -> str:
    return str(macaroon.serialize(JsonSerializer() if fmt == "json" else BinarySerializer()))


def test_first_caveat_of_the_third_party_example() -> None:
    token = macaroons.mint(TP_SECRET, TP_IDENTIFIER, [ACCOUNT], LOCATION)
    assert signature_of(token) == TP_FIRST_SIGNATURE


@pytest.mark.parametrize("fmt", FORMATS)
def test_third_party_caveat_signature_and_vid(fmt: codec.Format) -> None:
    macaroon = readme_root()
    assert macaroon.signature == TP_SIGNATURE
    vid = base64.urlsafe_b64decode(TP_VID)
    assert macaroon.caveats[1].verification_key_id == vid
    decoded = codec.decode(serialize(macaroon, fmt))
    assert decoded.signature.hex() == TP_SIGNATURE
    assert decoded.caveats == (
        codec.Caveat(ACCOUNT.encode()),
        codec.Caveat(CAVEAT_ID, vid, AUTH_LOCATION),
    )
    # what aria_auth writes back is the same token
    assert codec.decode(codec.encode(decoded, fmt)) == decoded


@pytest.mark.parametrize("fmt", FORMATS)
def test_discharge_and_binding_signatures(fmt: codec.Format) -> None:
    token = serialize(readme_root(), fmt)
    discharge = macaroons.discharge(CAVEAT_KEY, CAVEAT_ID, [TIME], AUTH_LOCATION, fmt)
    assert signature_of(discharge) == DISCHARGE_SIGNATURE
    bound = macaroons.prepare_for_request(token, discharge, fmt)
    assert signature_of(bound) == BOUND_SIGNATURE
    assert (
        macaroons.bind(bytes.fromhex(TP_SIGNATURE), bytes.fromhex(DISCHARGE_SIGNATURE)).hex()
        == BOUND_SIGNATURE
    )


@pytest.mark.parametrize("fmt", FORMATS)
def test_third_party_verification(fmt: codec.Format) -> None:
    token = serialize(readme_root(), fmt)
    discharge = macaroons.discharge(CAVEAT_KEY, CAVEAT_ID, [TIME], AUTH_LOCATION, fmt)
    bound = macaroons.prepare_for_request(token, discharge, fmt)
    assert verify(token, TP_SECRET, (bound,)).expires == DEADLINE
    with pytest.raises(DischargeError):
        verify(token, TP_SECRET, (discharge,))  # not bound: the README's failing case
    with pytest.raises(DischargeError):
        verify(token, TP_SECRET)  # no discharge at all
    with pytest.raises(DischargeError):
        verify(token, TP_SECRET, (bound, bound))  # one discharge, used once
    with pytest.raises(TokenExpired):
        verify(token, TP_SECRET, (bound,), IN_2015)  # the discharge's own caveat
    with pytest.raises(InvalidSignature):
        verify(token, SECRET, (bound,))


def test_third_party_example_in_v1_packets() -> None:
    """The same M and discharge written in libmacaroons' v1 format (``vid``/``cl``)."""
    root = readme_root(pymacaroons.MACAROON_V1)
    token = root.serialize()
    discharge = pymacaroons.Macaroon(location=AUTH_LOCATION, identifier=CAVEAT_ID, key=CAVEAT_KEY)
    discharge.add_first_party_caveat(TIME)
    bound = root.prepare_for_request(discharge)
    assert bound.signature == BOUND_SIGNATURE
    decoded = codec.decode(token)
    assert decoded.version == 1
    assert decoded.caveats[1] == codec.Caveat(
        CAVEAT_ID, base64.urlsafe_b64decode(TP_VID), AUTH_LOCATION
    )
    assert verify(token, TP_SECRET, (bound.serialize(),)).expires == DEADLINE
    with pytest.raises(DischargeError):
        verify(token, TP_SECRET, (discharge.serialize(),))


def test_random_nonce_changes_the_vid_not_the_protocol() -> None:
    """aria_auth's own add_third_party_caveat (random nonce) on the README's M."""
    token = macaroons.mint(TP_SECRET, TP_IDENTIFIER, [ACCOUNT], LOCATION)
    token = macaroons.add_third_party_caveat(token, AUTH_LOCATION, CAVEAT_KEY, CAVEAT_ID)
    caveat = codec.decode(token).caveats[1]
    assert (caveat.id, caveat.location) == (CAVEAT_ID, AUTH_LOCATION)
    assert caveat.vid is not None
    assert caveat.vid != base64.urlsafe_b64decode(TP_VID)
    assert signature_of(token) != TP_SIGNATURE
    discharge = macaroons.discharge(CAVEAT_KEY, CAVEAT_ID, [TIME], AUTH_LOCATION)
    assert signature_of(discharge) == DISCHARGE_SIGNATURE
    bound = macaroons.prepare_for_request(token, discharge)
    assert verify(token, TP_SECRET, (bound,)).expires == DEADLINE
