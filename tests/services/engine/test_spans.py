"""Spans: recorder, tree invariants, sinks (bounded, non-blocking), planner tracer."""

from __future__ import annotations

import asyncio
import itertools
import threading
from pathlib import Path

import msgspec
import pytest

from aria_actors.services.engine import Planner
from aria_actors.services.engine.acting import act
from aria_actors.services.engine.spans import (
    JsonLinesSpanSink,
    MemorySpanSink,
    PlannerSpanTracer,
    Span,
    SpanRecorder,
    check_tree,
    outcome_of,
    predicted_effects,
    read_spans,
    record_plan,
)

from .acting_domain import World, edge, make_domain, make_state


def ticking() -> itertools.count[float]:
    return itertools.count(0.0, 1.0)


def recorder(sink: MemorySpanSink | None = None, trace: str = "t") -> SpanRecorder:
    clock = ticking()
    return SpanRecorder(trace, sink, clock=lambda: next(clock))


def span(id: int, parent: int | None, start: float = 0.0, end: float = 1.0) -> Span:
    return Span(
        id=id, parent=parent, trace="t", name=f"s{id}", kind="task",
        start=start, end=end, outcome="ok",
    )  # fmt: skip


# -- recorder -----------------------------------------------------------------------------------


def test_span_context_sets_outcome_from_what_escapes() -> None:
    rec = recorder()
    root = rec.start("root", "acting")
    with rec.span("fine", "task", root):
        pass
    for error, outcome in (
        (ValueError("bad"), "failed"),
        (TimeoutError(), "timeout"),
        (asyncio.CancelledError(), "cancelled"),
    ):
        with pytest.raises(type(error)), rec.span("x", "command", root):
            raise error
        assert rec.spans[-1].outcome == outcome
    root.end()
    assert [s.outcome for s in rec.spans] == ["ok", "failed", "timeout", "cancelled", "ok"]
    assert rec.spans[1].attributes["error"] == "ValueError: bad"
    assert not check_tree(rec.spans)


def test_end_is_idempotent_and_attributes_are_scalars() -> None:
    sink = MemorySpanSink()
    rec = recorder(sink)
    s = rec.start("a", "plan", None, items=[1, 2], n=3)
    first = s.end("failed", why=ValueError("x"))
    assert s.end("ok") is first
    assert len(sink.spans()) == 1
    assert first.attributes == {"items": "[1, 2]", "n": 3, "why": "ValueError('x')"}


def test_clock_going_backwards_is_clamped() -> None:
    times = iter([10.0, 5.0])
    rec = SpanRecorder("t", clock=lambda: next(times))
    done = rec.start("a", "task").end()
    assert done.start == done.end == 10.0


def test_recorder_keeps_newest_and_counts_evicted() -> None:
    rec = SpanRecorder("t", keep=3)
    for i in range(5):
        rec.start(f"s{i}", "task").end()
    assert [s.name for s in rec.spans] == ["s2", "s3", "s4"]
    assert rec.dropped == 2
    with pytest.raises(ValueError, match="keep"):
        SpanRecorder("t", keep=0)


def test_outcome_of() -> None:
    assert outcome_of(None) == "ok"
    assert outcome_of(asyncio.CancelledError()) == "cancelled"
    assert outcome_of(TimeoutError()) == "timeout"
    assert outcome_of(KeyError()) == "failed"


def test_check_tree_finds_every_violation() -> None:
    assert check_tree([span(1, None, 0, 10), span(2, 1, 1, 2)]) == []
    problems = check_tree(
        [span(1, None, 0, 10), span(2, 7), span(3, 1, 5, 11), span(4, None), span(1, None)]
    )
    text = "\n".join(problems)
    assert "parent 7 is missing" in text
    assert "not inside its parent" in text
    assert "duplicate span id 1" in text
    assert "roots" in text
    assert "start 2.0 > end 1.0" in check_tree([span(1, None, 2.0, 1.0)])[0]


def test_span_round_trips_as_json_and_msgpack() -> None:
    s = Span(
        id=3, parent=1, trace="t", name="c_move", kind="command", start=1.5, end=2.5,
        outcome="timeout", attributes={"step": 2, "args": "('a',)", "ok": False, "x": None},
    )  # fmt: skip
    assert msgspec.json.decode(msgspec.json.encode(s), type=Span) == s
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(s), type=Span) == s
    assert b'"type":"Span"' in msgspec.json.encode(s)


