"""aria_auth's hardened macaroon verifier: the security list, each attack refused with
the right error, and (as documentation) where plain pymacaroons 0.13 gets them wrong.
"""

from __future__ import annotations

import base64
import dataclasses
import hmac

import pymacaroons
import pytest
from nacl.exceptions import CryptoError
from pymacaroons import Verifier
from pymacaroons.exceptions import MacaroonInvalidSignatureException

from aria_actors.services.auth import caveats as language
from aria_actors.services.auth import codec, macaroons
from aria_actors.services.auth.caveats import Grant, Request
from aria_actors.services.auth.codec import Caveat, Token
from aria_actors.services.auth.errors import (
    CaveatUnmet,
    DischargeError,
    InvalidSignature,
    InvalidToken,
    PermissionDenied,
    TokenExpired,
    TokenNotYetValid,
)

ROOT_KEY = b"root-key-0123456789abcdef0123456"
OTHER_KEY = b"root-key-0123456789abcdef0123457"
CAVEAT_KEY = b"caveat-key-0123456789abcdef01234"
NOW = 1_800_000_000.0
REQUEST = Request(permissions=frozenset({"read"}), service="api", now=NOW)


def mint(identifier: bytes = b"token-1", caveats: list[str] | None = None) -> str:
    if caveats is None:
        caveats = [
            language.user("bob"),
            language.permissions(["read", "write"]),
            language.service("api"),
            language.time_before(NOW + 3600),
        ]
    return macaroons.mint(ROOT_KEY, identifier, caveats, location="https://aria.example")


def third_party(token: str, caveat_id: bytes, key: bytes = CAVEAT_KEY) -> str:
    return macaroons.add_third_party_caveat(token, "https://tp.example", key, caveat_id)


def discharge(caveat_id: bytes, caveats: tuple[str, ...] = (), key: bytes = CAVEAT_KEY) -> str:
    return macaroons.discharge(key, caveat_id, caveats, location="https://tp.example")


def bound(root: str, *discharges: str) -> list[Token]:
    return [codec.decode(macaroons.prepare_for_request(root, d)) for d in discharges]


def verify(
    token: str | Token,
    discharges: list[Token] | tuple[Token, ...] = (),
    request: Request = REQUEST,
    principal: str | None = "bob",
    key: bytes = ROOT_KEY,
    **options: int,
) -> Grant:
    decoded = codec.decode(token) if isinstance(token, str) else token
    return macaroons.verify(decoded, key, discharges, request, principal, **options)  # type: ignore[arg-type]


def raises(error: type[Exception], *args: object, **kwargs: object) -> Exception:
    """``verify`` raises exactly ``error`` (not a subclass, never another class)."""
    with pytest.raises(error) as info:
        verify(*args, **kwargs)  # type: ignore[arg-type]
    assert type(info.value) is error, repr(info.value)
    return info.value


def replace(token: str | Token, **changes: object) -> Token:
    decoded = codec.decode(token) if isinstance(token, str) else token
    return dataclasses.replace(decoded, **changes)  # type: ignore[arg-type]


def chain(depth: int) -> tuple[str, list[Token]]:
    """A root needing d1, whose discharge needs d2, ... down to d<depth>; all bound."""
    root = third_party(mint(), b"d1")
    discharges = []
    for level in range(1, depth + 1):
        made = discharge(b"d%d" % level, (language.time_before(NOW + 60),))
        if level < depth:
            made = third_party(made, b"d%d" % (level + 1))
        discharges.append(made)
    return root, bound(root, *discharges)


# -- the baseline -------------------------------------------------------------------------------


def test_valid_token_verifies() -> None:
    grant = verify(mint())
    assert grant == Grant(frozenset({"read", "write"}), NOW + 3600, {"api"})


def test_valid_token_with_a_discharge_verifies() -> None:
    root = third_party(mint(), b"tp-1")
    grant = verify(root, bound(root, discharge(b"tp-1")))
    assert grant.permissions == frozenset({"read", "write"})


def test_every_format_verifies() -> None:
    token = codec.decode(mint())
    for fmt in ("binary", "json"):
        verify(codec.encode(token, fmt))  # type: ignore[arg-type]
    for fmt in ("binary", "json"):
        verify(macaroons.mint(ROOT_KEY, b"j", [language.user("bob")], fmt=fmt))  # type: ignore[arg-type]


