"""The control protocol: frames, the request and reply unions, and a fuzz of the decoders."""

from __future__ import annotations

import asyncio
import typing

import msgspec
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from aria_actors.console.protocol import (
    DEFAULT_MAX_FRAME,
    HEADER,
    Hello,
    ProtocolError,
    Ps,
    Reply,
    Request,
    decode_reply,
    decode_request,
    encode_frame,
    read_frame,
)

from .helpers import (
    FUZZ_BODIES,
    INVALID_UTF8_HELLO,
    INVALID_UTF8_OP,
    MSGPACK_VALUES,
    REQUEST_LIKE,
    SAMPLE_REPLIES,
    SAMPLE_REQUESTS,
    frame,
    mutated_bodies,
)

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def reader_of(data: bytes, eof: bool = True) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    if eof:
        reader.feed_eof()
    return reader


async def read_one(
    reader: asyncio.StreamReader, max_frame: int = DEFAULT_MAX_FRAME
) -> bytes | None:
    async with asyncio.timeout(1.0):  # every input here is complete: nothing may wait
        return await read_frame(reader, max_frame)


# -- round trips ------------------------------------------------------------------------------


def test_the_samples_cover_every_request_and_reply_type() -> None:
    assert {type(r) for r in SAMPLE_REQUESTS} == set(typing.get_args(Request))
    assert {type(r) for r in SAMPLE_REPLIES} == set(typing.get_args(Reply))


@pytest.mark.parametrize("request_", SAMPLE_REQUESTS, ids=repr)
async def test_every_request_round_trips_through_a_frame(request_: Request) -> None:
    data = encode_frame(request_)
    assert HEADER.unpack(data[:4]) == (len(data) - 4,)
    reader = reader_of(data)
    body = await read_one(reader)
    assert body is not None
    assert decode_request(body) == request_
    assert await read_one(reader) is None


@pytest.mark.parametrize("reply", SAMPLE_REPLIES, ids=lambda r: type(r).__name__)
async def test_every_reply_round_trips_through_a_frame(reply: Reply) -> None:
    reader = reader_of(encode_frame(reply))
    body = await read_one(reader)
    assert body is not None
    assert decode_reply(body) == reply
    assert await read_one(reader) is None


async def test_frames_follow_each_other_on_one_stream() -> None:
    reader = reader_of(b"".join(encode_frame(r) for r in SAMPLE_REQUESTS))
    decoded = []
    while (body := await read_one(reader)) is not None:
        decoded.append(decode_request(body))
    assert decoded == SAMPLE_REQUESTS


def test_requests_and_replies_are_decoded_by_their_own_union() -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_request(msgspec.msgpack.encode(SAMPLE_REPLIES[0]))  # a Welcome
    assert caught.value.code == "bad_request"
    with pytest.raises(ProtocolError) as caught:
        decode_reply(msgspec.msgpack.encode(Hello(version=1, cookie="x")))
    assert caught.value.code == "bad_request"


# -- read_frame -------------------------------------------------------------------------------


async def test_read_frame_returns_none_at_a_clean_end_of_stream() -> None:
    assert await read_one(reader_of(b"")) is None


@pytest.mark.parametrize("data", [b"\x00", b"\x00\x00\x00"], ids=["1 byte", "3 bytes"])
async def test_read_frame_refuses_a_truncated_header(data: bytes) -> None:
    with pytest.raises(ProtocolError, match="inside a frame header") as caught:
        await read_one(reader_of(data))
    assert caught.value.code == "malformed"


async def test_read_frame_refuses_a_truncated_body() -> None:
    data = encode_frame(Ps())
    with pytest.raises(ProtocolError, match=rf"\(3 of {len(data) - 4} bytes\)") as caught:
        await read_one(reader_of(data[:7]))
    assert caught.value.code == "malformed"


async def test_read_frame_accepts_a_frame_of_exactly_the_limit_and_an_empty_one() -> None:
    reader = reader_of(frame(b"x" * 100) + frame(b""))
    assert await read_one(reader, max_frame=100) == b"x" * 100
    assert await read_one(reader, max_frame=100) == b""


async def test_read_frame_refuses_a_frame_over_the_limit_without_reading_its_body() -> None:
    reader = reader_of(HEADER.pack(101) + b"body", eof=False)  # the rest never comes
    with pytest.raises(ProtocolError, match="101 bytes is over the limit of 100") as caught:
        await read_one(reader, max_frame=100)
    assert caught.value.code == "too_large"
    assert await reader.readexactly(4) == b"body"  # still unread: the body was not consumed


async def test_read_frame_refuses_the_largest_length_at_once() -> None:
    reader = reader_of(b"\xff\xff\xff\xff", eof=False)
    with pytest.raises(ProtocolError) as caught:
        await read_one(reader)
    assert caught.value.code == "too_large"


