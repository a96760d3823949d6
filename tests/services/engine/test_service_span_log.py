"""aria_engine's span export (span_log.py): every character's spans as JSON lines."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import msgspec

from aria_actors.services.engine.client import Engine
from aria_actors.services.engine.span_log import GetSpanLog, SpanLogStatus
from aria_actors.services.engine.spans import JsonLinesSpanSink, Span, check_tree, read_spans

from .test_service import eventually
from .test_service_persistence import START, engine_node, steps


async def span_log_status(node: object) -> SpanLogStatus:
    ref = node.whereis("aria_engine.span_log")  # type: ignore[attr-defined]
    assert ref is not None
    status: SpanLogStatus = await ref.call(GetSpanLog())
    return status


async def test_every_span_of_a_run_reaches_the_file(tmp_path: Path) -> None:
    state = tmp_path / "state"
    async with engine_node(state, None) as node:
        engine = Engine(node)
        await engine.start_character("hero", "relay", START)
        done = await engine.achieve("hero", [("steps", "hero", 3)], spans=True)
        status = await span_log_status(node)
        assert status.path == str(state / "spans" / "engine.jsonl")
        assert status.error is None

        async def flushed() -> bool:
            return (await span_log_status(node)).written >= len(done.spans)

        await eventually(flushed)
    written = read_spans(state / "spans" / "engine.jsonl")
    run = [s for s in written if s.trace == "character.hero.1"]
    assert sorted(s.id for s in run) == sorted(s.id for s in done.spans)
    assert not check_tree(run)
    assert [s.name for s in run if s.kind == "command"] == ["c_step"] * 3
    # the search ran in the planner pool; its spans were logged there and replayed here
    assert {s.kind for s in run} == {"acting", "plan", "task", "method", "action", "command"}
    planned = sorted(
        (s for s in run if s.kind == "action" and s.outcome == "ok"), key=lambda s: s.id
    )
    assert [(s.name, s.attributes["args"]) for s in planned] == [
        ("step", repr(("hero", n))) for n in (1, 2, 3)
    ]


async def test_the_export_can_be_off_or_broken_without_stopping_acting(tmp_path: Path) -> None:
    async with engine_node(tmp_path / "off", None, span_log="") as node:
        assert await span_log_status(node) == SpanLogStatus(path=None)
        await Engine(node).start_character("hero", "relay", START)
        assert (await Engine(node).achieve("hero", steps(1))).phase == "done"
    assert not (tmp_path / "off" / "spans").exists()
    blocker = tmp_path / "blocked"
    blocker.mkdir()
    (blocker / "spans").write_text("a file where the directory should be")
    async with engine_node(blocker, None) as node:
        status = await span_log_status(node)
        assert status.path is None
        assert status.error is not None
        assert "cannot create" in status.error
        await Engine(node).start_character("hero", "relay", START)
        assert (await Engine(node).achieve("hero", steps(1))).phase == "done"


def _span(n: int) -> Span:
    return Span(
        trace="t", id=n, parent=None, name=f"s{n}", kind="event", start=0.0, end=0.0, outcome="ok"
    )


async def test_the_file_is_rotated_past_its_size(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    line = len(msgspec.json.encode(_span(100))) + 1  # every id here has 3 digits
    sink = JsonLinesSpanSink(path, max_bytes=line * 10 + 5)
    await sink.start()
    numbers = itertools.count(100)
    for _ in range(15):  # one at a time: each write is checked against the size
        sink.emit(_span(next(numbers)))
        await asyncio.sleep(0)
        await asyncio.sleep(0.01)
    await sink.aclose()
    rotated = path.with_name("spans.jsonl.1")
    old, new = read_spans(rotated), read_spans(path)
    assert [s.id for s in old + new] == list(range(100, 115))
    assert rotated.stat().st_size <= line * 10 + 5
    assert path.stat().st_size <= line * 10 + 5