# -- spans of planning and acting -------------------------------------------------------------


def test_record_plan_derives_action_spans_with_predicted_effects() -> None:
    domain = make_domain()
    state = make_state()
    plan = Planner(domain).find_plan(state, [("deliver", "robot", "parcel", "c")])
    rec = recorder()
    root = rec.start("plan", "plan")
    spans = record_plan(rec, root, plan.actions, state, domain.actions)
    root.end()
    assert [s.name for s in spans] == ["move", "pickup", "move", "drop"]
    assert [s.attributes["step"] for s in spans] == [0, 1, 2, 3]
    assert spans[0].attributes["predicted"] == "loc['robot']='b'"
    assert spans[1].attributes["predicted"] == "at['parcel']='robot'; holding['robot']='parcel'"
    assert all(s.outcome == "ok" and s.parent == root.id for s in spans)
    assert not check_tree(rec.spans)
    # From a state where the plan no longer replays, the replay stops at the broken action.
    state.open[edge("b", "c")] = False
    again = record_plan(rec, root.id, plan.actions, state, domain.actions, at=99.0)
    assert [s.outcome for s in again] == ["ok", "ok", "failed", "ok"]
    assert again[3].attributes["predicted"] == ""


def test_predicted_effects_lists_changes() -> None:
    before = make_state()
    after = before.copy()
    after.loc["robot"] = "z"
    del after.at["parcel"]
    after.flag = True
    assert predicted_effects(before, after) == "at['parcel'] unset; flag=True; loc['robot']='z'"


async def test_acting_spans_form_a_tree_with_the_right_outcomes() -> None:
    domain = make_domain()
    world = World(domain, make_state())
    world.fail("c_move", ("robot", "b", "c"), 1, ("open", edge("b", "c"), False))
    sink = MemorySpanSink()
    rec = SpanRecorder("run-1", sink)
    result = await act(
        domain, Planner(domain), make_state(), [("deliver", "robot", "parcel", "c")], world,
        spans=rec,
    )  # fmt: skip
    spans = sink.spans("run-1")
    assert spans == rec.spans
    assert not check_tree(spans)
    by_id = {s.id: s for s in spans}
    root = next(s for s in spans if s.parent is None)
    assert (root.kind, root.outcome) == ("acting", "ok")
    plans = [s for s in spans if s.kind in ("plan", "replan")]
    assert [(s.kind, s.outcome) for s in plans] == [("plan", "failed"), ("replan", "ok")]
    assert all(s.parent == root.id for s in plans)
    commands = [s for s in spans if s.kind == "command"]
    assert all(by_id[s.parent].kind in ("plan", "replan") for s in commands if s.parent)
    assert [s.outcome for s in commands].count("failed") == 1
    assert len([s for s in commands if s.outcome == "ok"]) == len(result.executed)
    failed = next(s for s in commands if s.outcome == "failed")
    assert failed.name == "c_move"
    assert failed.attributes["reason"] == "jammed"
    actions = [s for s in spans if s.kind == "action"]
    # The search was traced here: its action spans are the plan's, no predicted copies.
    assert not [s for s in actions if "predicted" in s.attributes]
    assert actions
    assert {by_id[s.parent].kind for s in actions if s.parent} <= {"method", "plan", "replan"}
    assert result.dropped == 0
    tasks = [s for s in spans if s.kind == "task"]
    for plan in plans:  # the planner's search, under each plan span
        assert any(t.parent == plan.id for t in tasks)


