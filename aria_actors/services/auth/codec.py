"""Macaroons on the wire: strict decoding and encoding of the standard formats.

aria_auth writes tokens as the **v2 binary** format of libmacaroons
(``doc/format.txt``) in unpadded URL-safe base64, or as **v2 JSON** on request. It
reads what the other macaroon libraries write (pymacaroons, the ``macaroon`` npm
package, Go's macaroon): v2 binary and v1 binary (libmacaroons' original packets)
in standard or URL-safe base64, padded or not, and v2 and v1 JSON as JSON text.

Decoding is strict where pymacaroons 0.13 is lax: trailing bytes, fields out of
order, a signature that is not 32 bytes, a varint longer than 5 bytes, non-UTF-8
where text is required, more than :data:`MAX_CAVEATS` caveats or more than
:data:`MAX_TOKEN` characters are all refused with :class:`InvalidToken` naming the
problem, and nothing else ever escapes (no ``IndexError``, no ``struct.error``).
"""

from __future__ import annotations

import binascii
import json
import re
from dataclasses import dataclass
from typing import Any, Final, Literal

from .errors import InvalidToken

MAX_TOKEN: Final = 16384
"""Characters of an encoded token (base64 or JSON) read at most."""
MAX_CAVEATS: Final = 64
MAX_FIELD: Final = 4096
"""Bytes of one identifier, caveat id, verification id or location."""
SIGNATURE_SIZE: Final = 32

_EOS: Final = 0
_LOCATION: Final = 1
_IDENTIFIER: Final = 2
_VID: Final = 4
_SIGNATURE: Final = 6
_URLSAFE: Final = bytes.maketrans(b"-_", b"+/")
_HEX4: Final = re.compile(rb"[0-9a-f]{4}")

Format = Literal["binary", "json"]


@dataclass(frozen=True, slots=True)
class Caveat:
    """One caveat: first-party (``vid`` is None) or third-party (``vid``, ``location``)."""

    id: bytes
    vid: bytes | None = None
    location: str = ""

    @property
    def first_party(self) -> bool:
        return self.vid is None


@dataclass(frozen=True, slots=True)
class Token:
    """A decoded macaroon: what the verifier works on (immutable)."""

    location: str
    identifier: bytes
    caveats: tuple[Caveat, ...]
    signature: bytes
    version: int = 2


# -- decoding -------------------------------------------------------------------------------


def decode(encoded: str | bytes) -> Token:
    """The macaroon in ``encoded`` (base64 of a binary macaroon, or JSON text).

    Raises:
        InvalidToken: empty, too long, not base64 or JSON, or not a well-formed
            macaroon; the message says which.
    """
    if isinstance(encoded, bytes):
        try:
            encoded = encoded.decode("ascii")
        except UnicodeDecodeError:
            raise InvalidToken("a token is ASCII text (base64 or JSON)") from None
    if not isinstance(encoded, str):
        raise InvalidToken(f"a token is text, not {type(encoded).__name__}")
    text = encoded.strip()
    if not text:
        raise InvalidToken("the token is empty")
    if len(text) > MAX_TOKEN:
        raise InvalidToken(f"the token is {len(text)} characters long; at most {MAX_TOKEN}")
    if text[0] == "{":
        return _from_json(text)
    return decode_binary(_b64decode(text))


def decode_binary(data: bytes) -> Token:
    """A macaroon from its binary form (v2, or libmacaroons' v1 packets).

    Raises:
        InvalidToken: not a well-formed macaroon.
    """
    if not data:
        raise InvalidToken("the token is empty")
    if data[0] == 2:
        return _Reader(data).macaroon_v2()
    if data[0] in b"0123456789abcdef":
        return _decode_v1(data)
    raise InvalidToken(f"unknown token format (first byte {data[0]:#04x})")


def _b64decode(text: str) -> bytes:
    """Standard or URL-safe base64, padded or not; line breaks inside are ignored."""
    raw = "".join(text.split()).encode("ascii", errors="replace").translate(_URLSAFE)
    raw += b"=" * (-len(raw) % 4)
    try:
        return binascii.a2b_base64(raw, strict_mode=True)
    except (binascii.Error, ValueError):
        raise InvalidToken("the token is not valid base64") from None