# -- tampering ----------------------------------------------------------------------------------


@pytest.mark.parametrize("byte", [0, 1, 15, 31])
@pytest.mark.parametrize("bit", [0, 7])
def test_tampered_signature(byte: int, bit: int) -> None:
    token = codec.decode(mint())
    signature = bytearray(token.signature)
    signature[byte] ^= 1 << bit
    error = raises(InvalidSignature, replace(token, signature=bytes(signature)))
    assert "signature does not match" in str(error)


def test_tampered_identifier_and_caveat() -> None:
    token = codec.decode(mint())
    raises(InvalidSignature, replace(token, identifier=b"token-2"))
    forged = (Caveat(b"user = eve"), *token.caveats[1:])
    raises(InvalidSignature, replace(token, caveats=forged), principal="eve")
    widened = (token.caveats[0], Caveat(b"permissions = read write admin"), *token.caveats[2:])
    raises(InvalidSignature, replace(token, caveats=widened))


def test_stripped_caveat() -> None:
    root = third_party(mint(), b"tp-1")
    token = codec.decode(root)
    assert len(token.caveats) == 5
    for index in range(len(token.caveats)):
        stripped = token.caveats[:index] + token.caveats[index + 1 :]
        raises(InvalidSignature, replace(token, caveats=stripped), bound(root, discharge(b"tp-1")))
        raises(InvalidSignature, replace(token, caveats=stripped))
    raises(InvalidSignature, replace(token, caveats=()))


def test_stripped_last_caveat_with_the_previous_signature_is_still_forged() -> None:
    """Removing the last caveat needs the signature before it: only the key gives that."""
    token = codec.decode(mint())
    shorter = codec.decode(mint(caveats=[c.id.decode() for c in token.caveats[:-1]]))
    verify(shorter)  # made with the key: fine
    raises(InvalidSignature, replace(shorter, signature=token.signature))


def test_reordered_caveats() -> None:
    root = third_party(mint(), b"tp-1")
    token = codec.decode(root)
    caveats = list(token.caveats)
    for index in range(len(caveats) - 1):
        swapped = caveats.copy()
        swapped[index], swapped[index + 1] = swapped[index + 1], swapped[index]
        raises(InvalidSignature, replace(token, caveats=tuple(swapped)))
    raises(InvalidSignature, replace(token, caveats=tuple(reversed(caveats))))


def test_appended_caveat_without_signing() -> None:
    token = codec.decode(mint())
    raises(InvalidSignature, replace(token, caveats=(*token.caveats, Caveat(b"user = bob"))))
    verify(macaroons.attenuate(mint(), [language.user("bob")]))  # signed: fine


def test_tampered_third_party_caveat() -> None:
    root = third_party(mint(), b"tp-1")
    token = codec.decode(root)
    third = token.caveats[-1]
    assert third.vid is not None
    vid = bytearray(third.vid)
    vid[-1] ^= 1
    tampered = (*token.caveats[:-1], dataclasses.replace(third, vid=bytes(vid)))
    discharges = bound(root, discharge(b"tp-1"))
    raises(InvalidSignature, replace(token, caveats=tampered), discharges)
    renamed = (*token.caveats[:-1], dataclasses.replace(third, id=b"tp-2"))
    raises(InvalidSignature, replace(token, caveats=renamed), discharges)
    first = (*token.caveats[:-1], Caveat(third.id))  # made first-party
    raises(InvalidSignature, replace(token, caveats=first), discharges)


@pytest.mark.parametrize("key", [OTHER_KEY, b"", ROOT_KEY[:-1], ROOT_KEY + b"\x00", CAVEAT_KEY])
def test_wrong_root_key(key: bytes) -> None:
    raises(InvalidSignature, mint(), key=key)


def test_signature_is_checked_before_everything_else() -> None:
    root = third_party(mint(caveats=[language.time_before(NOW - 1)]), b"tp-1")
    forged = replace(root, signature=bytes(32))
    raises(InvalidSignature, forged)  # not DischargeError (missing), not TokenExpired
    raises(InvalidSignature, forged, bound(root, discharge(b"tp-1"), discharge(b"x")))