def test_planner_tracer_builds_the_search_tree() -> None:
    rec = recorder()
    root = rec.start("plan", "plan")
    tracer = PlannerSpanTracer(rec, root)
    task = tracer.on_item(("deliver", "robot", "parcel", "c"), "task", None)
    dead = tracer.on_method(task, "m_fly", None)
    first = tracer.on_method(task, "m_walk", [("move", "robot", "a", "b")])
    tracer.on_action(("move", "robot", "a", "b"), first, applied=True)
    sub = tracer.on_item(("goto", "robot", "c"), "task", first)
    tracer.on_action(("move", "robot", "b", "c"), sub, applied=False)
    tracer.on_backtrack(first)
    second = tracer.on_method(task, "m_detour", [("move", "robot", "a", "d")])
    tracer.on_action(("move", "robot", "a", "d"), second, applied=True)
    tracer.on_end(found=True)
    root.end()
    spans = {s.id: s for s in rec.spans}
    assert not check_tree(rec.spans)
    assert spans[task].kind == "task"
    assert spans[task].parent == root.id
    assert spans[dead].outcome == "failed"
    assert spans[first].outcome == "failed"  # backtracked over, with everything under it
    assert spans[sub].outcome == "failed"
    assert spans[second].outcome == "ok"
    assert spans[task].outcome == "ok"
    outcomes = [s.outcome for s in rec.spans if s.kind == "action"]
    assert sorted(outcomes) == ["failed", "failed", "ok"]


def test_planner_tracer_without_a_plan_fails_everything() -> None:
    rec = recorder()
    tracer = PlannerSpanTracer(rec)
    item = tracer.on_item(("goto", "robot", "x"), "task", None)
    tracer.on_method(item, "m_goto", [])
    tracer.on_end(found=False)
    assert {s.outcome for s in rec.spans} == {"failed"}
    assert not check_tree(rec.spans)


# -- sinks --------------------------------------------------------------------------------------


def test_memory_sink_is_a_bounded_ring() -> None:
    sink = MemorySpanSink(capacity=5)
    a, b = recorder(sink, "a"), recorder(sink, "b")
    for i in range(12):
        (a if i % 2 else b).start(f"s{i}", "task").end()
    assert [s.name for s in sink.spans()] == [f"s{i}" for i in range(7, 12)]
    assert [s.name for s in sink.spans("a")] == ["s7", "s9", "s11"]
    stats = sink.statistics()
    assert (stats.emitted, stats.buffered, stats.dropped, stats.capacity) == (12, 5, 7, 5)
    sink.clear()
    assert sink.spans() == []
    with pytest.raises(ValueError, match="capacity"):
        MemorySpanSink(0)


async def test_jsonl_sink_writes_lines_that_read_back(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    async with JsonLinesSpanSink(path) as sink:
        rec = SpanRecorder("t", sink)
        root = rec.start("root", "acting")
        for i in range(10):
            rec.start(f"c{i}", "command", root, step=i).end()
            await asyncio.sleep(0)
        root.end()
    assert read_spans(path) == rec.spans
    assert sink.written == 11
    assert sink.statistics().dropped == 0


async def test_jsonl_sink_is_bounded_and_never_waits(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    sink = JsonLinesSpanSink(path, capacity=3)
    rec = SpanRecorder("t", sink)
    for i in range(5):  # not started yet: nothing drains the buffer
        rec.start(f"s{i}", "task").end()
    stats = sink.statistics()
    assert (stats.emitted, stats.buffered, stats.dropped) == (5, 3, 2)
    await sink.start()
    await sink.aclose()
    assert [s.name for s in read_spans(path)] == ["s0", "s1", "s2"]
    rec.start("late", "task").end()  # after close: dropped, not an error
    assert sink.statistics().dropped == 3


async def test_jsonl_sink_takes_spans_from_other_threads(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    async with JsonLinesSpanSink(path) as sink:
        rec = SpanRecorder("thread", sink)
        done = threading.Event()

        def work() -> None:
            for i in range(20):
                rec.start(f"s{i}", "task").end()
            done.set()

        thread = threading.Thread(target=work)
        thread.start()
        await asyncio.to_thread(done.wait, 10)
        thread.join()
    assert [s.name for s in read_spans(path)] == [f"s{i}" for i in range(20)]


async def test_jsonl_sink_write_error_surfaces_on_close(tmp_path: Path) -> None:
    sink = JsonLinesSpanSink(tmp_path / "missing-dir" / "spans.jsonl")
    await sink.start()
    SpanRecorder("t", sink).start("s", "task").end()
    with pytest.raises(OSError, match="missing-dir"):
        await sink.aclose()


async def test_unstarted_jsonl_sink_flushes_on_close(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    sink = JsonLinesSpanSink(path)
    SpanRecorder("t", sink).start("s", "task").end()
    await sink.aclose()
    assert [s.name for s in read_spans(path)] == ["s"]
    with pytest.raises(ValueError, match="capacity"):
        JsonLinesSpanSink(path, capacity=0)
