"""aria_auth's token codec: round trips, interoperability with pymacaroons, every refusal.

Decoding must be strict (one meaning per token, nothing lax) and total: whatever it
is given, it either returns a :class:`Token` or raises :class:`InvalidToken` naming
the problem; nothing else escapes. The fuzz tests at the end also feed what decodes
to :func:`macaroons.verify` with the right key: a mutated token must never verify.
Raise their example count with ``ARIA_FUZZ_EXAMPLES``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
from typing import Any

import pymacaroons
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymacaroons.serializers import BinarySerializer, JsonSerializer

from aria_actors.services.auth import caveats as language
from aria_actors.services.auth import codec, macaroons
from aria_actors.services.auth.codec import MAX_CAVEATS, MAX_FIELD, MAX_TOKEN, Caveat, Token
from aria_actors.services.auth.errors import AuthError, InvalidToken

FUZZ_EXAMPLES = int(os.environ.get("ARIA_FUZZ_EXAMPLES", "300"))
ROOT_KEY = b"r" * 32
CAVEAT_KEY = b"c" * 32
NOW = 1_800_000_000.0
SIG = bytes(range(32))


# -- helpers (an independent writer of the v2 binary format) ----------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def fld(kind: int, value: bytes) -> bytes:
    return varint(kind) + varint(len(value)) + value


EOS = b"\x00"


def v2(
    header: bytes = fld(2, b"id"),
    sections: tuple[bytes, ...] = (),
    signature: bytes = fld(6, SIG),
) -> bytes:
    """A v2 binary token from raw parts (each section without its EOS)."""
    return b"\x02" + header + EOS + b"".join(s + EOS for s in sections) + EOS + signature


def real_token() -> str:
    """A token minted here: a location, first-party caveats, a third-party caveat."""
    token = macaroons.mint(
        ROOT_KEY,
        b"token-1",
        [language.user("bob"), language.permissions(["read", "write"])],
        location="https://aria.example",
    )
    token = macaroons.add_third_party_caveat(token, "https://tp.example", CAVEAT_KEY, b"tp-1")
    return macaroons.attenuate(token, [language.time_before(NOW + 3600)])


def real_discharge(token: str) -> str:
    discharge = macaroons.discharge(CAVEAT_KEY, b"tp-1", [language.time_after(NOW - 3600)])
    return macaroons.prepare_for_request(token, discharge)


REQUEST = language.Request(permissions=frozenset({"read"}), now=NOW)


def refused(encoded: Any, match: str | None) -> InvalidToken:
    with pytest.raises(InvalidToken, match=match) as info:
        codec.decode(encoded)
    assert type(info.value) is InvalidToken
    return info.value


# -- round trips ------------------------------------------------------------------------------


def test_real_token_decodes_to_its_parts() -> None:
    token = codec.decode(real_token())
    assert token.location == "https://aria.example"
    assert token.identifier == b"token-1"
    assert token.version == 2
    assert [c.id for c in token.caveats] == [
        b"user = bob",
        b"permissions = read write",
        b"tp-1",
        language.time_before(NOW + 3600).encode(),
    ]
    assert [c.first_party for c in token.caveats] == [True, True, False, True]
    third = token.caveats[2]
    assert third.location == "https://tp.example"
    assert third.vid is not None
    assert len(third.vid) == 24 + 16 + 32  # nonce, MAC, key
    assert len(token.signature) == 32


@pytest.mark.parametrize("fmt", ["binary", "json"])
def test_round_trip_first_and_third_party(fmt: codec.Format) -> None:
    token = codec.decode(real_token())
    encoded = codec.encode(token, fmt)
    assert codec.decode(encoded) == token
    # encoding is canonical: encode(decode(x)) is a fixpoint
    assert codec.encode(codec.decode(encoded), fmt) == encoded


def test_binary_encoding_is_unpadded_urlsafe_base64_of_v2() -> None:
    token = codec.decode(real_token())
    encoded = codec.encode(token)
    assert not set(encoded) & set("=+/")
    assert unb64(encoded) == codec.encode_binary(token)
    assert unb64(encoded)[0] == 2


def test_non_utf8_fields_become_64_fields_in_json() -> None:
    token = Token(
        location="loc",
        identifier=b"\xff\xfeid",
        caveats=(
            Caveat(b"\xc3\x28 first"),
            Caveat(b"third", b"\x80" * 72, "https://tp"),
            Caveat(b"plain = text"),
        ),
        signature=SIG,
    )
    text = codec.encode(token, "json")
    document = json.loads(text)
    assert document["v"] == 2
    assert set(document) == {"v", "i64", "s", "l", "c"}
    assert unb64(document["i64"]) == b"\xff\xfeid"
    assert set(document["c"][0]) == {"i64"}
    assert set(document["c"][1]) == {"i", "v64", "l"}
    assert document["c"][1]["i"] == "third"
    assert document["c"][1]["l"] == "https://tp"
    assert document["c"][2] == {"i": "plain = text"}
    assert document["s"] == SIG.decode()  # control characters are UTF-8 all the same
    assert codec.decode(text) == token
    assert codec.decode(codec.encode(token)) == token


def test_utf8_signature_is_written_as_text_and_read_back() -> None:
    token = Token("", b"id", (), b"a" * 32)
    document = json.loads(codec.encode(token, "json"))
    assert document["s"] == "a" * 32
    assert codec.decode(json.dumps(document)) == token


def test_empty_location_and_empty_caveat_id_round_trip() -> None:
    token = Token("", b"", (Caveat(b""), Caveat(b"", b"v", "")), SIG)
    assert codec.decode(codec.encode(token)) == token
    assert codec.decode(codec.encode(token, "json")) == token


_text = st.text(max_size=40)
_bytes = st.binary(max_size=60)
_first = st.builds(Caveat, _bytes)
_third = st.builds(Caveat, _bytes, _bytes, _text)
_tokens = st.builds(
    Token,
    location=_text,
    identifier=_bytes,
    caveats=st.lists(st.one_of(_first, _third), max_size=8).map(tuple),
    signature=st.binary(min_size=32, max_size=32),
)


@settings(max_examples=FUZZ_EXAMPLES, deadline=None)
@given(token=_tokens, fmt=st.sampled_from(["binary", "json"]))
def test_round_trip_any_token(token: Token, fmt: codec.Format) -> None:
    encoded = codec.encode(token, fmt)
    assert codec.decode(encoded) == token
    assert codec.decode(encoded.encode("ascii")) == token  # bytes in, same token


def test_whitespace_around_and_line_breaks_inside_are_ignored() -> None:
    encoded = real_token()
    token = codec.decode(encoded)
    assert codec.decode(f"  {encoded}\n") == token
    wrapped = "\n".join(encoded[i : i + 20] for i in range(0, len(encoded), 20))
    assert codec.decode(wrapped) == token


def test_standard_padded_base64_is_read_too() -> None:
    raw = unb64(real_token())
    assert codec.decode(base64.standard_b64encode(raw).decode()) == codec.decode_binary(raw)


# -- pymacaroons interoperability ---------------------------------------------------------------


def _pymacaroon(version: int) -> pymacaroons.Macaroon:
    mac = pymacaroons.Macaroon(
        location="https://aria.example", identifier=b"pm-1", key=ROOT_KEY, version=version
    )
    mac.add_first_party_caveat("user = bob")
    mac.add_third_party_caveat("https://tp.example", CAVEAT_KEY, "tp-1", nonce=b"n" * 24)
    mac.add_first_party_caveat("permissions = read")
    return mac


def _same_fields(token: Token, mac: pymacaroons.Macaroon) -> None:
    assert token.location == mac.location
    assert token.identifier == mac.identifier_bytes
    assert token.signature == binascii.unhexlify(mac.signature_bytes)
    assert len(token.caveats) == len(mac.caveats)
    for ours, theirs in zip(token.caveats, mac.caveats, strict=True):
        assert ours.id == theirs.caveat_id_bytes
        assert ours.vid == theirs.verification_key_id
        assert ours.location == (theirs.location or "")


@pytest.mark.parametrize(
    ("version", "serializer"),
    [
        (pymacaroons.MACAROON_V2, BinarySerializer()),
        (pymacaroons.MACAROON_V2, JsonSerializer()),
        (pymacaroons.MACAROON_V1, BinarySerializer()),
        (pymacaroons.MACAROON_V1, JsonSerializer()),
    ],
    ids=["v2-binary", "v2-json", "v1-binary", "v1-json"],
)
def test_pymacaroons_serializations_decode_identically(version: int, serializer: Any) -> None:
    mac = _pymacaroon(version)
    token = codec.decode(mac.serialize(serializer))
    assert token.version == (2 if version == pymacaroons.MACAROON_V2 else 1)
    _same_fields(token, mac)
    # and it verifies with our verifier, the discharge made by pymacaroons too
    discharge = pymacaroons.Macaroon(
        location="https://tp.example", identifier=b"tp-1", key=CAVEAT_KEY, version=version
    )
    bound = mac.prepare_for_request(discharge)
    grant = macaroons.verify(
        token, ROOT_KEY, [codec.decode(bound.serialize(serializer))], REQUEST, "bob"
    )
    assert grant.permissions == frozenset({"read"})


def test_all_four_pymacaroons_forms_mean_the_same_token() -> None:
    forms = []
    for version in (pymacaroons.MACAROON_V1, pymacaroons.MACAROON_V2):
        mac = _pymacaroon(version)
        for serializer in (BinarySerializer(), JsonSerializer()):
            token = codec.decode(mac.serialize(serializer))
            forms.append((token.location, token.identifier, token.caveats, token.signature))
    assert len(set(forms)) == 1


def test_pymacaroons_reads_what_we_encode() -> None:
    token = codec.decode(real_token())
    for fmt, serializer in (("binary", BinarySerializer()), ("json", JsonSerializer())):
        mac = pymacaroons.Macaroon.deserialize(codec.encode(token, fmt), serializer)
        _same_fields(token, mac)


def test_pymacaroons_is_lax_where_we_are_strict() -> None:
    """Documentation: pymacaroons 0.13 reads trailing bytes and short signatures."""
    raw = unb64(real_token())
    mac = pymacaroons.Macaroon.deserialize(b64url(raw + b"junk"))
    assert mac.identifier_bytes == b"token-1"
    refused(b64url(raw + b"junk"), "4 stray bytes after the signature")
    short = raw[:-33] + b"\x1f" + raw[-32:-1]
    assert len(binascii.unhexlify(pymacaroons.Macaroon.deserialize(b64url(short)).signature)) == 31
    refused(b64url(short), "a signature of 31 bytes; it is 32")


# -- refusals: the text around the token ----------------------------------------------------------


@pytest.mark.parametrize("empty", ["", "   ", "\n\t", b"", b"  "])
def test_empty(empty: str | bytes) -> None:
    refused(empty, "the token is empty")


def test_empty_binary() -> None:
    with pytest.raises(InvalidToken, match="empty"):
        codec.decode_binary(b"")


def test_too_long() -> None:
    refused("A" * (MAX_TOKEN + 1), f"{MAX_TOKEN + 1} characters long; at most {MAX_TOKEN}")
    refused("{" + " " * MAX_TOKEN + "}", "characters long")
    # exactly MAX_TOKEN characters is not refused for its length (but for what it is)
    error = refused("A" * MAX_TOKEN, None)
    assert "characters long" not in str(error)


def test_length_counts_after_stripping_whitespace() -> None:
    encoded = real_token()
    assert codec.decode(" " * MAX_TOKEN + encoded) == codec.decode(encoded)


@pytest.mark.parametrize("text", ["!!!!", "A", "AgEA!", "QQ==QQ==", "====", "Ag\u00e9A", "Q=Q="])
def test_not_base64(text: str) -> None:
    refused(text, "not valid base64")


def test_not_ascii_bytes() -> None:
    refused("é".encode() + real_token().encode(), "ASCII")


@pytest.mark.parametrize("value", [123, None, ["x"], 1.5])
def test_not_text(value: Any) -> None:
    refused(value, "a token is text")


@pytest.mark.parametrize(
    "text",
    ["{", "{not json}", '{"i":"x"} extra', "{'i': 'x'}", '{"c":' + "[" * 8000, "{" * 5000],
)
def test_not_json(text: str) -> None:
    refused(text, "not valid JSON")


def test_deeply_nested_json_is_refused_not_crashing() -> None:
    depth = (MAX_TOKEN - 10) // 2
    refused('{"c":' + "[" * depth + "]" * depth + "}", "JSON")


def test_unknown_binary_format() -> None:
    for first in (0, 1, 3, 0x41, 0xFF):
        refused(b64url(bytes([first]) + b"rest of it"), f"unknown token format .*{first:#04x}")


# -- refusals: truncation ---------------------------------------------------------------------


def test_truncated_binary_at_every_byte() -> None:
    raw = unb64(real_token())
    assert codec.decode_binary(raw)  # the whole is fine
    for n in range(len(raw)):
        with pytest.raises(InvalidToken, match="truncated" if n else "empty") as info:
            codec.decode(b64url(raw[:n]))
        assert type(info.value) is InvalidToken, n


def test_truncated_discharge_and_first_party_only_token_at_every_byte() -> None:
    token = real_token()
    for raw in (unb64(real_discharge(token)), unb64(macaroons.mint(ROOT_KEY, b"x", ["a = b"]))):
        for n in range(1, len(raw)):
            with pytest.raises(InvalidToken, match="truncated"):
                codec.decode_binary(raw[:n])


def test_truncated_text_at_every_character() -> None:
    encoded = real_token()
    for n in range(len(encoded)):
        with pytest.raises(InvalidToken, match=r"truncated|not valid base64|empty"):
            codec.decode(encoded[:n])


def test_truncated_json_at_every_character() -> None:
    encoded = codec.encode(codec.decode(real_token()), "json")
    for n in range(len(encoded)):
        with pytest.raises(InvalidToken, match=r"not valid JSON|empty"):
            codec.decode(encoded[:n])


def test_truncated_v1_at_every_byte() -> None:
    raw = BinarySerializer().serialize_raw(_pymacaroon(pymacaroons.MACAROON_V1))
    assert codec.decode_binary(raw).version == 1
    for n in range(1, len(raw)):
        with pytest.raises(InvalidToken):
            codec.decode_binary(raw[:n])


# -- refusals: the v2 binary structure ------------------------------------------------------------


def test_hand_built_token_is_fine() -> None:
    """The helpers build valid tokens: the refusals below differ from it in one thing."""
    token = codec.decode(b64url(v2(fld(1, b"loc") + fld(2, b"id"), (fld(2, b"c1"),))))
    assert token == Token("loc", b"id", (Caveat(b"c1"),), SIG)
    third = v2(sections=(fld(1, b"tp") + fld(2, b"c") + fld(4, b"v"),))
    assert codec.decode_binary(third).caveats == (Caveat(b"c", b"v", "tp"),)


@pytest.mark.parametrize("extra", [b"\x00", b"\x06\x20", b"x" * 7, fld(6, SIG)])
def test_trailing_bytes(extra: bytes) -> None:
    raw = unb64(real_token())
    refused(b64url(raw + extra), f"{len(extra)} stray bytes after the signature")


@pytest.mark.parametrize(
    "raw",
    [
        v2(header=fld(2, b"id") + fld(1, b"loc")),  # identifier before location
        v2(header=fld(2, b"id") + fld(2, b"id")),  # a field twice
        v2(header=fld(1, b"a") + fld(1, b"b") + fld(2, b"id")),
        v2(sections=(fld(4, b"v") + fld(2, b"c"),)),  # vid before the caveat id
        v2(sections=(fld(2, b"c") + fld(1, b"loc") + fld(4, b"v"),)),
        v2(sections=(fld(2, b"c") + fld(2, b"d"),)),
    ],
)
def test_fields_out_of_order(raw: bytes) -> None:
    refused(b64url(raw), "token fields out of order")


@pytest.mark.parametrize("size", [0, 1, 16, 31, 33, 64])
def test_signature_of_wrong_size(size: int) -> None:
    refused(b64url(v2(signature=fld(6, b"s" * size))), f"a signature of {size} bytes; it is 32")


def test_signature_of_wrong_size_in_json_and_v1() -> None:
    refused(json.dumps({"i": "x", "s64": b64url(b"s" * 31)}), "a signature of 31 bytes")
    refused(json.dumps({"identifier": "x", "signature": "00" * 33}), "a signature of 33 bytes")


def test_missing_signature() -> None:
    refused(b64url(v2(signature=fld(2, SIG))), "no signature where one belongs")
    refused(b64url(v2(signature=EOS + fld(6, SIG))), "no signature where one belongs")


@pytest.mark.parametrize(
    "raw",
    [
        b"\x02" + b"\x80" * 5 + b"\x00",  # a field type in six bytes
        b"\x02" + b"\x82\x80\x80\x80\x80\x01" + b"\x02id",
        b"\x02\x02" + b"\xff" * 5 + b"\x01",  # a field size in six bytes
        v2(signature=b"\x06" + b"\xa0\x80\x80\x80\x80\x00" + SIG),
    ],
)
def test_overlong_varint(raw: bytes) -> None:
    refused(b64url(raw), "a field header is too long")


@pytest.mark.parametrize(
    "raw",
    [
        b"\x02" + b"\x82\x00" + b"\x02id" + EOS + EOS + fld(6, SIG),  # type 2 as two bytes
        b"\x02" + b"\x02\x82\x00id" + EOS + EOS + fld(6, SIG),  # size 2 as two bytes
        v2(signature=b"\x06\xa0\x80\x00" + SIG),  # size 32 as three bytes
        b"\x02" + b"\x80\x00" + fld(2, b"id"),  # EOS as two bytes
    ],
)
def test_non_minimal_varint(raw: bytes) -> None:
    refused(b64url(raw), "a field header is not minimally encoded")


def test_largest_minimal_varint_is_read() -> None:
    """A five-byte varint is within bounds: refused for its size, not its encoding."""
    refused(b64url(b"\x02\x02" + b"\xff\xff\xff\xff\x7f"), "a field of 34359738367 bytes")


def test_too_many_caveats() -> None:
    ok = v2(sections=tuple(fld(2, b"c%d" % i) for i in range(MAX_CAVEATS)))
    assert len(codec.decode_binary(ok).caveats) == MAX_CAVEATS
    too_many = v2(sections=tuple(fld(2, b"c%d" % i) for i in range(MAX_CAVEATS + 1)))
    refused(b64url(too_many), f"more than {MAX_CAVEATS} caveats")


def test_too_many_caveats_minted() -> None:
    token = macaroons.mint(ROOT_KEY, b"x", [f"c = {i}" for i in range(MAX_CAVEATS)])
    assert len(codec.decode(token).caveats) == MAX_CAVEATS
    # attenuate() keeps to the limit: it never writes a token decode() refuses
    with pytest.raises(ValueError, match=f"at most {MAX_CAVEATS} caveats"):
        macaroons.attenuate(token, ["one = more"])


def test_too_many_caveats_json_and_v1() -> None:
    caveats = [{"i": f"c{i}"} for i in range(MAX_CAVEATS + 1)]
    refused(json.dumps({"i": "x", "s64": b64url(SIG), "c": caveats}), "more than 64 caveats")
    assert len(codec.decode(json.dumps({"i": "x", "s64": b64url(SIG), "c": caveats[1:]})).caveats)
    v1_caveats = [{"cid": f"c{i}"} for i in range(MAX_CAVEATS + 1)]
    refused(
        json.dumps({"identifier": "x", "signature": SIG.hex(), "caveats": v1_caveats}),
        "at most 64",
    )
    mac = pymacaroons.Macaroon(location="l", identifier="x", key=ROOT_KEY, version=1)
    for i in range(MAX_CAVEATS + 1):
        mac.add_first_party_caveat(f"c{i}")
    refused(mac.serialize(), "more than 64 caveats")


@pytest.mark.parametrize(
    "make",
    [
        lambda big: v2(header=fld(2, big)),
        lambda big: v2(header=fld(1, big) + fld(2, b"id")),
        lambda big: v2(sections=(fld(2, big),)),
        lambda big: v2(sections=(fld(2, b"c") + fld(4, big),)),
        lambda big: v2(sections=(fld(1, big) + fld(2, b"c") + fld(4, b"v"),)),
    ],
    ids=["identifier", "location", "caveat-id", "vid", "caveat-location"],
)
def test_oversized_field(make: Any) -> None:
    assert codec.decode_binary(make(b"x" * MAX_FIELD))
    refused(b64url(make(b"x" * (MAX_FIELD + 1))), f"a field of {MAX_FIELD + 1} bytes")


def test_oversized_field_json() -> None:
    refused(json.dumps({"i": "x" * (MAX_FIELD + 1), "s64": b64url(SIG)}), "a field of 4097")
    big = b64url(b"\xff" * (MAX_FIELD + 1))
    refused(json.dumps({"i64": big, "s64": b64url(SIG)}), "a field of 4097")
    refused(json.dumps({"i": "x", "s64": b64url(SIG), "c": [{"i64": big}]}), "a field of 4097")


def test_oversized_minted_identifier() -> None:
    with pytest.raises(ValueError, match=f"at most {MAX_FIELD} bytes"):
        macaroons.mint(ROOT_KEY, b"x" * (MAX_FIELD + 1))
    assert codec.decode(macaroons.mint(ROOT_KEY, b"x" * MAX_FIELD)).identifier == b"x" * MAX_FIELD


def test_first_party_caveat_with_a_location() -> None:
    refused(b64url(v2(sections=(fld(1, b"loc") + fld(2, b"c"),))), "first-party caveat with a")
    doc = {"i": "x", "s64": b64url(SIG), "c": [{"i": "c", "l": "loc"}]}
    refused(json.dumps(doc), "a first-party caveat with a location")


def test_other_structural_refusals() -> None:
    refused(b64url(v2(header=b"")), "no identifier")
    refused(b64url(v2(header=fld(1, b"loc"))), "no identifier")
    refused(b64url(v2(sections=(fld(4, b"v"),))), "a caveat without an identifier")
    refused(b64url(v2(sections=(fld(6, SIG),))), "unexpected field type 6")
    refused(b64url(v2(header=fld(2, b"id") + fld(3, b"x"))), "unexpected field type 3")
    refused(b64url(v2(header=fld(1, b"\xff") + fld(2, b"id"))), "the location is not UTF-8")
    third = fld(1, b"\xc3") + fld(2, b"c") + fld(4, b"v")
    refused(b64url(v2(sections=(third,))), "a caveat location is not UTF-8")


# -- refusals: JSON -------------------------------------------------------------------------


def _doc(**fields: Any) -> str:
    document: dict[str, Any] = {"v": 2, "i": "x", "s64": b64url(SIG)}
    document.update(fields)
    return json.dumps({k: v for k, v in document.items() if v is not None})


def test_json_reference_document_is_fine() -> None:
    assert codec.decode(_doc()) == Token("", b"x", (), SIG)


def test_unknown_json_fields() -> None:
    refused(_doc(extra=1), "a JSON token has unknown fields: extra")
    refused(_doc(c=[{"i": "c", "zz": 1}]), "a JSON caveat has unknown fields: zz")
    refused(
        json.dumps({"identifier": "x", "signature": SIG.hex(), "l": "y"}),
        "a v1 JSON token has unknown fields: l",
    )
    refused(
        json.dumps({"identifier": "x", "signature": SIG.hex(), "caveats": [{"cid": "a", "q": 1}]}),
        "a v1 JSON caveat has unknown fields: q",
    )


@pytest.mark.parametrize("key", ["i", "s", "l"])
def test_both_text_and_64_fields(key: str) -> None:
    value = "x" * 32
    refused(_doc(**{key: value, key + "64": b64url(value.encode())}), f"both '{key}' and '{key}64'")


def test_both_text_and_64_fields_in_caveats() -> None:
    refused(_doc(c=[{"i": "a", "i64": "YQ"}]), "both 'i' and 'i64'")
    refused(_doc(c=[{"i": "a", "v": "b", "v64": "Yg"}]), "both 'v' and 'v64'")


@pytest.mark.parametrize("version", [0, 1, 3, "2", True, None])
def test_wrong_json_version(version: Any) -> None:
    document = {"v": version, "i": "x", "s64": b64url(SIG)}
    refused(json.dumps(document), "unsupported JSON token version")


def test_json_field_types() -> None:
    refused(_doc(i=5), "'i' of a JSON token is a string")
    refused(_doc(i=None, i64=5), "'i64' of a JSON token is a string")
    refused(_doc(i=None), "needs 'i'")
    refused(_doc(s64=None), "needs 's'")
    refused(_doc(i=None, i64="!!"), "not valid base64")
    refused(_doc(c={"i": "a"}), "are a list")
    refused(_doc(c=["a"]), "a caveat of a JSON token is an object")
    refused(_doc(c=[{}]), "needs 'i'")
    refused(_doc(l=None, l64=b64url(b"\xff")), "the location is not UTF-8")


def test_v1_json_refusals() -> None:
    sig = SIG.hex()
    refused(json.dumps({"identifier": "x"}), "needs 'identifier' and 'signature'")
    refused(json.dumps({"identifier": 1, "signature": sig}), "needs 'identifier' and 'signature'")
    refused(json.dumps({"identifier": "x", "signature": "zz" * 32}), "not hexadecimal")
    refused(json.dumps({"identifier": "x", "signature": sig, "location": 1}), "is a string")
    refused(json.dumps({"identifier": "x", "signature": sig, "caveats": "a"}), "a list")
    refused(json.dumps({"identifier": "x", "signature": sig, "caveats": [{}]}), "'cid' string")
    refused(
        json.dumps({"identifier": "x", "signature": sig, "caveats": [{"cid": "a", "vid": 1}]}),
        "are strings",
    )


def pkt(key: bytes, value: bytes) -> bytes:
    """A v1 packet: four hex digits of size, ``key value\\n``."""
    body = key + b" " + value + b"\n"
    return b"%04x" % (len(body) + 4) + body


def test_v1_binary_refusals() -> None:
    head = pkt(b"location", b"l") + pkt(b"identifier", b"x")
    good = head + pkt(b"signature", SIG)
    assert codec.decode_binary(good) == Token("l", b"x", (), SIG, 1)
    assert codec.decode(b64url(good)) == Token("l", b"x", (), SIG, 1)
    refused(b64url(head + pkt(b"signature", b"s" * 5)), "a signature of 5 bytes")
    with pytest.raises(InvalidToken, match="hexadecimal digits"):
        codec.decode_binary(pkt(b"location", b"l") + b"zzzzidentifier x\n" + pkt(b"signature", SIG))
    with pytest.raises(InvalidToken, match="unexpected packet b'bogus'"):
        codec.decode_binary(head + pkt(b"bogus", b"x") + pkt(b"signature", SIG))
    with pytest.raises(InvalidToken, match="needs a location, an identifier and a signature"):
        codec.decode_binary(head)
    with pytest.raises(InvalidToken, match="unexpected packet b'signature'"):  # not last
        codec.decode_binary(good + pkt(b"cid", b"x"))
    with pytest.raises(InvalidToken, match="unexpected packet b'location'"):  # not first
        codec.decode_binary(pkt(b"identifier", b"x") + pkt(b"location", b"l"))
    with pytest.raises(InvalidToken, match="unexpected packet b'vid'"):  # vid without a cid
        codec.decode_binary(head + pkt(b"vid", b"v") + pkt(b"signature", SIG))
    with pytest.raises(InvalidToken, match="a packet without a key"):
        codec.decode_binary(b"000dlocation\n" + good)
    with pytest.raises(InvalidToken, match="truncated or a packet is malformed"):
        codec.decode_binary(pkt(b"location", b"l")[:-1] + b"!" + good)
    with pytest.raises(InvalidToken, match="the location is not UTF-8"):
        codec.decode_binary(pkt(b"location", b"\xff") + pkt(b"identifier", b"x"))


# -- fuzzing ----------------------------------------------------------------------------------


def _signed(token: Token) -> tuple[object, ...]:
    """What a token's signature covers. Locations (of the token and of third-party
    caveats) are hints outside the signature, by the macaroon design."""
    return (token.identifier, tuple((c.id, c.vid) for c in token.caveats), token.signature)


def _check_decode_and_verify(encoded: str | bytes, original: Token | None = None) -> None:
    """Decoding and verifying ``encoded`` raise nothing but AuthError; it verifies
    only if what the signature covers equals ``original``'s."""
    try:
        token = codec.decode(encoded)
    except AuthError:
        return
    assert isinstance(token, Token)
    # whatever decodes re-encodes to the same token
    assert codec.decode(codec.encode(token)) == token
    discharges = [codec.decode(real_discharge(real_token()))]
    for extra in ((), discharges):
        try:
            macaroons.verify(token, ROOT_KEY, extra, REQUEST, "bob")
        except AuthError:
            continue
        assert original is not None, token
        assert _signed(token) == _signed(original), token