class _Reader:
    """A cursor over v2 binary data; every read checks the bounds."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 1  # after the version byte

    def uvarint(self) -> int:
        value = shift = 0
        for count in range(5):
            if self.pos >= len(self.data):
                raise InvalidToken("the token is truncated (in a field header)")
            byte = self.data[self.pos]
            self.pos += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                if count and byte == 0:
                    raise InvalidToken("a field header is not minimally encoded")
                return value
            shift += 7
        raise InvalidToken("a field header is too long")

    def field(self) -> tuple[int, bytes]:
        kind = self.uvarint()
        if kind == _EOS:
            return _EOS, b""
        size = self.uvarint()
        if size > MAX_FIELD:
            raise InvalidToken(f"a field of {size} bytes; at most {MAX_FIELD}")
        end = self.pos + size
        if end > len(self.data):
            raise InvalidToken("the token is truncated (in a field)")
        value = self.data[self.pos : end]
        self.pos = end
        return kind, value

    def section(self) -> list[tuple[int, bytes]]:
        fields: list[tuple[int, bytes]] = []
        previous = _EOS
        while True:
            kind, value = self.field()
            if kind == _EOS:
                return fields
            if kind not in (_LOCATION, _IDENTIFIER, _VID):
                raise InvalidToken(f"unexpected field type {kind} in a token section")
            if kind <= previous:
                raise InvalidToken("token fields out of order")
            previous = kind
            fields.append((kind, value))

    def macaroon_v2(self) -> Token:
        header = self.section()
        location = ""
        if header and header[0][0] == _LOCATION:
            location = _text(header.pop(0)[1], "the location")
        if len(header) != 1 or header[0][0] != _IDENTIFIER:
            raise InvalidToken("the token header has no identifier (or extra fields)")
        identifier = header[0][1]
        caveats: list[Caveat] = []
        while True:
            section = self.section()
            if not section:
                break
            if len(caveats) == MAX_CAVEATS:
                raise InvalidToken(f"more than {MAX_CAVEATS} caveats")
            caveats.append(_caveat_v2(dict(section)))
        kind, signature = self.field()
        if kind != _SIGNATURE:
            raise InvalidToken("the token has no signature where one belongs")
        if len(signature) != SIGNATURE_SIZE:
            raise InvalidToken(f"a signature of {len(signature)} bytes; it is {SIGNATURE_SIZE}")
        if self.pos != len(self.data):
            raise InvalidToken(f"{len(self.data) - self.pos} stray bytes after the signature")
        return Token(location, identifier, tuple(caveats), signature, 2)


def _caveat_v2(fields: dict[int, bytes]) -> Caveat:
    if _IDENTIFIER not in fields:
        raise InvalidToken("a caveat without an identifier")
    vid = fields.get(_VID)
    location = fields.get(_LOCATION)
    if vid is None:
        if location is not None:
            raise InvalidToken("a first-party caveat with a location")
        return Caveat(fields[_IDENTIFIER])
    return Caveat(fields[_IDENTIFIER], vid, _text(location or b"", "a caveat location"))


def _text(value: bytes, what: str) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidToken(f"{what} is not UTF-8") from None


def _decode_v1(data: bytes) -> Token:
    """libmacaroons' first format: ``XXXX key value\\n`` packets, XXXX in hex."""
    packets: list[tuple[bytes, bytes]] = []
    pos = 0
    while pos < len(data):
        head = data[pos : pos + 4]
        if len(head) < 4:
            raise InvalidToken("the token is truncated (in a packet header)")
        if not _HEX4.fullmatch(head):
            raise InvalidToken("a packet header is not four lower-case hexadecimal digits")
        size = int(head, 16)
        packet = data[pos + 4 : pos + size]
        if size < 6 or len(packet) != size - 4 or not packet.endswith(b"\n"):
            raise InvalidToken("the token is truncated or a packet is malformed")
        key, space, value = packet[:-1].partition(b" ")
        if not space:
            raise InvalidToken("a packet without a key")
        if len(value) > MAX_FIELD:
            raise InvalidToken(f"a field of {len(value)} bytes; at most {MAX_FIELD}")
        packets.append((key, value))
        pos += size
    location = identifier = signature = None
    caveats: list[Caveat] = []
    for index, (key, value) in enumerate(packets):
        if key == b"location" and index == 0:
            location = _text(value, "the location")
        elif key == b"identifier" and identifier is None and not caveats:
            identifier = value
        elif key == b"cid" and identifier is not None and signature is None:
            if len(caveats) == MAX_CAVEATS:
                raise InvalidToken(f"more than {MAX_CAVEATS} caveats")
            caveats.append(Caveat(value))
        elif key == b"vid" and caveats and caveats[-1].vid is None:
            caveats[-1] = Caveat(caveats[-1].id, value)
        elif key == b"cl" and caveats and caveats[-1].vid is not None:
            last = caveats[-1]
            caveats[-1] = Caveat(last.id, last.vid, _text(value, "a caveat location"))
        elif key == b"signature" and identifier is not None and index == len(packets) - 1:
            signature = value
        else:
            raise InvalidToken(f"unexpected packet {key[:20]!r} in a v1 token")
    if location is None or identifier is None or signature is None:
        raise InvalidToken("a v1 token needs a location, an identifier and a signature")
    if len(signature) != SIGNATURE_SIZE:
        raise InvalidToken(f"a signature of {len(signature)} bytes; it is {SIGNATURE_SIZE}")
    return Token(location, identifier, tuple(caveats), signature, 1)