# -- first-party caveats --------------------------------------------------------------------------


def test_expired() -> None:
    token = mint(caveats=[language.time_before(NOW)])
    error = raises(TokenExpired, token)
    assert error.caveat == language.time_before(NOW)  # type: ignore[attr-defined]
    verify(token, request=dataclasses.replace(REQUEST, now=NOW - 1))


def test_not_yet_valid() -> None:
    token = mint(caveats=[language.time_after(NOW + 1)])
    error = raises(TokenNotYetValid, token)
    assert error.caveat == language.time_after(NOW + 1)  # type: ignore[attr-defined]
    verify(token, request=dataclasses.replace(REQUEST, now=NOW + 1))


@pytest.mark.parametrize(
    ("caveat", "error"),
    [
        (language.user("alice"), CaveatUnmet),
        (language.permissions(["write"]), PermissionDenied),
        (language.service("storage"), PermissionDenied),
        (language.confine("ip", "10.0.0.7"), CaveatUnmet),
        (language.scope("storage", "/chars"), PermissionDenied),
        ("mystery = 1", CaveatUnmet),
        (language.time_before(NOW - 10), TokenExpired),
    ],
)
def test_unmet_caveat_with_a_right_signature_is_never_a_crypto_error(
    caveat: str, error: type[CaveatUnmet]
) -> None:
    token = mint(caveats=[language.user("bob"), caveat])
    exc = raises(error, token)
    assert isinstance(exc, CaveatUnmet)
    assert not isinstance(exc, InvalidToken)
    assert exc.caveat == caveat
    # with a wrong signature as well, the signature is what is reported
    raises(InvalidSignature, replace(token, signature=bytes(32)))


def test_unmet_caveat_in_the_discharge_chain_is_reported_as_such() -> None:
    root = third_party(mint(), b"tp-1")
    made = discharge(b"tp-1", (language.user("alice"),))
    error = raises(CaveatUnmet, root, bound(root, made))
    assert error.caveat == "user = alice"  # type: ignore[attr-defined]


def test_language_version_in_a_discharge() -> None:
    root = third_party(mint(), b"tp-1")
    made = discharge(b"tp-1", ("aria-caveats = 2",))
    with pytest.raises(InvalidToken, match="caveat language") as info:
        verify(root, bound(root, made))
    assert type(info.value) is InvalidToken


# -- discharges -----------------------------------------------------------------------------------


def test_discharge_bound_to_another_token() -> None:
    root = third_party(mint(), b"tp-1")
    other = third_party(mint(b"token-2"), b"tp-1")
    made = discharge(b"tp-1")
    verify(other, bound(other, made))  # fine where it belongs
    error = raises(DischargeError, root, bound(other, made))
    assert "tp-1" in str(error)


def test_discharge_bound_to_an_attenuated_copy_of_the_token() -> None:
    root = third_party(mint(), b"tp-1")
    narrower = macaroons.attenuate(root, [language.permissions(["read"])])
    made = discharge(b"tp-1")
    verify(narrower, bound(narrower, made))
    raises(DischargeError, root, bound(narrower, made))
    raises(DischargeError, narrower, bound(root, made))


def test_unbound_discharge() -> None:
    root = third_party(mint(), b"tp-1")
    error = raises(DischargeError, root, [codec.decode(discharge(b"tp-1"))])
    assert "does not match" in str(error)


def test_discharge_made_with_another_caveat_key() -> None:
    root = third_party(mint(), b"tp-1")
    raises(DischargeError, root, bound(root, discharge(b"tp-1", key=OTHER_KEY)))


def test_tampered_bound_discharge() -> None:
    root = third_party(mint(), b"tp-1")
    (made,) = bound(root, discharge(b"tp-1", (language.time_before(NOW + 10),)))
    verify(root, [made])
    raises(DischargeError, root, [replace(made, caveats=())])
    raises(DischargeError, root, [replace(made, caveats=(Caveat(b"user = bob"),))])
    signature = bytearray(made.signature)
    signature[0] ^= 1
    raises(DischargeError, root, [replace(made, signature=bytes(signature))])