@settings(max_examples=FUZZ_EXAMPLES, deadline=None)
@given(data=st.binary(max_size=300))
def test_fuzz_arbitrary_bytes(data: bytes) -> None:
    _check_decode_and_verify(data)
    _check_decode_and_verify(b64url(data))
    _check_decode_and_verify(b64url(b"\x02" + data))
    _check_decode_and_verify(b64url(b"00" + data))
    with contextlib.suppress(AuthError):
        codec.decode_binary(data)


@settings(max_examples=FUZZ_EXAMPLES, deadline=None)
@given(text=st.text(max_size=200))
def test_fuzz_arbitrary_text(text: str) -> None:
    _check_decode_and_verify(text)
    _check_decode_and_verify("{" + text)


_json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=False), st.text(max_size=40)
)
_V2_KEYS = ["v", "i", "i64", "s", "s64", "l", "l64", "c", "v64"]
_V1_KEYS = ["identifier", "signature", "location", "caveats", "cid", "vid", "cl", "x"]
_json_keys = st.sampled_from([*_V2_KEYS, *_V1_KEYS])
_json_value = st.recursive(
    _json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_json_keys, inner, max_size=5),
    max_leaves=12,
)
_b64_text = st.binary(max_size=40).map(b64url)


@settings(max_examples=FUZZ_EXAMPLES, deadline=None)
@given(
    document=st.dictionaries(
        _json_keys, st.one_of(_json_value, _b64_text, st.just(b64url(SIG))), max_size=6
    )
)
def test_fuzz_json_documents(document: dict[str, Any]) -> None:
    _check_decode_and_verify(json.dumps(document))