def _from_json(text: str) -> Token:
    try:
        document = json.loads(text, object_pairs_hook=_no_duplicates)
    except (ValueError, RecursionError):
        raise InvalidToken("the token is not valid JSON") from None
    if not isinstance(document, dict):
        raise InvalidToken("a JSON token is an object")
    if "identifier" in document or "signature" in document:
        return _json_v1(document)
    return _json_v2(document)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        raise ValueError("a key appears twice")
    return document


def _utf8(text: str, what: str) -> bytes:
    """``text`` as UTF-8 (JSON may hold lone surrogates, which UTF-8 cannot)."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidToken(f"{what} is not valid Unicode text") from None


def _json_v2(document: dict[str, Any]) -> Token:
    _only(document, {"v", "l", "l64", "i", "i64", "c", "s", "s64"}, "a JSON token")
    version = document.get("v", 2)
    if type(version) is not int or version != 2:
        raise InvalidToken(f"unsupported JSON token version {version!r}")
    raw_caveats = document.get("c", [])
    if not isinstance(raw_caveats, list):
        raise InvalidToken("the caveats ('c') of a JSON token are a list")
    if len(raw_caveats) > MAX_CAVEATS:
        raise InvalidToken(f"more than {MAX_CAVEATS} caveats")
    caveats = []
    for raw in raw_caveats:
        if not isinstance(raw, dict):
            raise InvalidToken("a caveat of a JSON token is an object")
        _only(raw, {"i", "i64", "v", "v64", "l", "l64"}, "a JSON caveat")
        cid = _json_field(raw, "i", required=True)
        vid = _json_field(raw, "v")
        location = _json_field(raw, "l")
        if vid is None and location is not None:
            raise InvalidToken("a first-party caveat with a location")
        caveats.append(Caveat(cid, vid, _text(location or b"", "a caveat location")))
    signature = _json_field(document, "s", required=True)
    if len(signature) != SIGNATURE_SIZE:
        raise InvalidToken(f"a signature of {len(signature)} bytes; it is {SIGNATURE_SIZE}")
    return Token(
        _text(_json_field(document, "l") or b"", "the location"),
        _json_field(document, "i", required=True),
        tuple(caveats),
        signature,
        2,
    )


def _json_v1(document: dict[str, Any]) -> Token:
    _only(document, {"location", "identifier", "caveats", "signature"}, "a v1 JSON token")
    identifier, signature = document.get("identifier"), document.get("signature")
    location = document.get("location", "")
    if not isinstance(identifier, str) or not isinstance(signature, str):
        raise InvalidToken("a v1 JSON token needs 'identifier' and 'signature' strings")
    if not isinstance(location, str):
        raise InvalidToken("'location' of a v1 JSON token is a string")
    _utf8(location, "the location")
    raw_identifier = _utf8(identifier, "the identifier")
    if len(raw_identifier) > MAX_FIELD:
        raise InvalidToken(f"a field of {len(raw_identifier)} bytes; at most {MAX_FIELD}")
    try:
        raw_signature = bytes.fromhex(signature)
    except ValueError:
        raise InvalidToken("the signature of a v1 JSON token is not hexadecimal") from None
    if len(raw_signature) != SIGNATURE_SIZE:
        raise InvalidToken(f"a signature of {len(raw_signature)} bytes; it is {SIGNATURE_SIZE}")
    raw_caveats = document.get("caveats", [])
    if not isinstance(raw_caveats, list) or len(raw_caveats) > MAX_CAVEATS:
        raise InvalidToken(f"'caveats' is a list of at most {MAX_CAVEATS}")
    caveats = []
    for raw in raw_caveats:
        if not isinstance(raw, dict) or not isinstance(raw.get("cid"), str):
            raise InvalidToken("a v1 JSON caveat is an object with a 'cid' string")
        _only(raw, {"cid", "vid", "cl"}, "a v1 JSON caveat")
        cid = _utf8(raw["cid"], "a caveat id")
        if len(cid) > MAX_FIELD:
            raise InvalidToken(f"a field of {len(cid)} bytes; at most {MAX_FIELD}")
        vid = raw.get("vid")
        if vid is None:
            if "cl" in raw:
                raise InvalidToken("a first-party caveat with a location")
            caveats.append(Caveat(cid))
            continue
        cl = raw.get("cl", "")
        if not isinstance(vid, str) or not isinstance(cl, str):
            raise InvalidToken("'vid' and 'cl' of a v1 JSON caveat are strings")
        _utf8(cl, "a caveat location")
        raw_vid = _b64decode(vid)
        if len(raw_vid) > MAX_FIELD:
            raise InvalidToken(f"a field of {len(raw_vid)} bytes; at most {MAX_FIELD}")
        caveats.append(Caveat(cid, raw_vid, cl))
    return Token(location, raw_identifier, tuple(caveats), raw_signature, 1)


def _only(document: dict[str, Any], allowed: set[str], what: str) -> None:
    extra = set(document) - allowed
    if extra:
        raise InvalidToken(f"{what} has unknown fields: {', '.join(sorted(map(str, extra)))}")


def _json_field(document: dict[str, Any], key: str, required: bool = False) -> Any:
    """A v2 JSON field: text under ``key``, or base64 under ``key64`` (bytes)."""
    if key in document and key + "64" in document:
        raise InvalidToken(f"a JSON token has both {key!r} and {key + '64'!r}")
    if key in document:
        value = document[key]
        if not isinstance(value, str):
            raise InvalidToken(f"{key!r} of a JSON token is a string")
        data = _utf8(value, f"{key!r} of a JSON token")
    elif key + "64" in document:
        value = document[key + "64"]
        if not isinstance(value, str):
            raise InvalidToken(f"{key + '64'!r} of a JSON token is a string")
        data = _b64decode(value)
    elif required:
        raise InvalidToken(f"a JSON token needs {key!r} (or {key + '64'!r})")
    else:
        return None
    if len(data) > MAX_FIELD:
        raise InvalidToken(f"a field of {len(data)} bytes; at most {MAX_FIELD}")
    return data


# -- encoding -------------------------------------------------------------------------------


def encode(token: Token, fmt: Format = "binary") -> str:
    """``token`` as unpadded URL-safe base64 of the v2 binary format, or v2 JSON."""
    if fmt == "json":
        return encode_json(token)
    return (
        binascii.b2a_base64(encode_binary(token), newline=False)
        .translate(_TO_URLSAFE)
        .rstrip(b"=")
        .decode("ascii")
    )


_TO_URLSAFE: Final = bytes.maketrans(b"+/", b"-_")


def encode_binary(token: Token) -> bytes:
    """The v2 binary format of libmacaroons' ``doc/format.txt``."""
    out = bytearray(b"\x02")
    if token.location:
        _put(out, _LOCATION, token.location.encode())
    _put(out, _IDENTIFIER, token.identifier)
    out.append(_EOS)
    for caveat in token.caveats:
        if caveat.vid is not None and caveat.location:
            _put(out, _LOCATION, caveat.location.encode())
        _put(out, _IDENTIFIER, caveat.id)
        if caveat.vid is not None:
            _put(out, _VID, caveat.vid)
        out.append(_EOS)
    out.append(_EOS)
    _put(out, _SIGNATURE, token.signature)
    return bytes(out)