# -- decode_request ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [b"", b"\xc1", b"\x81\xa2op", msgspec.msgpack.encode({"op": "tree"}) + b"\x00"],
    ids=["empty", "reserved byte", "truncated map", "trailing bytes"],
)
def test_garbage_is_malformed(body: bytes) -> None:
    with pytest.raises(ProtocolError, match="not a msgpack frame") as caught:
        decode_request(body)
    assert caught.value.code == "malformed"
    with pytest.raises(ProtocolError):
        decode_reply(body)


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ({"op": "launch"}, "Invalid value 'launch' - at `$.op`"),
        ({"op": "ps", "limit": "ten"}, "Expected `int`, got `str` - at `$.limit`"),
        ({"op": "ps", "limit": True}, "Expected `int`, got `bool` - at `$.limit`"),
        ({"op": "ps", "sort": "cpu"}, "Invalid enum value 'cpu' - at `$.sort`"),
        ({"op": "trace", "name": "x", "on": 1}, "Expected `bool`, got `int` - at `$.on`"),
        ({"op": "info"}, "Object missing required field `name`"),
        ({"op": "hello", "version": 1}, "Object missing required field `cookie`"),
        ({"op": b"tree"}, "Expected `str`, got `bytes` - at `$.op`"),
        ({"name": "x"}, "Object missing required field `op`"),
        ([1, 2], "Expected `object`, got `array`"),
        ("tree", "Expected `object`, got `str`"),
    ],
)
def test_a_valid_map_that_is_not_a_request_is_a_bad_request_naming_the_problem(
    value: object, named: str
) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_request(msgspec.msgpack.encode(value))
    assert caught.value.code == "bad_request"
    assert str(caught.value) == f"not a valid request: {named}"


def test_unknown_fields_are_ignored() -> None:
    body = msgspec.msgpack.encode({"op": "ps", "limit": 3, "colour": "blue"})
    assert decode_request(body) == Ps(limit=3)


@pytest.mark.parametrize("body", [INVALID_UTF8_HELLO, INVALID_UTF8_OP], ids=["cookie", "op"])
def test_a_string_that_is_not_utf8_is_a_protocol_error(body: bytes) -> None:
    """BUG: msgspec raises UnicodeDecodeError (not a DecodeError) for a str that is not
    UTF-8; decode_request lets it through, so the server's handler dies on it."""
    with pytest.raises(ProtocolError) as caught:
        decode_request(body)
    assert caught.value.code in ("malformed", "bad_request")


def test_a_deeply_nested_reply_is_a_protocol_error() -> None:
    """BUG: a reply nesting deeper than msgspec's limit (in LogsReply's Any values)
    raises RecursionError out of decode_reply instead of ProtocolError."""
    body = b"\x82\xa2op\xa4logs\xa6events\x91\x81\xa1a" + b"\x91" * 100_000 + b"\xc0"
    with pytest.raises(ProtocolError):
        decode_reply(body)


# -- fuzz -------------------------------------------------------------------------------------


def decode_outcome(body: bytes) -> Request | ProtocolError:
    try:
        return decode_request(body)
    except ProtocolError as exc:
        return exc


def decodes_or_refuses(body: bytes) -> None:
    """decode_request gives a Request or a ProtocolError with a known code, nothing else."""
    outcome = decode_outcome(body)
    if isinstance(outcome, ProtocolError):
        assert outcome.code in ("malformed", "bad_request")
        assert str(outcome)
    else:
        assert isinstance(outcome, typing.get_args(Request))


@FUZZ
@given(st.binary(max_size=200))
def test_fuzz_arbitrary_bytes(body: bytes) -> None:
    decodes_or_refuses(body)


@FUZZ
@given(MSGPACK_VALUES | REQUEST_LIKE)
def test_fuzz_arbitrary_msgpack_values(value: object) -> None:
    decodes_or_refuses(msgspec.msgpack.encode(value))


@FUZZ
@given(mutated_bodies())
@example(INVALID_UTF8_HELLO)
@example(INVALID_UTF8_OP)
def test_fuzz_mutated_valid_requests(body: bytes) -> None:
    decodes_or_refuses(body)


@st.composite
def streams(draw: st.DrawFn) -> bytes:
    """Frames of fuzz bodies, perhaps cut short and followed by stray bytes."""
    stream = b"".join(frame(b) for b in draw(st.lists(FUZZ_BODIES, min_size=1, max_size=3)))
    if draw(st.booleans()):
        stream = stream[: draw(st.integers(0, len(stream)))] + draw(st.binary(max_size=8))
    return stream


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams())
@example(frame(INVALID_UTF8_HELLO))
async def test_fuzz_a_stream_of_frames(stream: bytes) -> None:
    """Frames (some cut, some with a wrong length) read and decoded as the server does."""
    reader = reader_of(stream)
    while True:
        try:
            body = await read_one(reader, max_frame=256)
        except ProtocolError as exc:
            code = exc.code
            break
        if body is None:
            return
        decodes_or_refuses(body)
    assert code in ("malformed", "too_large")