@st.composite
def _mutated(draw: st.DrawFn, original: bytes) -> bytes:
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "duplicate"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and data:
            data[pos] = draw(st.integers(0, 255))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=3))
        elif op == "delete" and data:
            del data[pos : pos + draw(st.integers(1, 3))]
        elif op == "duplicate" and data:
            data[pos:pos] = data[pos : pos + draw(st.integers(1, 8))]
    return bytes(data)


_ROOT = real_token()
_ROOT_RAW = unb64(_ROOT)
_DISCHARGE_RAW = unb64(real_discharge(_ROOT))
_ROOT_JSON = codec.encode(codec.decode(_ROOT), "json").encode()


def test_fuzz_baseline_verifies() -> None:
    """The tokens the fuzz mutates verify unmutated (else 'never accepted' proves nothing)."""
    grant = macaroons.verify(
        codec.decode(_ROOT), ROOT_KEY, [codec.decode_binary(_DISCHARGE_RAW)], REQUEST, "bob"
    )
    assert grant.permissions == frozenset({"read", "write"})
    assert codec.decode(_ROOT_JSON.decode()) == codec.decode(_ROOT)


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated=_mutated(_ROOT_RAW))
def test_fuzz_mutated_token_never_verifies(mutated: bytes) -> None:
    original = codec.decode(_ROOT)
    discharge = codec.decode_binary(_DISCHARGE_RAW)
    try:
        token = codec.decode(b64url(mutated))
    except AuthError:
        return
    try:
        grant = macaroons.verify(token, ROOT_KEY, [discharge], REQUEST, "bob")
    except AuthError:
        assert _signed(token) != _signed(original)
        return
    assert _signed(token) == _signed(original), (mutated.hex(), token)
    assert grant.permissions == frozenset({"read", "write"})