def _put(out: bytearray, kind: int, value: bytes) -> None:
    out.append(kind)
    size = len(value)
    while size >= 0x80:
        out.append((size & 0x7F) | 0x80)
        size >>= 7
    out.append(size)
    out += value


def encode_json(token: Token) -> str:
    """The v2 JSON format (text fields as text, others as ``*64`` base64)."""
    document: dict[str, Any] = {"v": 2}
    _set_json(document, "s", token.signature)
    _set_json(document, "i", token.identifier)
    if token.location:
        document["l"] = token.location
    if token.caveats:
        caveats = []
        for caveat in token.caveats:
            entry: dict[str, Any] = {}
            _set_json(entry, "i", caveat.id)
            if caveat.vid is not None:
                _set_json(entry, "v", caveat.vid)
                if caveat.location:
                    entry["l"] = caveat.location
            caveats.append(entry)
        document["c"] = caveats
    return json.dumps(document, separators=(",", ":"))


def _set_json(document: dict[str, Any], key: str, value: bytes) -> None:
    try:
        document[key] = value.decode("utf-8")
    except UnicodeDecodeError:
        encoded = binascii.b2a_base64(value, newline=False).translate(_TO_URLSAFE)
        document[key + "64"] = encoded.rstrip(b"=").decode("ascii")