def test_missing_discharge() -> None:
    root = third_party(mint(), b"tp-1")
    error = raises(DischargeError, root)
    assert "no discharge for the third-party caveat 'tp-1'" in str(error)
    raises(DischargeError, root, bound(root, discharge(b"tp-2")))


def test_unused_extra_discharge() -> None:
    root = third_party(mint(), b"tp-1")
    needed, extra = bound(root, discharge(b"tp-1"), discharge(b"tp-9"))
    verify(root, [needed])
    error = raises(DischargeError, root, [needed, extra])
    assert "no caveat asked for" in str(error)
    assert "tp-9" in str(error)
    raises(DischargeError, root, [extra, needed])
    raises(DischargeError, mint(), [extra])  # a token with no third-party caveat at all


def test_the_needed_discharge_twice_leaves_one_unused() -> None:
    root = third_party(mint(), b"tp-1")
    (made,) = bound(root, discharge(b"tp-1"))
    raises(DischargeError, root, [made, made])


def test_same_discharge_needed_twice() -> None:
    root = third_party(third_party(mint(), b"same"), b"same")
    (one,) = bound(root, discharge(b"same"))
    error = raises(DischargeError, root, [one])
    assert "asked for twice" in str(error)
    # two discharges, each used once, are fine
    verify(root, bound(root, discharge(b"same"), discharge(b"same")))


def test_self_referencing_discharge() -> None:
    root = third_party(mint(), b"loop")
    looping = third_party(discharge(b"loop"), b"loop")
    assert codec.decode(looping).identifier == codec.decode(looping).caveats[0].id
    error = raises(DischargeError, root, bound(root, looping))
    assert "twice" in str(error) or "deeper" in str(error)


@pytest.mark.parametrize("copies", [2, 4, macaroons.MAX_DISCHARGES])
@pytest.mark.parametrize("max_depth", [macaroons.MAX_DEPTH, 10**6])
def test_self_referencing_discharge_in_many_copies(copies: int, max_depth: int) -> None:
    """Each copy can discharge the previous one: recursion stops at max_depth or when the
    copies run out, never in RecursionError."""
    root = third_party(mint(), b"loop")
    looping = third_party(discharge(b"loop"), b"loop")
    raises(DischargeError, root, bound(root, *[looping] * copies), max_depth=max_depth)


def test_discharge_cycle() -> None:
    root = third_party(mint(), b"a")
    first = third_party(discharge(b"a"), b"b")
    second = third_party(discharge(b"b"), b"a")
    raises(DischargeError, root, bound(root, first, second))
    raises(DischargeError, root, bound(root, first, second, first, second), max_depth=10**6)


@pytest.mark.parametrize("depth", [1, 2, 3, macaroons.MAX_DEPTH])
def test_chain_up_to_max_depth_passes(depth: int) -> None:
    root, discharges = chain(depth)
    grant = verify(root, discharges)
    assert grant.expires == NOW + 60


def test_valid_chain_of_depth_2() -> None:
    root, (first, second) = chain(2)
    verify(root, [first, second])
    verify(root, [second, first])  # order of the discharges does not matter
    raises(DischargeError, root, [first])  # the second level is needed
    raises(DischargeError, root, [second])


@pytest.mark.parametrize("max_depth", [0, 1, 2, macaroons.MAX_DEPTH])
def test_chain_deeper_than_max_depth(max_depth: int) -> None:
    root, discharges = chain(max_depth + 1)
    error = raises(DischargeError, root, discharges, max_depth=max_depth)
    assert f"deeper than {max_depth}" in str(error)
    if max_depth:
        root, discharges = chain(max_depth)
        verify(root, discharges, max_depth=max_depth)


def test_default_max_depth() -> None:
    root, discharges = chain(macaroons.MAX_DEPTH + 1)
    raises(DischargeError, root, discharges)


def test_second_level_discharge_bound_to_the_first_discharge_is_refused() -> None:
    """Every discharge is bound to the root token, whatever its level."""
    root = third_party(mint(), b"d1")
    first = third_party(discharge(b"d1"), b"d2")
    second = discharge(b"d2")
    wrong = [*bound(root, first), *bound(first, second)]
    raises(DischargeError, root, wrong)