_PLAIN = macaroons.mint(
    ROOT_KEY, b"plain-1", [language.user("bob"), language.permissions(["read"])], location="x"
)
_PLAIN_RAW = unb64(_PLAIN)


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated=_mutated(_PLAIN_RAW))
def test_fuzz_mutated_first_party_token_never_verifies(mutated: bytes) -> None:
    original = codec.decode(_PLAIN)
    macaroons.verify(original, ROOT_KEY, (), REQUEST, "bob")
    try:
        token = codec.decode(b64url(mutated))
    except AuthError:
        return
    try:
        macaroons.verify(token, ROOT_KEY, (), REQUEST, "bob")
    except AuthError:
        assert _signed(token) != _signed(original)
        return
    assert _signed(token) == _signed(original), (mutated.hex(), token)


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated=_mutated(_DISCHARGE_RAW))
def test_fuzz_mutated_discharge_never_verifies(mutated: bytes) -> None:
    root = codec.decode(_ROOT)
    original = codec.decode_binary(_DISCHARGE_RAW)
    try:
        discharge = codec.decode(b64url(mutated))
    except AuthError:
        return
    try:
        macaroons.verify(root, ROOT_KEY, [discharge], REQUEST, "bob")
    except AuthError:
        assert _signed(discharge) != _signed(original)
        return
    assert _signed(discharge) == _signed(original), (mutated.hex(), discharge)


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated=_mutated(_ROOT_JSON))
def test_fuzz_mutated_json_never_verifies(mutated: bytes) -> None:
    original = codec.decode(_ROOT)
    try:
        token = codec.decode(mutated)
    except AuthError:
        return
    try:
        macaroons.verify(token, ROOT_KEY, [codec.decode_binary(_DISCHARGE_RAW)], REQUEST, "bob")
    except AuthError:
        assert _signed(token) != _signed(original)
        return
    assert _signed(token) == _signed(original), (mutated, token)


