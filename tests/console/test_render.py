"""Replies as text for people (with and without colour) and as JSON for scripts."""

from __future__ import annotations

import json
import re

import msgspec
import pytest

from aria_actors.console.protocol import (
    BootOrderReply,
    Done,
    EvalReply,
    Failed,
    InfoReply,
    LogEvent,
    LogsReply,
    MetricsReply,
    NamesReply,
    PsReply,
    Reply,
    ServicesReply,
    StateReply,
    TreeReply,
    ValueReply,
    Welcome,
)
from aria_actors.console.render import RESET, STYLE, Renderer, as_json

from .helpers import EVENT, INFO, ROWS, SAMPLE_REPLIES, TREE

ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.mark.parametrize("colour", [False, True], ids=["plain", "colour"])
@pytest.mark.parametrize("reply", SAMPLE_REPLIES, ids=lambda r: type(r).__name__)
def test_every_reply_renders(reply: Reply, colour: bool) -> None:
    text = Renderer(colour=colour).render(reply)
    assert isinstance(text, str)
    assert not text.endswith("\n")
    if not colour:
        assert "\x1b[" not in text
    else:
        assert ANSI.sub("", text) == Renderer(colour=False).render(reply)


@pytest.mark.parametrize("reply", SAMPLE_REPLIES, ids=lambda r: type(r).__name__)
def test_as_json_decodes_back(reply: Reply) -> None:
    text = as_json(reply)
    assert "\n" not in text
    document = json.loads(text)
    assert document["op"] == type(reply).__struct_config__.tag
    assert msgspec.json.decode(text, type=Reply) == reply


def render(reply: Reply) -> str:
    return Renderer().render(reply)


def test_failed_and_done() -> None:
    assert render(Failed("not_found", "no actor 'x'")) == "error (not_found): no actor 'x'"
    coloured = Renderer(colour=True).render(Failed("timeout", "late"))
    assert coloured == f"{STYLE['error']}error (timeout): late{RESET}"
    assert render(Done()) == "ok"
    assert render(Done("sent")) == "sent"


def test_welcome() -> None:
    text = render(Welcome(node="aria", version=1, pid=42, eval_enabled=True))
    assert text == "attached to node aria (pid 42, protocol 1)"


def test_tree_draws_branches_kinds_and_restarts() -> None:
    assert render(TreeReply(roots=TREE)).splitlines() == [
        "storage [service] <actor aria.2 storage> running",
        "├─ counter [worker] <actor aria.17 counter> running restarts=2",
        "└─ pool [supervisor] <actor aria.4 pool> exiting",
        "   └─ w1 [worker] - stopped restarts=1",
        "<actor aria.30 Counter> [worker] <actor aria.30 Counter> running",
    ]
    assert render(TreeReply(roots=[])) == "(no actors)"
    coloured = Renderer(colour=True).render(TreeReply(roots=TREE))
    assert f"{STYLE['running']}running{RESET}" in coloured
    assert f"{STYLE['stopped']}stopped{RESET}" in coloured
    assert f"{STYLE['exiting']}exiting{RESET}" in coloured


def test_ps_is_a_table_and_says_when_rows_were_left_out() -> None:
    lines = render(PsReply(rows=ROWS, total=5)).splitlines()
    assert lines[0].split() == ["ID", "ACTOR", "SERVICE", "TASK", "MAILBOX", "HANDLED", "RESTARTS"]
    assert lines[1].split() == ["17", "counter", "storage", "idle", "3", "12", "2"]
    assert lines[2].split() == [
        "30",
        "<actor",
        "aria.30",
        "Counter>",
        "-",
        "running",
        "0",
        "0",
        "0",
    ]
    assert lines[3] == "(2 of 5; ps --all)"
    assert len(render(PsReply(rows=ROWS, total=2)).splitlines()) == 3
    assert lines[1].index("storage") == lines[0].index("SERVICE")  # aligned columns


def test_info_shows_every_fact() -> None:
    text = render(InfoReply(info=INFO))
    for fact in [
        "actor         <actor aria.17 counter>",
        "class         tests.runtime.actors.Counter",
        "service       storage",
        "mailbox       3/64 queued, 1 senders waiting",
        "handled       12",
        "parent        <actor aria.2 storage>",
        "child id      counter",
        "restarts      2",
        "trap exits    True",
        "links         <actor aria.2 storage>",
        "monitors      <actor aria.9 x>",
        "monitored by  <actor aria.10 y>",
        "traced        True",
        "exit reason   ",
    ]:
        assert fact in text, fact
    quiet = msgspec.structs.replace(INFO, links=[], parent=None, exit_reason=None)
    text = render(InfoReply(info=quiet))
    assert "links         -" in text
    assert "parent        -" in text
    assert "exit reason" not in text


def test_state_lines_up_its_fields() -> None:
    text = render(StateReply(actor="<actor a.1 x>", fields={"a": "1", "longer": "'two'"}))
    assert text.splitlines() == ["<actor a.1 x>", "  a       1", "  longer  'two'"]
    assert render(StateReply(actor="<actor a.1 x>", fields={})) == "<actor a.1 x>"


def test_value_services_boot_order_names_metrics() -> None:
    assert render(ValueReply('{"a":1}')) == '{"a":1}'
    services = render(next(r for r in SAMPLE_REPLIES if isinstance(r, ServicesReply)))
    header, store, web = services.splitlines()
    assert header.split() == ["SERVICE", "RESTART", "STATUS", "SUPERVISOR", "REQUIRES"]
    assert store.split()[-1] == "-"
    assert web.endswith("storage, cache")
    assert "stopped" in web
    assert render(BootOrderReply(order=["a", "b"])) == " 1. a\n 2. b"
    assert render(BootOrderReply(order=[])) == "(no services booted)"
    assert render(NamesReply(names=["a", "b"])) == "a\nb"
    assert render(MetricsReply(text="m 1\n\n")) == "m 1"


def test_log_events() -> None:
    line = render(LogsReply(events=[EVENT]))
    assert line.startswith("2024-05-01T12:00:00Z info    service_started ")
    assert "service=storage" in line
    assert 'supervisor="<actor aria.2 storage>"' in line  # quoted: it has spaces
    assert "count=3" in line
    assert "flags=[1, 'a', None, True]" in line
    assert render(LogsReply(events=[])) == "(no matching events)"
    assert render(LogEvent(event={"event": "bare"})).strip() == "bare"
    dropped = render(LogEvent(event={"event": "x", "level": "error"}, dropped=3))
    assert dropped.splitlines()[0] == "... 3 event(s) dropped ..."
    coloured = Renderer(colour=True).render(LogEvent(event={"event": "x", "level": "error"}))
    assert f"{STYLE['error']}error  {RESET}" in coloured


def test_eval_output_value_and_error() -> None:
    assert render(EvalReply(output="a\nb\n", value="3")) == "a\nb\n3"
    assert render(EvalReply(output="", value="")) == ""
    assert render(EvalReply(output="", value="", error="Traceback\nBoom\n")) == "Traceback\nBoom"
    coloured = Renderer(colour=True).render(EvalReply(output="x\n", value="", error="E\n"))
    assert coloured == f"x\n{STYLE['error']}E{RESET}"
