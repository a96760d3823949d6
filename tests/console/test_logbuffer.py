"""LogBuffer: the recent events kept for ``logs``, and followers for ``logs --follow``."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.testing import LogCapture

from aria_actors.console.logbuffer import FOLLOW_QUEUE, LogBuffer, LogFilter, plain

from .helpers import DEADLINE


def log(buffer: LogBuffer, event: str, level: str = "info", **fields: Any) -> dict[str, Any]:
    return dict(buffer(None, level, {"event": event, **fields}))


def names(events: list[dict[str, Any]]) -> list[str]:
    return [e["event"] for e in events]


def test_it_keeps_the_last_n_events() -> None:
    buffer = LogBuffer(3)
    for index in range(5):
        log(buffer, f"e{index}")
    assert names(buffer.recent(0, LogFilter())) == ["e2", "e3", "e4"]
    assert names(buffer.recent(2, LogFilter())) == ["e3", "e4"]
    assert names(buffer.recent(10, LogFilter())) == ["e2", "e3", "e4"]


def test_it_passes_the_event_on_unchanged() -> None:
    buffer = LogBuffer(3)
    event = {"event": "x", "path": Path("/p")}
    assert buffer(None, "info", event) is event
    assert event == {"event": "x", "path": Path("/p")}
    (kept,) = buffer.recent(0, LogFilter())
    assert kept == {"event": "x", "path": "/p", "level": "info"}


def test_the_level_is_the_method_unless_the_event_has_one() -> None:
    buffer = LogBuffer(3)
    log(buffer, "a", "warning")
    buffer(None, "info", {"event": "b", "level": "error"})
    assert [e["level"] for e in buffer.recent(0, LogFilter())] == ["warning", "error"]


class Thing:
    def __str__(self) -> str:
        return "a thing"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (True, True),
        (3, 3),
        (2.5, 2.5),
        ("text", "text"),
        ([1, "a", None, False, 1.5], [1, "a", None, False, 1.5]),
        ((1, 2), [1, 2]),
        ([1, [2]], [1, "[2]"]),
        ({"a": 1}, "{'a': 1}"),
        (Path("/x/y"), "/x/y"),
        (Thing(), "a thing"),
        (b"raw", "b'raw'"),
        ({1, 2}, "{1, 2}"),
    ],
    ids=repr,
)
def test_plain_keeps_json_scalars_and_turns_the_rest_into_text(
    value: object, expected: object
) -> None:
    assert plain(value) == expected


def test_filters_by_service_actor_and_level() -> None:
    buffer = LogBuffer(10)
    log(buffer, "a", "debug", service="web", actor="<actor n.1 front>")
    log(buffer, "b", "info", service="web", actor="<actor n.2 back>")
    log(buffer, "c", "warning", service="db")
    log(buffer, "d", "error", actor="<actor n.3 front-2>")
    log(buffer, "e", "critical")
    log(buffer, "f", "exception")  # not a level name: only an unfiltered view shows it

    def recent(**wanted: str) -> list[str]:
        return names(buffer.recent(0, LogFilter(**wanted)))

    assert recent() == ["a", "b", "c", "d", "e", "f"]
    assert recent(service="web") == ["a", "b"]
    assert recent(actor="front") == ["a", "d"]
    assert recent(actor="n.2") == ["b"]
    assert recent(level="info") == ["b", "c", "d", "e"]
    assert recent(level="WARNING") == ["c", "d", "e"]
    assert recent(level="critical") == ["e"]
    assert recent(level="unknown") == ["a", "b", "c", "d", "e", "f"]
    assert recent(service="web", level="info", actor="back") == ["b"]
    assert recent(service="none") == []


async def test_followers_get_new_matching_events() -> None:
    buffer = LogBuffer(10)
    log(buffer, "old")
    follower = buffer.follow(LogFilter(service="web"))
    log(buffer, "skipped", service="db")
    log(buffer, "first", service="web")
    log(buffer, "second", service="web", n=2)
    async with asyncio.timeout(DEADLINE):
        first, dropped = await follower.next()
        second, _ = await follower.next()
    assert (first["event"], dropped) == ("first", 0)
    assert second == {"event": "second", "service": "web", "n": 2, "level": "info"}
    buffer.unfollow(follower)
    log(buffer, "after", service="web")
    assert follower.queue.empty()
    buffer.unfollow(follower)  # twice: no harm


async def test_a_full_follower_counts_what_it_drops() -> None:
    buffer = LogBuffer(10)
    follower = buffer.follow(LogFilter())
    for index in range(FOLLOW_QUEUE + 25):
        log(buffer, f"e{index}")
    assert follower.queue.qsize() == FOLLOW_QUEUE
    assert follower.dropped == 25
    async with asyncio.timeout(DEADLINE):
        event, dropped = await follower.next()
        assert (event["event"], dropped) == ("e0", 25)
        _, dropped = await follower.next()
    assert dropped == 0
    assert follower.dropped == 0
    buffer.unfollow(follower)


async def test_events_from_another_thread_reach_a_follower_on_the_loop() -> None:
    buffer = LogBuffer(10)
    follower = buffer.follow(LogFilter())
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for index in range(3):
                log(buffer, f"thread {index}")
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    received = []
    async with asyncio.timeout(DEADLINE):
        for _ in range(3):
            event, _ = await follower.next()
            received.append(event["event"])
    await asyncio.to_thread(thread.join, DEADLINE)
    assert errors == []
    assert received == ["thread 0", "thread 1", "thread 2"]
    assert names(buffer.recent(0, LogFilter())) == received


def test_a_follower_whose_loop_closed_is_skipped() -> None:
    buffer = LogBuffer(10)
    other = asyncio.new_event_loop()
    try:
        other.run_until_complete(asyncio.sleep(0))

        async def follow() -> None:
            buffer.follow(LogFilter())

        other.run_until_complete(follow())
    finally:
        other.close()
    log(buffer, "after the loop closed")  # must not raise
    assert names(buffer.recent(0, LogFilter())) == ["after the loop closed"]


def test_resize_keeps_the_newest() -> None:
    buffer = LogBuffer(5)
    for index in range(5):
        log(buffer, f"e{index}")
    buffer.resize(2)
    assert names(buffer.recent(0, LogFilter())) == ["e3", "e4"]
    log(buffer, "e5")
    assert names(buffer.recent(0, LogFilter())) == ["e4", "e5"]
    buffer.resize(4)
    log(buffer, "e6")
    log(buffer, "e7")
    assert names(buffer.recent(0, LogFilter())) == ["e4", "e5", "e6", "e7"]


def test_it_works_in_a_structlog_chain() -> None:
    buffer = LogBuffer(10)
    capture = LogCapture()
    old = structlog.get_config()
    structlog.configure(
        processors=[structlog.processors.add_log_level, buffer, capture],
        cache_logger_on_first_use=False,
    )
    try:
        structlog.get_logger("t").warning("hello", n=1, where=Path("/p"))
    finally:
        structlog.configure(**old)
    assert buffer.recent(0, LogFilter()) == [
        {"n": 1, "where": "/p", "event": "hello", "level": "warning"}
    ]
    assert capture.entries[0]["where"] == Path("/p")  # later processors see the real value