def test_identical_reencoding_is_the_accepted_case() -> None:
    """The fuzz's escape hatch is real: an empty location field added to the header
    (a different byte string) decodes to the identical token, which verifies."""
    minted = macaroons.mint(ROOT_KEY, b"no-location", [language.user("bob")])
    raw = unb64(minted)
    assert raw.startswith(b"\x02\x01\x00\x02")  # pymacaroons writes an empty location
    plain = codec.encode_binary(codec.decode(minted))
    assert plain == b"\x02" + raw[3:]  # ours leaves it out...
    assert codec.decode_binary(plain) == codec.decode_binary(raw)  # ...same meaning
    macaroons.verify(codec.decode_binary(plain), ROOT_KEY, (), REQUEST, "bob")
    discharge = codec.decode_binary(_DISCHARGE_RAW)
    # a changed location is outside the signature: it verifies, and the fuzz allows it
    moved = codec.decode(_ROOT)
    moved = Token("https://elsewhere", moved.identifier, moved.caveats, moved.signature)
    macaroons.verify(moved, ROOT_KEY, [discharge], REQUEST, "bob")
    assert _signed(moved) == _signed(codec.decode(_ROOT))


# -- strictness beyond the v2 binary form ------------------------------------------------------


@pytest.mark.parametrize(
    "document",
    [
        '{"v":2,"i":"\\ud800","s64":"SIG64"}',
        '{"v":2,"i":"x","s64":"SIG64","c":[{"i":"\\udfff"}]}',
        '{"v":2,"i":"x","l":"\\ud800","s64":"SIG64"}',
        '{"identifier":"\\ud800","signature":"SIGHEX"}',
        '{"identifier":"x","signature":"SIGHEX","caveats":[{"cid":"\\ud800"}]}',
    ],
)
def test_json_with_lone_surrogate_is_invalid_token(document: str) -> None:
    refused(document.replace("SIG64", b64url(SIG)).replace("SIGHEX", SIG.hex()), None)