@pytest.mark.parametrize(
    ("caveat", "error"),
    [
        (language.time_before(NOW - 1), TokenExpired),
        (language.time_after(NOW + 1), TokenNotYetValid),
        (language.permissions(["write"]), PermissionDenied),
        ("mystery = 1", CaveatUnmet),
    ],
)
def test_caveats_in_discharges_are_checked(caveat: str, error: type[CaveatUnmet]) -> None:
    root = third_party(mint(), b"tp-1")
    exc = raises(error, root, bound(root, discharge(b"tp-1", (caveat,))))
    assert exc.caveat == caveat  # type: ignore[attr-defined]


def test_caveats_of_second_level_discharges_are_checked() -> None:
    root = third_party(mint(), b"d1")
    first = third_party(discharge(b"d1"), b"d2")
    expired = discharge(b"d2", (language.time_before(NOW - 1),))
    raises(TokenExpired, root, bound(root, first, expired))


def test_discharge_caveats_narrow_the_grant() -> None:
    root = third_party(mint(), b"tp-1")
    made = discharge(
        b"tp-1", (language.permissions(["read", "admin"]), language.time_before(NOW + 5))
    )
    grant = verify(root, bound(root, made))
    assert grant.permissions == frozenset({"read"})
    assert grant.expires == NOW + 5


def test_discharges_are_checked_before_caveats() -> None:
    """Cryptography, then discharge use, then caveats: an expired token with a missing
    discharge is a DischargeError."""
    root = third_party(mint(caveats=[language.time_before(NOW - 1)]), b"tp-1")
    raises(DischargeError, root)
    raises(TokenExpired, root, bound(root, discharge(b"tp-1")))


def test_too_many_discharges() -> None:
    root = third_party(mint(), b"tp-1")
    discharges = bound(root, discharge(b"tp-1")) * (macaroons.MAX_DISCHARGES + 1)
    error = raises(DischargeError, root, discharges)
    assert f"at most {macaroons.MAX_DISCHARGES}" in str(error)


def test_decode_all() -> None:
    root = third_party(mint(), b"tp-1")
    made = macaroons.prepare_for_request(root, discharge(b"tp-1"))
    token, discharges = macaroons.decode_all(root, [made])
    verify(token, discharges)
    with pytest.raises(DischargeError, match="more than 16 discharges"):
        macaroons.decode_all(root, [made] * (macaroons.MAX_DISCHARGES + 1))
    with pytest.raises(InvalidToken, match="discharge 2: the token is not valid base64"):
        macaroons.decode_all(root, [made, "!!"])
    with pytest.raises(InvalidToken, match="the token is empty"):
        macaroons.decode_all("", [made])


def test_checker_sees_the_first_party_caveats_in_order() -> None:
    root = third_party(mint(caveats=["a = 1", "b = 2"]), b"d1")
    root = macaroons.attenuate(root, ["c = 3"])
    first = macaroons.attenuate(third_party(discharge(b"d1", ("d = 4",)), b"d2"), ["e = 5"])
    second = discharge(b"d2", ("f = 6",))
    seen: list[list[bytes]] = []

    def checker(texts: list[bytes], request: Request, principal: str | None) -> Grant:
        seen.append(list(texts))
        assert request is REQUEST
        assert principal == "bob"
        return Grant(permissions=frozenset({"custom"}))

    grant = verify(root, bound(root, first, second), checker=checker)  # type: ignore[arg-type]
    assert grant.permissions == frozenset({"custom"})
    assert seen == [[b"a = 1", b"b = 2", b"c = 3", b"d = 4", b"e = 5", b"f = 6"]]
    seen.clear()
    with pytest.raises(InvalidSignature):
        verify(replace(root, signature=bytes(32)), checker=checker)  # type: ignore[arg-type]
    assert seen == []


def test_default_request_is_empty() -> None:
    token = codec.decode(mint(caveats=[language.permissions(["read"])]))
    grant = macaroons.verify(token, ROOT_KEY)
    assert grant.permissions == frozenset({"read"})
    with pytest.raises(PermissionDenied):
        macaroons.verify(codec.decode(mint(caveats=[language.service("api")])), ROOT_KEY)