def test_v1_json_location_with_lone_surrogate_is_refused() -> None:
    """Refused when read, so no Token exists that cannot be encoded again."""
    document = '{"identifier":"x","location":"\\ud800","signature":"SIGHEX"}'
    document = document.replace("SIGHEX", SIG.hex())
    with pytest.raises(InvalidToken, match="not valid Unicode"):
        codec.decode(document)


@pytest.mark.parametrize("header", [b" 012", b"+012", b"0_12", b"0x12", b"12  "])
def test_v1_packet_header_is_four_hex_digits(header: bytes) -> None:
    raw = BinarySerializer().serialize_raw(
        pymacaroons.Macaroon(location="loc", identifier="id", key=ROOT_KEY, version=1)
    )
    assert b"0012identifier" in raw
    with pytest.raises(InvalidToken, match="hexadecimal"):
        codec.decode_binary(raw.replace(b"0012identifier", header + b"identifier"))


@pytest.mark.parametrize("form", ["v1-binary", "v1-json"])
def test_v1_fields_are_limited_too(form: str) -> None:
    big = "x" * (MAX_FIELD + 1)
    if form == "v1-json":
        encoded = json.dumps({"identifier": big, "signature": SIG.hex()})
    else:
        mac = pymacaroons.Macaroon(location="l", identifier=big, key=ROOT_KEY, version=1)
        encoded = mac.serialize()
    refused(encoded, f"a field of {MAX_FIELD + 1} bytes")


def test_v1_json_first_party_caveat_with_a_location() -> None:
    document = {"identifier": "x", "signature": SIG.hex(), "caveats": [{"cid": "a", "cl": "l"}]}
    refused(json.dumps(document), "a first-party caveat with a location")


def test_json_details() -> None:
    """No "v" is read as 2 (Go's library omits it); "v": 2.0 and a repeated key are
    refused (one token, one reading)."""
    assert codec.decode(json.dumps({"i": "x", "s64": b64url(SIG)})).identifier == b"x"
    refused(json.dumps({"v": 2.0, "i": "x", "s64": b64url(SIG)}), "version 2.0")
    doubled = '{"i":"a","i":"b","s64":"SIG64"}'.replace("SIG64", b64url(SIG))
    refused(doubled, "not valid JSON")