def test_forged_inner_caveat_of_a_discharge_is_refused() -> None:
    """The third party itself can make a discharge whose own third-party caveat
    carries a key that does not decrypt: refused as a bad discharge."""
    root = codec.decode(third_party(mint(), b"tp-1"))
    key = macaroons.derive(CAVEAT_KEY)
    signature = hmac.digest(key, b"tp-1", "sha256")
    vid, cid = b"x" * 72, b"inner"
    signature = hmac.digest(
        signature,
        hmac.digest(signature, vid, "sha256") + hmac.digest(signature, cid, "sha256"),
        "sha256",
    )
    forged = Token(
        "", b"tp-1", (Caveat(cid, vid, "tp"),), macaroons.bind(root.signature, signature)
    )
    with pytest.raises((InvalidSignature, DischargeError)) as info:
        verify(root, [forged])
    assert type(info.value) is DischargeError
    assert "does not decrypt" in str(info.value)


# -- pymacaroons 0.13 gets these wrong (documentation: these fail if the library changes) ----------


def _pm(token: str) -> pymacaroons.Macaroon:
    return pymacaroons.Macaroon.deserialize(token)


def _bob_verifier() -> Verifier:
    verifier = Verifier()
    verifier.satisfy_exact("user = bob")
    return verifier


def test_pymacaroons_accepts_an_unused_discharge() -> None:
    token = mint(caveats=[language.user("bob")])
    other = third_party(mint(b"token-2"), b"tp-1")
    unused = macaroons.prepare_for_request(other, discharge(b"tp-1"))
    assert _bob_verifier().verify(_pm(token), ROOT_KEY, [_pm(unused)]) is True
    raises(DischargeError, token, [codec.decode(unused)])


def test_pymacaroons_lets_one_discharge_serve_two_caveats() -> None:
    root = third_party(third_party(mint(caveats=[language.user("bob")]), b"same"), b"same")
    made = macaroons.prepare_for_request(root, discharge(b"same"))
    assert _bob_verifier().verify(_pm(root), ROOT_KEY, [_pm(made)]) is True
    raises(DischargeError, root, [codec.decode(made)])


def test_pymacaroons_reports_an_unmet_caveat_as_a_bad_signature() -> None:
    token = mint(caveats=[language.user("bob"), language.service("storage")])
    with pytest.raises(MacaroonInvalidSignatureException, match="Signatures do not match"):
        _bob_verifier().verify(_pm(token), ROOT_KEY)
    raises(PermissionDenied, token)


def test_pymacaroons_recurses_without_bound_on_a_self_referencing_discharge() -> None:
    root = third_party(mint(caveats=[language.user("bob")]), b"loop")
    looping = macaroons.prepare_for_request(root, third_party(discharge(b"loop"), b"loop"))
    with pytest.raises(RecursionError):
        _bob_verifier().verify(_pm(root), ROOT_KEY, [_pm(looping)])
    raises(DischargeError, root, [codec.decode(looping)])


def test_pymacaroons_leaks_crypto_errors_on_a_tampered_third_party_caveat() -> None:
    root = third_party(mint(caveats=[language.user("bob")]), b"tp-1")
    token = codec.decode(root)
    third = token.caveats[-1]
    assert third.vid is not None
    tampered = replace(
        token, caveats=(*token.caveats[:-1], dataclasses.replace(third, vid=third.vid[:-1] + b"!"))
    )
    made = macaroons.prepare_for_request(root, discharge(b"tp-1"))
    with pytest.raises(CryptoError):
        _bob_verifier().verify(_pm(codec.encode(tampered)), ROOT_KEY, [_pm(made)])
    raises(InvalidSignature, tampered, [codec.decode(made)])


def test_pymacaroons_leaks_index_error_on_garbage_and_reads_a_truncated_v1_token() -> None:
    with pytest.raises(IndexError):
        pymacaroons.Macaroon.deserialize("!!")
    with pytest.raises(InvalidToken):
        codec.decode("!!")
    truncated = base64.urlsafe_b64encode(b"000flocation").decode()
    assert pymacaroons.Macaroon.deserialize(truncated).location == ""  # read, not refused
    with pytest.raises(InvalidToken):
        codec.decode(truncated)
