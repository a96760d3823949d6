"""``aria-console`` and ``aria-node`` together, as an operator uses them.

Every test runs a REAL ``aria-node`` child process (see :mod:`tests.nodeproc`) in
temporary state, runtime and supervisors directories, and talks to it through
``aria-console`` child processes, the interactive console run in-process, raw
sockets, signals, a systemd-like notify socket and ``ARIA_<SECTION>__<KEY>``
variables. Tests that only look at a node or act on their own actors share one
node (``shared``); the others start their own.

Some tests here fail on purpose: each shows a bug in ``aria_actors`` and says in
its docstring what the bug is (``BUG:``).
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import signal
import socket
import stat
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from aria_actors.console.protocol import (
    PROTOCOL_VERSION,
    Failed,
    Hello,
    Reply,
    Tree,
    TreeReply,
    Welcome,
    decode_reply,
    encode_frame,
)
from aria_actors.console.repl import ConsoleCompleter, interactive
from tests.nodeproc import (
    CONSOLE,
    ROOT,
    TIMEOUT,
    NodeDirs,
    NodeProcess,
    NotifyListener,
    attach,
    child_environment,
    counter_service,
    layered_services,
    poll,
    run_console,
    short_directory,
    welcome_node,
)

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="Unix sockets and signals")

COUNTER = "tests.runtime.actors:Counter"


# ======================================================================================
# Fixtures and helpers
# ======================================================================================


@pytest.fixture
def dirs(tmp_path: Path) -> Iterator[NodeDirs]:
    """Directories for a node of this test (the runtime directory under a short path)."""
    with short_directory() as short:
        yield NodeDirs(tmp_path, short)


def shared_services(dirs: NodeDirs, journal: Path) -> None:
    """``svc_base`` ← ``svc_mid`` (workers, a nested and a dynamic supervisor) ← ``svc_top``."""
    dirs.service(
        "base.toml",
        f"""
        [service]
        name = "svc_base"

        [[children]]
        id = "base"
        actor = "tests.nodeproc:Journal"
        name = "base"
        [children.args]
        path = "{journal}"
        label = "svc_base"
        """,
    )
    counters = "".join(
        f"""
        [[children]]
        id = "{name}"
        actor = "{COUNTER}"
        name = "{name}"
        [children.args]
        start = 5
        """
        for name in (
            "counter",
            "icounter",
            "sink",
            "crashy",
            "fragile",
            "restartee",
            "stoppee",
            "busy",
        )
    )
    dirs.service(
        "mid.toml",
        f"""
        [service]
        name = "svc_mid"
        requires = ["svc_base"]

        [supervisor]
        strategy = "one_for_one"
        max_restarts = 20
        max_seconds = 5
        {counters}
        [[children]]
        id = "vault"
        actor = "tests.nodeproc:Vault"
        name = "vault"
        [children.args]
        user = "ann"
        password = "hunter2"

        [[children]]
        id = "relay"
        actor = "tests.nodeproc:Relay"
        name = "relay"
        [children.args]
        target = "sink"

        [[children]]
        id = "inner"
        [children.supervisor]
        strategy = "one_for_all"
        [[children.supervisor.children]]
        id = "leaf"
        actor = "{COUNTER}"
        name = "leaf"

        [[children]]
        id = "pool"
        [children.dynamic_supervisor]
        max_children = 4
        """,
    )
    dirs.service(
        "top.toml",
        f"""
        [service]
        name = "svc_top"
        requires = ["svc_mid"]

        [[children]]
        id = "top"
        actor = "tests.nodeproc:Journal"
        [children.args]
        path = "{journal}"
        label = "svc_top"
        """,
    )


@pytest.fixture(scope="module")
def shared_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    base = tmp_path_factory.mktemp("shared")
    with short_directory() as short:
        dirs = NodeDirs(base, short)
        shared_services(dirs, base / "journal.txt")
        with NodeProcess(dirs) as node:
            node.wait_ready()
            yield node


@pytest.fixture
def shared(shared_node: NodeProcess) -> NodeProcess:
    """The shared node, checked to be still running."""
    assert shared_node.alive(), shared_node.output()
    return shared_node


def walk(nodes: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for node in nodes:
        yield node
        yield from walk(node["children"])


def tree_entry(roots: list[dict[str, Any]], label: str) -> dict[str, Any]:
    matches = [node for node in walk(roots) if node["label"] == label]
    assert len(matches) == 1, (label, roots)
    return matches[0]


def info_of(node: NodeProcess, name: str) -> dict[str, Any]:
    (reply,) = node.replies(f"info {name}")
    assert reply["op"] == "info", reply
    info: dict[str, Any] = reply["info"]
    return info


def write_config(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def assert_no_traceback(node: NodeProcess) -> None:
    assert "Traceback" not in "".join(node.stderr), node.output()


# ======================================================================================
# 1. aria-console -c against a running node
# ======================================================================================


def test_tree_shows_services_supervisors_workers_and_restarts_after_a_crash(
    shared: NodeProcess,
) -> None:
    result = shared.console('cast crashy {"type": "Crash", "text": "on purpose"}')
    assert result.status == 0, result
    shared.wait_for("crash_report", service="svc_mid", message="Crash(text='on purpose')")

    def restarted() -> dict[str, Any] | None:
        (reply,) = shared.replies("tree")
        entry = tree_entry(reply["roots"], "crashy")
        return reply if entry["status"] == "running" and entry["restarts"] == 1 else None

    roots = poll(restarted)["roots"]
    assert [root["label"] for root in roots] == ["svc_base", "svc_mid", "svc_top"]
    assert {root["kind"] for root in roots} == {"service"}
    assert {root["status"] for root in roots} == {"running"}
    assert tree_entry(roots, "inner")["kind"] == "supervisor"
    assert tree_entry(roots, "pool")["kind"] == "supervisor"
    assert tree_entry(roots, "pool")["children"] == []
    leaf = tree_entry(roots, "leaf")
    assert (leaf["kind"], leaf["status"], leaf["restarts"]) == ("worker", "running", 0)
    crashy = tree_entry(roots, "crashy")
    assert crashy["kind"] == "worker"
    assert re.fullmatch(r"<actor aria\.\d+ crashy>", crashy["actor"]), crashy

    text = shared.console("tree")
    assert text.status == 0, text
    lines = text.stdout.splitlines()
    assert lines[0].startswith("svc_base [service] <actor aria."), text
    assert lines[0].endswith(" running"), text
    assert any(
        re.search(r"crashy \[worker\] <actor aria\.\d+ crashy> running restarts=1$", line)
        for line in lines
    ), text
    assert any(re.search(r"inner \[supervisor\] .* running$", line) for line in lines), text
    assert any(re.search(r"└─ leaf \[worker\] .* running$", line) for line in lines), text
    assert any(line.startswith("svc_top [service]") for line in lines), text


def test_ps_lists_sorts_and_prints_json(shared: NodeProcess) -> None:
    for _ in range(3):
        assert shared.console(*['call busy {"type": "Inc"}'] * 5).status == 0

    text = shared.console("ps", "ps --limit 2")
    assert text.status == 0, text
    header = text.stdout.splitlines()[0].split()
    assert header == ["ID", "ACTOR", "SERVICE", "TASK", "MAILBOX", "HANDLED", "RESTARTS"]
    assert re.search(r"^\d+\s+busy\s+svc_mid\s+idle\s+0\s+15\s+\d+$", text.stdout, re.M), text
    assert re.search(r"\(2 of \d+; ps --all\)", text.stdout), text

    every, by_handled, limited, of_service = shared.replies(
        "ps --all", "ps --all --sort handled", "ps --limit 3 --sort id", "ps --service svc_top"
    )
    assert every["op"] == "ps"
    assert every["total"] == len(every["rows"]) > 15
    names = {row["name"] for row in every["rows"]}
    assert {"svc_base", "svc_mid", "svc_top", "counter", "vault", "relay", "leaf"} <= names
    handled = [row["handled"] for row in by_handled["rows"]]
    assert handled == sorted(handled, reverse=True)
    busy = next(row for row in by_handled["rows"] if row["name"] == "busy")
    assert busy["handled"] == 15
    assert busy["service"] == "svc_mid"
    assert re.fullmatch(r"<actor aria\.\d+ busy>", busy["actor"])
    assert len(limited["rows"]) == 3
    assert limited["total"] == every["total"]
    assert [row["id"] for row in limited["rows"]] == [1, 2, 3]  # by id: oldest first
    assert {row["service"] for row in of_service["rows"]} == {"svc_top"}
    assert of_service["total"] == 2  # the service's supervisor and its journal worker

    top = shared.console("top --count 2 --interval 0.05 --limit 3")
    assert top.status == 0, top
    assert top.stdout.count("ID  ACTOR") == 2, top


def test_info_by_name_and_by_id(shared: NodeProcess) -> None:
    text = shared.console("info counter")
    assert text.status == 0, text
    fields = dict(
        re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in text.stdout.splitlines()
    )
    assert fields["class"] == "tests.runtime.actors.Counter"
    assert fields["service"] == "svc_mid"
    assert fields["state"] == "running"
    assert fields["child id"] == "counter"
    assert re.fullmatch(r"0/1024 queued, 0 senders waiting", fields["mailbox"])
    assert re.fullmatch(r"<actor aria\.\d+ svc_mid>", fields["parent"])

    info = info_of(shared, "counter")
    assert info["name"] == "counter"
    assert info["mailbox"]["size"] == 1024
    by_id = info_of(shared, str(info["id"]))
    by_node_id = info_of(shared, f"aria.{info['id']}")
    by_repr = info_of(shared, f"'{info['actor']}'")
    assert by_id["actor"] == by_node_id["actor"] == by_repr["actor"] == info["actor"]


def test_state_redacts_secret_fields(shared: NodeProcess) -> None:
    text = shared.console("state vault")
    assert text.status == 0, text
    assert re.search(r"^\s+password\s+<redacted>$", text.stdout, re.M), text
    assert re.search(r"^\s+user\s+'ann'$", text.stdout, re.M), text
    assert "hunter2" not in text.stdout
    (reply,) = shared.replies("state vault")
    assert reply["fields"] == {"user": "'ann'", "password": "<redacted>"}
    assert re.fullmatch(r"<actor aria\.\d+ vault>", reply["actor"])


def test_call_returns_the_reply_and_cast_is_delivered(shared: NodeProcess) -> None:
    result = shared.console(
        'call counter {"type": "Inc", "n": 2}',
        'cast counter {"type": "Inc", "n": 10}',
        'call counter {"type": "Get"}',
        'call counter {"type": "Echo", "value": {"a": [1, 2]}}',
        'call vault {"type": "Whoami"}',
    )
    assert result.status == 0, result
    lines = result.stdout.splitlines()
    assert lines[0] == "7"
    assert re.fullmatch(r"sent to <actor aria\.\d+ counter>", lines[1])
    assert lines[2] == "17"
    assert json.loads(lines[3]) == {"a": [1, 2]}
    assert lines[4] == '"ann"'
    value, done = shared.replies(
        'call counter {"type": "Inc", "n": 0}', 'cast counter {"type": "Get"}'
    )
    assert value == {"op": "value", "value": "17"}
    assert done["op"] == "done"


def test_a_malformed_message_is_a_clear_error(shared: NodeProcess) -> None:
    truncated = shared.console('call counter {"type": "Inc", "n": 2')
    assert truncated.status == 1, truncated
    assert "error (failed)" in truncated.stdout
    assert "truncated" in truncated.stdout
    assert "type='Inc'" in truncated.stdout  # says what the actor accepts

    for message, hint in (
        ("not json at all", "malformed"),
        ('{"type": "Nope"}', "Invalid value 'Nope'"),
        ('{"type": "Inc", "n": "two"}', "Expected `int`"),
    ):
        result = shared.console(f"call counter {message}")
        assert result.status == 1, result
        assert hint in result.stdout, result

    missing = shared.console("call counter")
    assert missing.status == 1, missing
    assert "usage: call NAME JSON" in missing.stderr

    nobody = shared.console('call nobody {"type": "Get"}')
    assert nobody.status == 1, nobody
    assert "error (not_found): no actor 'nobody'" in nobody.stdout
    assert shared.console('call counter {"type": "Inc", "n": 0}').status == 0  # still fine


def test_a_malformed_actor_reference_is_not_found(shared: NodeProcess) -> None:
    """BUG: ``info '<actor >'`` fails with an internal ``IndexError`` instead of
    ``not_found`` (console/commands.py, ``Commands.resolve``: ``.split()[0]`` of an
    empty string)."""
    (reply,) = shared.console('info "<actor >"', json_output=True).json()
    assert reply["op"] == "failed"
    assert reply["code"] == "not_found", reply


def test_restart_gives_a_fresh_actor_with_a_new_id(shared: NodeProcess) -> None:
    assert shared.console('call restartee {"type": "Inc", "n": 3}').stdout.strip() == "8"
    before = info_of(shared, "restartee")
    result = shared.console("restart restartee")
    assert result.status == 0, result
    assert re.fullmatch(
        r"restarted 'restartee': now <actor aria\.\d+ restartee>\n", result.stdout
    ), result
    after = info_of(shared, "restartee")
    assert after["id"] != before["id"]
    assert after["actor"] in result.stdout
    assert shared.console('call restartee {"type": "Get"}').stdout.strip() == "5"  # fresh state
    assert shared.console("info " + str(before["id"])).status == 1  # the old one is gone


def test_stop_keeps_a_supervised_actor_stopped(shared: NodeProcess) -> None:
    result = shared.console("stop stoppee")
    assert result.status == 0, result
    assert "(it stays stopped)" in result.stdout
    for _ in range(2):
        (reply,) = shared.replies("tree")
        entry = tree_entry(reply["roots"], "stoppee")
        assert (entry["status"], entry["actor"]) == ("stopped", None)
        time.sleep(0.3)
    assert re.search(r"stoppee \[worker\] - stopped$", shared.console("tree").stdout, re.M)
    gone = shared.console('call stoppee {"type": "Get"}')
    assert gone.status == 1
    assert "not_found" in gone.stdout


def test_services_and_boot_order(shared: NodeProcess) -> None:
    text = shared.console("services", "boot-order")
    assert text.status == 0, text
    assert text.stdout.splitlines()[0].split() == [
        "SERVICE",
        "RESTART",
        "STATUS",
        "SUPERVISOR",
        "REQUIRES",
    ]
    assert re.search(
        r"^svc_mid\s+permanent\s+running\s+<actor aria\.\d+ svc_mid>\s+svc_base$", text.stdout, re.M
    )
    assert " 1. svc_base\n 2. svc_mid\n 3. svc_top\n" in text.stdout
    services, order = shared.replies("services", "boot-order")
    assert [(s["name"], s["requires"], s["status"]) for s in services["services"]] == [
        ("svc_base", [], "running"),
        ("svc_mid", ["svc_base"], "running"),
        ("svc_top", ["svc_mid"], "running"),
    ]
    assert order == {"op": "boot_order", "order": ["svc_base", "svc_mid", "svc_top"]}


def test_trace_logs_messages_in_and_out(shared: NodeProcess) -> None:
    result = shared.console("trace relay on", 'cast relay {"type": "Forward", "n": 3}')
    assert result.status == 0, result
    assert "tracing on for <actor aria." in result.stdout
    shared.wait_for("trace", direction="out", message="Inc(n=3)")

    (logs,) = shared.replies("logs --actor relay")
    traces = [event for event in logs["events"] if event["event"] == "trace"]
    incoming = [event for event in traces if event["direction"] == "in"]
    outgoing = [event for event in traces if event["direction"] == "out"]
    assert incoming[-1]["kind"] == "cast"
    assert incoming[-1]["message"] == "Forward(n=3)"
    assert incoming[-1]["service"] == "svc_mid"
    assert outgoing[-1]["kind"] == "cast"
    assert outgoing[-1]["message"] == "Inc(n=3)"
    assert re.fullmatch(r"<actor aria\.\d+ sink>", outgoing[-1]["to"])
    assert all(re.fullmatch(r"<actor aria\.\d+ relay>", event["actor"]) for event in traces)
    assert all(event["actor"].endswith(" relay>") for event in logs["events"])

    text = shared.console("logs --actor relay")
    assert re.search(r"\btrace\b.*direction=in", text.stdout), text
    assert re.search(r"\btrace\b.*direction=out", text.stdout), text

    # after 'trace off' a call (handled before it returns) logs no more trace events
    off = shared.console("trace relay off", 'call relay {"type": "Forward", "n": 4}')
    assert off.status == 0, off
    (after,) = shared.replies("logs --actor relay --limit 0")
    assert "Forward(n=4)" not in json.dumps(after["events"])


def test_logs_level_error_shows_the_crash_report(shared: NodeProcess) -> None:
    assert shared.console('cast fragile {"type": "Crash", "text": "fragile broke"}').status == 0

    def crash_reports() -> list[dict[str, Any]]:
        (reply,) = shared.replies("logs --level error --limit 0")
        assert {event["level"] for event in reply["events"]} <= {"error", "critical"}
        return [
            event
            for event in reply["events"]
            if event["event"] == "crash_report" and "fragile" in event["actor"]
        ]

    (report,) = poll(crash_reports)
    assert report["reason"] == "error: RuntimeError: fragile broke"
    assert report["actor_class"] == "tests.runtime.actors.Counter"
    assert report["service"] == "svc_mid"
    assert "RuntimeError: fragile broke" in report["traceback"]
    text = shared.console("logs --level error --actor fragile")
    assert "crash_report" in text.stdout
    assert "fragile broke" in text.stdout


def test_metrics(shared: NodeProcess) -> None:
    result = shared.console("metrics")
    assert result.status == 0, result
    match = re.search(r"^aria_actors (\d+)\.0$", result.stdout, re.M)
    assert match, result
    assert int(match[1]) > 15
    assert "# TYPE aria_actors gauge" in result.stdout
    assert "aria_messages_handled_total" in result.stdout
    (reply,) = shared.replies("metrics")
    assert "aria_actors " in reply["text"]


def test_eval_expression_statement_and_await(shared: NodeProcess) -> None:
    result = shared.console(
        "eval 6 * 7",
        "eval x = 5; print('x is', x)",
        "eval from tests.runtime.actors import Inc",
        "eval await whereis('counter').call(Inc(n=0))",
        "eval x + 1",
        "eval 1 / 0",
    )
    assert result.status == 0, result  # an error inside the code is a reply, not a failure
    lines = result.stdout.splitlines()
    assert lines[0] == "42"
    assert lines[1] == "x is 5"
    # an import prints nothing and has no value: no line at all
    assert re.fullmatch(r"\d+", lines[2]), lines  # the counter's value
    assert lines[3] == "6"  # the session keeps its namespace between commands
    assert "ZeroDivisionError" in result.stdout
    outputs = shared.replies("eval print('hello'); 3", "eval await asyncio.sleep(0, 'slept')")
    assert outputs[0] == {"op": "eval", "output": "hello\n", "value": "", "error": ""}
    assert outputs[1]["value"] == "'slept'"


def test_eval_is_disabled_by_config(dirs: NodeDirs, tmp_path: Path) -> None:
    config = write_config(tmp_path / "prod.toml", "[console]\neval = false\n")
    counter_service(dirs, "counter")
    with NodeProcess(dirs, config=config) as node:
        node.wait_ready()
        result = node.console("eval 1 + 1", json_output=True)
        assert result.status == 1, result
        (reply,) = result.json()
        assert reply["op"] == "failed"
        assert reply["code"] == "disabled"
        assert "console.eval = false" in reply["message"]
        assert node.console('call counter {"type": "Get"}').stdout.strip() == "0"


def test_eval_exit_does_not_stop_the_node(dirs: NodeDirs) -> None:
    """BUG: ``eval exit()`` (or ``raise SystemExit``) takes the whole node down.

    console/commands.py, ``Commands.eval``: ``except Exception`` lets ``SystemExit``
    (and ``KeyboardInterrupt``) out of the handler and out of the event loop, so
    ``runner.run`` ends and the process exits with the SystemExit code. Typing
    ``exit()`` in the console's ``py>`` mode is an easy slip. Fix: catch
    ``BaseException`` there except ``asyncio.CancelledError`` (report it as the
    code's error).
    """
    counter_service(dirs, "counter")
    with NodeProcess(dirs) as node:
        node.wait_ready()
        result = node.console("eval exit()", json_output=True)
        time.sleep(0.5)
        assert node.alive(), f"{result}\n{node.output()}"
        assert result.status == 0, result
        assert "SystemExit" in result.json()[0]["error"]
        assert node.console("tree").status == 0


def test_shutdown_stops_every_service_in_reverse_boot_order(dirs: NodeDirs, tmp_path: Path) -> None:
    journal = tmp_path / "journal.txt"
    layered_services(dirs, journal)
    with NodeProcess(dirs) as node:
        node.wait_ready()
        result = node.console("shutdown")
        assert result.status == 0, result
        assert result.stdout.strip() == "node aria is stopping"
        assert node.wait() == 0, node.output()
        assert node.wait_for("node_stopped")["exit_status"] == 0
        assert journal.read_text(encoding="utf-8").splitlines() == [
            "init svc_base",
            "init svc_mid",
            "init svc_top",
            "terminate svc_top",
            "terminate svc_mid",
            "terminate svc_base",
        ]
        stopped = [event["service"] for event in node.find("service_stopped")]
        assert stopped == ["svc_top", "svc_mid", "svc_base"]
        assert not dirs.socket.exists()
        assert not dirs.node_file.exists()
        assert_no_traceback(node)


# ======================================================================================
# 2. The interactive console
# ======================================================================================


class RecordingOutput(DummyOutput):
    """A prompt_toolkit output that keeps what is written (prompts, echo, results)."""

    def __init__(self) -> None:
        super().__init__()
        self.chunks: list[str] = []

    def write(self, data: str) -> None:
        self.chunks.append(data)

    def write_raw(self, data: str) -> None:
        self.chunks.append(data)

    def text(self) -> str:
        return "".join(self.chunks).replace("\r\n", "\n")


async def test_the_interactive_console(shared: NodeProcess) -> None:
    client = await attach(shared.dirs.state)
    output = RecordingOutput()
    try:
        with create_pipe_input() as keys:
            keys.send_text(
                "tree\r"
                'call icounter {"type": "Echo", "value": "hello there"}\r'
                "info nobody\r"
                "frobnicate\r"
                "eval\r"
                "6 * 7\r"
                "y = 4\r"
                "print(y + 1)\r"
                "exit\r"
                "boot-order\r"
                "quit\r"
            )
            async with asyncio.timeout(TIMEOUT):
                status = await interactive(
                    client, colour=False, input=keys, output=output, history=InMemoryHistory()
                )
    finally:
        await client.close()
    assert status == 0
    text = output.text()
    assert "attached to node aria (pid" in text
    assert re.search(r"crashy \[worker\] <actor aria\.\d+ crashy>", text), text
    assert '"hello there"' in text
    assert "error (not_found): no actor 'nobody'" in text
    assert "unknown command 'frobnicate'; try: help" in text
    assert "Python mode: lines run in the node" in text
    assert "aria py> " in text
    assert "\n42\n" in text
    assert "\n5\n" in text
    assert " 1. svc_base\n 2. svc_mid\n 3. svc_top" in text
    # the order of what came back follows the order of what was typed
    assert text.index('"hello there"') < text.index("no actor 'nobody'") < text.index("\n42\n")
    assert shared.find("console_attached")


async def test_completion_of_commands_and_actor_names(shared: NodeProcess) -> None:
    from aria_actors.console.protocol import Names, NamesReply

    client = await attach(shared.dirs.state)
    try:
        reply = await client.request(Names())
    finally:
        await client.close()
    assert isinstance(reply, NamesReply)
    completer = ConsoleCompleter()
    completer.names = reply.names  # what the prompt does before every line

    def complete(text: str) -> list[str]:
        event = CompleteEvent(completion_requested=True)
        return [c.text for c in completer.get_completions(Document(text), event)]

    assert complete("tr") == ["tree", "trace"]
    assert complete("boo") == ["boot-order"]
    assert "shutdown" in complete("")
    assert complete("info ico") == ["icounter"]
    assert complete("call rel") == ["relay"]
    assert set(complete("state ")) >= {"counter", "vault", "svc_mid", "leaf"}
    assert complete("trace relay ") == ["on", "off"]
    assert complete("trace relay of") == ["off"]
    assert complete("tree ") == []
    assert complete("info nobody") == []
    (completion,) = completer.get_completions(Document("stop vau"), CompleteEvent())
    assert (completion.text, completion.start_position) == ("vault", -3)


# ======================================================================================
# 3. Signals
# ======================================================================================


def test_sigterm_after_boot_stops_the_node_cleanly(dirs: NodeDirs, tmp_path: Path) -> None:
    journal = tmp_path / "journal.txt"
    layered_services(dirs, journal)
    with NodeProcess(dirs) as node:
        node.wait_ready()
        assert dirs.socket.exists()
        node.send(signal.SIGTERM)
        assert node.wait() == 0, node.output()
        stopped = node.wait_for("node_stopped")
        assert stopped["exit_status"] == 0
        assert node.names()[-1] == "node_stopped"
        assert journal.read_text(encoding="utf-8").splitlines()[-1] == "terminate svc_base"
        assert not dirs.socket.exists()
        assert not dirs.node_file.exists()
        assert_no_traceback(node)


def test_sigterm_during_the_boot_is_an_orderly_stop(dirs: NodeDirs) -> None:
    counter_service(dirs, "first", service="svc_first")
    dirs.service(
        "slow.toml",
        """
        [service]
        name = "svc_slow"
        requires = ["svc_first"]

        [[children]]
        id = "slow"
        actor = "tests.runtime.loader_actors:SlowStart"
        [children.args]
        seconds = 1.0
        """,
    )
    with NodeProcess(dirs) as node:
        node.wait_for("service_starting", service="svc_slow")
        node.send(signal.SIGTERM)
        status = node.wait()
        assert status == 0, node.output()
        assert "node_ready" not in node.names()
        assert "node_failed" not in node.names()
        assert node.wait_for("node_stopped")["exit_status"] == 0
        assert not dirs.socket.exists()
        assert_no_traceback(node)


def test_a_second_sigint_halts_a_slow_shutdown(dirs: NodeDirs) -> None:
    dirs.service(
        "slow.toml",
        """
        [service]
        name = "svc_slow_stop"

        [[children]]
        id = "slow"
        actor = "tests.nodeproc:SlowStop"
        shutdown = 30
        [children.args]
        seconds = 10.0
        """,
    )
    with NodeProcess(dirs) as node:
        node.wait_ready()
        node.send(signal.SIGINT)
        assert "Ctrl-C again" in node.wait_for("interrupt")["note"]
        node.wait_for("slow_terminate_started")
        interrupted = time.monotonic()
        node.send(signal.SIGINT)
        status = node.wait(timeout=8.0)  # well under the 10 s terminate
        assert status == 130, node.output()
        assert time.monotonic() - interrupted < 8.0
        node.wait_for("node_halting")
        assert node.wait_for("node_stopped")["exit_status"] == 130
        assert_no_traceback(node)


def test_sighup_applies_what_it_can_and_reports_the_rest(dirs: NodeDirs, tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "node.toml",
        '[node]\nname = "hup"\n\n[runtime]\nmailbox_size = 1024\n\n[log]\nlevel = "info"\n',
    )
    counter_service(dirs, "counter", "other")
    dirs.service(
        "chat.toml",
        '[service]\nname = "svc_chat"\n\n[[children]]\nid = "chatty"\n'
        'actor = "tests.nodeproc:Chatty"\nname = "chatty"\n',
    )
    with NodeProcess(dirs, config=config) as node:
        assert node.wait_ready()["node"] == "hup"
        assert info_of(node, "counter")["mailbox"]["size"] == 1024
        write_config(
            config,
            '[node]\nname = "renamed"\n\n[runtime]\nmailbox_size = 77\n\n[log]\nlevel = "debug"\n',
        )
        node.send(signal.SIGHUP)
        reloaded = node.wait_for("config_reloaded")
        assert reloaded["applied"] == ["runtime.mailbox_size", "log.level"]
        assert reloaded["needs_restart"] == ["node.name"]

        assert node.console("restart counter").status == 0
        fresh = info_of(node, "counter")
        assert fresh["mailbox"]["size"] == 77  # a new actor gets the new default
        assert re.search(r"^mailbox\s+0/77 queued", node.console("info counter").stdout, re.M)
        assert info_of(node, "other")["mailbox"]["size"] == 1024  # a running one keeps its own
        assert fresh["actor"].startswith("<actor hup.")  # the name needs a restart
        assert welcome_node(dirs.state) == "hup"

        said = node.console('call chatty {"type": "Say", "level": "debug", "text": "now"}')
        assert said.status == 0, said
        node.wait_for("chatty_said", level="debug", text="now")  # debug is logged now

        assert node.console("eval 1 + 1").stdout == "2\n"
        write_config(
            config,
            '[node]\nname = "renamed"\n\n[runtime]\nmailbox_size = 77\n\n'
            '[log]\nlevel = "debug"\n\n[console]\neval = false\n',
        )
        node.send(signal.SIGHUP)
        second = node.wait_for("config_reloaded", applied=["console.eval"])
        assert second["needs_restart"] == ["node.name"]
        disabled = node.console("eval 1 + 1")
        assert disabled.status == 1, disabled
        assert "error (disabled)" in disabled.stdout
        assert node.alive()
        node.send(signal.SIGTERM)
        assert node.wait() == 0, node.output()


def test_a_broken_config_on_sighup_keeps_the_node_running(dirs: NodeDirs, tmp_path: Path) -> None:
    config = write_config(tmp_path / "node.toml", "[runtime]\nmailbox_size = 64\n")
    counter_service(dirs, "counter")
    with NodeProcess(dirs, config=config) as node:
        node.wait_ready()
        for count, (broken, fragment) in enumerate(
            (
                ("[runtime]\nmailbox_size = 0\n", "runtime.mailbox_size"),
                ("[runtime\nmailbox_size = 8\n", str(config)),
                ("[runtime]\nmailbox_sise = 8\n", "mailbox_sise"),
            ),
            1,
        ):
            write_config(config, broken)
            node.send(signal.SIGHUP)
            failed = node.wait_count("config_reload_failed", count)[-1]
            assert fragment in failed["error"], failed
            assert failed["level"] == "error"
            assert node.alive(), node.output()
        assert "config_reloaded" not in node.names()
        assert node.console("restart counter").status == 0
        assert info_of(node, "counter")["mailbox"]["size"] == 64  # the old configuration
        node.send(signal.SIGTERM)
        assert node.wait() == 0, node.output()


def test_a_reloaded_log_level_reaches_actors_that_logged_before(
    dirs: NodeDirs, tmp_path: Path
) -> None:
    """BUG: after SIGHUP changes ``log.level`` (reported as applied), an actor that
    had already logged through ``self.log`` keeps the old level.

    _runtime/actor.py, ``Actor.log``: the bound logger is built once and cached in
    ``proc.logger``; structlog builds it with the wrapper class (the level filter)
    and processor list configured at that moment, so ``configure_logging`` on reload
    (daemon/logs.py) never reaches it. Fix: do not cache the bound logger (bind a
    ``structlog.get_logger(...)`` proxy lazily per call, or keep the lazy proxy
    returned by ``get_logger().bind()`` only when caching is off), or have the
    daemon clear every ``proc.logger`` after reconfiguring.
    """
    config = write_config(tmp_path / "node.toml", '[log]\nlevel = "info"\n')
    dirs.service(
        "chat.toml",
        '[service]\nname = "svc_chat"\n\n[[children]]\nid = "chatty"\n'
        'actor = "tests.nodeproc:Chatty"\nname = "chatty"\n',
    )
    with NodeProcess(dirs, config=config) as node:
        node.wait_ready()
        assert (
            node.console('call chatty {"type": "Say", "level": "info", "text": "one"}').status == 0
        )
        node.wait_for("chatty_said", text="one")
        write_config(config, '[log]\nlevel = "debug"\n')
        node.send(signal.SIGHUP)
        assert node.wait_for("config_reloaded")["applied"] == ["log.level"]
        said = node.console('call chatty {"type": "Say", "level": "debug", "text": "two"}')
        assert said.status == 0, said
        (logs,) = node.replies("logs --actor chatty --limit 0")
        texts = [event.get("text") for event in logs["events"] if event["event"] == "chatty_said"]
        assert texts == ["one", "two"], "the debug line of the same actor was filtered out"


def test_a_reloaded_max_frame_is_really_applied(dirs: NodeDirs, tmp_path: Path) -> None:
    """BUG: SIGHUP reports ``console.max_frame`` as applied, but the control server
    keeps the limit it was built with.

    daemon/main.py, ``Daemon.apply`` puts ``max_frame`` in ``live_console`` (so it is
    listed in ``applied``) but only ``self.config`` changes; ``ControlServer.max_frame``
    (console/server.py) was copied from the first configuration in ``Daemon.run``.
    Fix: keep the server on the daemon and set ``server.max_frame`` in ``apply`` (or
    give the server a callable), or report the key in ``needs_restart``.
    """
    config = write_config(tmp_path / "node.toml", "[console]\nmax_frame = 1048576\n")
    counter_service(dirs, "counter")
    with NodeProcess(dirs, config=config) as node:
        node.wait_ready()
        write_config(config, "[console]\nmax_frame = 256\n")
        node.send(signal.SIGHUP)
        assert node.wait_for("config_reloaded")["applied"] == ["console.max_frame"]
        big = json.dumps({"type": "Echo", "value": "x" * 2000})
        result = node.console(f"call counter {big}")
        assert result.status == 1, "a 2 kB request passed a 256-byte max_frame"
        assert "too_large" in result.stdout + result.stderr, result


def test_a_reloaded_log_buffer_is_really_applied(dirs: NodeDirs, tmp_path: Path) -> None:
    """BUG: a node started with ``console.log_buffer = 0`` reports a later
    ``log_buffer`` on SIGHUP as applied, but ``logs`` stays disabled.

    daemon/main.py, ``Daemon.apply``: ``log_buffer`` is in ``live_console``, but the
    buffer is only resized when one exists (``self.buffer is not None``); main()
    creates none for 0 and the logging chain and ``Commands.logs`` keep ``None``.
    Fix: create the buffer on reload (and reconfigure logging and give it to
    ``Commands``), or report the change in ``needs_restart`` when going from or to 0.
    """
    config = write_config(tmp_path / "node.toml", "[console]\nlog_buffer = 0\n")
    counter_service(dirs, "counter")
    with NodeProcess(dirs, config=config) as node:
        node.wait_ready()
        (before,) = node.console("logs", json_output=True).json()
        assert before["code"] == "disabled"
        write_config(config, "[console]\nlog_buffer = 100\n")
        node.send(signal.SIGHUP)
        assert node.wait_for("config_reloaded")["applied"] == ["console.log_buffer"]
        node.console('call counter {"type": "Get"}')
        after = node.console("logs", json_output=True)
        assert after.status == 0, after


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_following_console_does_not_break_the_shutdown(
    dirs: NodeDirs, tmp_path: Path, loop: str
) -> None:
    """BUG: a console running ``logs --follow`` while the node stops never gets the
    last events (``service_stopped``, ``node_stopped``), although the log buffer
    promises that a follower's lost events are counted and reported; and on uvloop
    (the default loop) the node prints ``Unhandled exception in client_connected_cb``
    with ``RuntimeError: unable to perform operation on <UnixTransport closed=True>``.

    daemon/main.py, ``Daemon.run`` logs ``node_stopped`` and at once calls
    ``ControlServer.stop`` (console/server.py), which closes every writer while
    ``_follow`` still has those events queued; its next ``_send`` writes to the
    closed transport (uvloop raises ``RuntimeError``, which ``_serve`` does not
    catch: it only expects ``ConnectionError``/``TimeoutError``/``IncompleteReadError``).
    Fix: on stop, let each follower send what is queued and return before closing
    its writer (with a deadline), check ``writer.is_closing()`` before writing, and
    treat ``RuntimeError`` from a closed transport like a lost connection in ``_serve``.
    """
    config = write_config(tmp_path / "node.toml", f'[runtime]\nevent_loop = "{loop}"\n')
    counter_service(dirs, "counter")
    with NodeProcess(dirs, config=config) as node:
        assert node.wait_ready()["event_loop"] == loop
        command = [sys.executable, str(CONSOLE), "--no-colour", "--state-dir", str(dirs.state)]
        follower = subprocess.Popen(
            [*command, "-c", "logs --follow --limit 1"],
            cwd=ROOT,
            env=child_environment(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            node.wait_for("console_attached")
            # an event the follower streams, so its follow loop is known to run
            assert node.console('call counter {"type": "Get"}').status == 0
            node.send(signal.SIGTERM)
            assert node.wait() == 0, node.output()
            out, err = follower.communicate(timeout=TIMEOUT)
        finally:
            if follower.poll() is None:
                follower.kill()
            follower.wait(TIMEOUT)
        assert follower.returncode == 0, (out, err)
        assert "node_stopping" in out, (out, err)
        assert_no_traceback(node)
        assert "node_stopped" in out, (out, err)


# ======================================================================================
# 4. systemd notifications
# ======================================================================================


def test_systemd_notifications(dirs: NodeDirs, tmp_path: Path) -> None:
    journal = tmp_path / "journal.txt"
    layered_services(dirs, journal, top_delay=0.3)
    with short_directory() as short:
        listener = NotifyListener(short / "notify")
        try:
            env = {"NOTIFY_SOCKET": str(listener.path), "WATCHDOG_USEC": "200000"}
            with NodeProcess(dirs, env=env) as node:
                ready = listener.wait_for("READY=1")
                # READY=1 comes only once the last service's init has finished
                assert journal.read_text(encoding="utf-8").splitlines() == [
                    "init svc_base",
                    "init svc_mid",
                    "init svc_top",
                ]
                assert "STATUS=running 3 service(s)" in ready
                assert f"MAINPID={node.pid}" in ready
                before = listener.received[:-1]
                statuses = [
                    line for message in before for line in message if line.startswith("STATUS=")
                ]
                assert statuses == [
                    "STATUS=starting svc_base (1/3)",
                    "STATUS=starting svc_mid (2/3)",
                    "STATUS=starting svc_top (3/3)",
                ]
                assert ["WATCHDOG=1"] in before  # the watchdog runs from the start
                assert not any("READY=1" in message for message in before)
                node.wait_ready()

                # pings every 0.1 s (half of WATCHDOG_USEC)
                deadline = time.monotonic() + TIMEOUT
                pings = 0
                while pings < 3:
                    if listener.next(deadline) == ["WATCHDOG=1"]:
                        pings += 1

                node.send(signal.SIGHUP)
                reloading = listener.wait_for("RELOADING=1")
                assert any(line.startswith("MONOTONIC_USEC=") for line in reloading)
                reloaded = listener.wait_for("READY=1")
                assert any(line.startswith("STATUS=reloaded") for line in reloaded)
                node.wait_for("config_reloaded")

                node.send(signal.SIGTERM)
                stopping = listener.wait_for("STOPPING=1")
                assert "STATUS=stopping services in reverse boot order" in stopping
                assert node.wait() == 0, node.output()
                messages = listener.received
                assert messages.index(stopping) > messages.index(reloaded)
                assert node.find("systemd_notify_failed") == []
        finally:
            listener.close()


def test_sighup_during_the_boot_does_not_announce_readiness(dirs: NodeDirs) -> None:
    """A SIGHUP while services are still starting reloads the configuration but tells
    systemd nothing: the first ``READY=1`` is the boot's, once every service is up."""
    dirs.service(
        "slow.toml",
        """
        [service]
        name = "svc_slow"

        [[children]]
        id = "slow"
        actor = "tests.runtime.loader_actors:SlowStart"
        [children.args]
        seconds = 1.0
        """,
    )
    with short_directory() as short:
        listener = NotifyListener(short / "notify")
        try:
            with NodeProcess(dirs, env={"NOTIFY_SOCKET": str(listener.path)}) as node:
                node.wait_for("service_starting", service="svc_slow")
                node.send(signal.SIGHUP)
                node.wait_for("config_reloaded")  # reloaded, but systemd is told nothing yet
                first_ready = listener.wait_for("READY=1")
                # the first READY=1 must be the boot's, sent once every service is up
                assert "STATUS=running 1 service(s)" in first_ready, listener.received
                node.wait_ready()
                node.send(signal.SIGTERM)
                assert node.wait() == 0, node.output()
        finally:
            listener.close()


# ======================================================================================
# 5. Security and robustness
# ======================================================================================


def test_a_wrong_cookie_is_rejected(shared: NodeProcess, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong-cookie"
    wrong.write_text("0" * 64 + "\n", encoding="ascii")
    wrong.chmod(0o600)
    result = run_console(
        "--socket", str(shared.dirs.socket), "--cookie-file", str(wrong), "-c", "tree"
    )
    assert result.status == 2, result
    assert "wrong cookie" in result.stderr
    assert result.stdout == ""
    rejected = shared.wait_for("console_rejected", reason="wrong cookie")
    assert rejected["code"] == "unauthenticated"
    assert rejected["level"] == "warning"
    assert shared.console("tree").status == 0  # still answering


def test_a_world_readable_cookie_is_refused(dirs: NodeDirs) -> None:
    counter_service(dirs, "counter")
    with NodeProcess(dirs) as node:
        node.wait_ready()
        assert stat.S_IMODE(dirs.cookie.stat().st_mode) == 0o600
        dirs.cookie.chmod(0o644)
        result = node.console("tree")
        assert result.status == 2, result
        assert f"chmod 600 {dirs.cookie}" in result.stderr
        assert "can be read by other users" in result.stderr
        node.send(signal.SIGTERM)
        assert node.wait() == 0, node.output()
    with NodeProcess(dirs) as again:
        status = again.wait()
        assert status == 2, again.output()
        failed = again.wait_for("node_failed")
        assert str(dirs.cookie) in failed["error"]
        assert "chmod 600" in failed["error"]
        assert "node_ready" not in again.names()
        assert_no_traceback(again)


def test_a_stale_socket_is_replaced(dirs: NodeDirs) -> None:
    counter_service(dirs, "counter")
    with NodeProcess(dirs) as first:
        first.wait_ready()
        first.send(signal.SIGKILL)
        assert first.wait() == -signal.SIGKILL
    assert dirs.socket.exists()  # left behind
    assert dirs.node_file.exists()
    with NodeProcess(dirs) as second:
        second.wait_ready()
        removed = second.wait_for("stale_control_socket_removed")
        assert removed["socket"] == str(dirs.socket)
        result = second.console('call counter {"type": "Inc", "n": 1}')
        assert (result.status, result.stdout) == (0, "1\n"), result
        assert json.loads(dirs.node_file.read_text())["pid"] == second.pid


def test_a_second_node_on_a_live_socket_refuses_to_start(dirs: NodeDirs) -> None:
    counter_service(dirs, "counter")
    with NodeProcess(dirs) as first:
        first.wait_ready()
        with NodeProcess(dirs) as second:
            assert second.wait() == 2, second.output()
            failed = second.wait_for("node_failed")
            assert "another node is running" in failed["error"]
            assert str(dirs.socket) in failed["error"]
            assert "node_ready" not in second.names()
        assert first.alive()


def test_a_refused_second_node_leaves_the_live_node_reachable(dirs: NodeDirs) -> None:
    """BUG: a second node that refuses to start on a live socket deletes the live
    node's control socket and ``node.json`` on its way out, so no console can
    reach the first node any more.

    daemon/main.py, ``Daemon.run``: ``server`` is assigned before ``await
    server.start()``, which raises ``ConfigError`` from ``_remove_stale``; the
    ``finally`` then calls ``server.stop()``, which unlinks ``self.path`` (the live
    node's socket), and unlinks ``node_file`` although this process never wrote
    it. Fix: assign ``server`` (and remember that the node file was written) only
    after ``start()`` succeeded, and make ``ControlServer.stop`` unlink the path
    only if it bound it.
    """
    counter_service(dirs, "counter")
    with NodeProcess(dirs) as first:
        first.wait_ready()
        with NodeProcess(dirs) as second:
            assert second.wait() == 2, second.output()
        assert dirs.socket.exists(), "the live node's control socket was removed"
        assert dirs.node_file.exists(), "the live node's node.json was removed"
        result = first.console('call counter {"type": "Get"}')
        assert result.status == 0, result


def test_socket_and_directories_are_private(shared: NodeProcess) -> None:
    dirs = shared.dirs
    info = dirs.socket.lstat()
    assert stat.S_ISSOCK(info.st_mode)
    assert stat.S_IMODE(info.st_mode) == 0o600
    assert stat.S_IMODE(dirs.runtime.stat().st_mode) == 0o700
    assert stat.S_IMODE(dirs.state.stat().st_mode) == 0o700
    assert stat.S_IMODE(dirs.cookie.stat().st_mode) == 0o600
    assert stat.S_IMODE(dirs.node_file.stat().st_mode) == 0o600
    document = json.loads(dirs.node_file.read_text())
    assert document["socket"] == str(dirs.socket)
    assert document["pid"] == shared.pid
    assert document["node"] == "aria"
    assert document["protocol"] == PROTOCOL_VERSION


class Raw:
    """A raw connection to the control socket: bytes out, frames in, with timeouts."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(TIMEOUT)
        self.sock.connect(str(path))

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(self, request: Any) -> Reply | None:
        self.send(encode_frame(request))
        return self.reply()

    def frame(self, body: bytes) -> Reply | None:
        """Send ``body`` as one frame; the reply."""
        self.send(struct.pack(">I", len(body)) + body)
        return self.reply()

    def end(self) -> None:
        """No more bytes from this side (the node sees end of stream)."""
        self.sock.shutdown(socket.SHUT_WR)

    def exactly(self, size: int) -> bytes | None:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                return None
            data += chunk
        return data

    def reply(self) -> Reply | None:
        """The next reply; None once the node has closed the connection."""
        header = self.exactly(4)
        if header is None:
            return None
        (length,) = struct.unpack(">I", header)
        body = self.exactly(length)
        assert body is not None, "the connection closed inside a frame"
        return decode_reply(body)

    def replies_until_closed(self) -> list[Reply]:
        replies = []
        while (reply := self.reply()) is not None:
            replies.append(reply)
            assert len(replies) < 10, replies
        return replies


def test_protocol_abuse_gets_errors_and_the_node_keeps_answering(dirs: NodeDirs) -> None:
    counter_service(dirs, "counter")
    with NodeProcess(dirs) as node:
        node.wait_ready()
        cookie = dirs.cookie.read_text().strip()

        def session() -> Raw:
            raw = Raw(dirs.socket)
            welcome = raw.request(Hello(version=PROTOCOL_VERSION, cookie=cookie, client="abuse"))
            assert isinstance(welcome, Welcome), welcome
            return raw

        def refused(data: bytes, *, authenticated: bool, end: bool = False) -> list[Reply]:
            raw = session() if authenticated else Raw(dirs.socket)
            try:
                raw.send(data)
                if end:
                    raw.end()
                replies = raw.replies_until_closed()
            finally:
                raw.close()
            assert replies, data
            assert all(isinstance(reply, Failed) for reply in replies), replies
            return replies

        # before the hello: a garbage first frame, 2 GB announced, a truncated frame
        (garbage,) = refused(b"GET / HTTP/1.1\r\nHost: aria\r\n\r\n", authenticated=False)
        assert isinstance(garbage, Failed)
        assert garbage.code == "unauthenticated"
        assert "over the limit" in garbage.message
        (huge,) = refused(struct.pack(">I", 2**31), authenticated=False)
        assert isinstance(huge, Failed)
        assert huge.code == "unauthenticated"
        (short,) = refused(struct.pack(">I", 100) + b"x" * 10, authenticated=False, end=True)
        assert isinstance(short, Failed)
        assert "ended inside a frame" in short.message
        (not_hello,) = refused(encode_frame(Tree()), authenticated=False)
        assert isinstance(not_hello, Failed)
        assert not_hello.message == "the first frame must be a hello"
        (version,) = refused(encode_frame(Hello(version=99, cookie=cookie)), authenticated=False)
        assert isinstance(version, Failed)
        assert version.code == "version"

        # after the hello: 2 GB announced, a truncated frame (the stream is dropped)
        (too_large,) = refused(struct.pack(">I", 2**31), authenticated=True)
        assert isinstance(too_large, Failed)
        assert too_large.code == "too_large"
        (truncated,) = refused(struct.pack(">I", 100) + b"x" * 10, authenticated=True, end=True)
        assert isinstance(truncated, Failed)
        assert truncated.code == "malformed"

        # after the hello: bad requests are answered and the session goes on
        raw = session()
        try:
            unknown = raw.frame(msgspec.msgpack.encode({"op": "frobnicate"}))
            assert isinstance(unknown, Failed)
            assert unknown.code == "bad_request"
            mistyped = raw.frame(msgspec.msgpack.encode({"op": "info", "name": 17}))
            assert isinstance(mistyped, Failed)
            assert mistyped.code == "bad_request"
            again = raw.request(Hello(version=PROTOCOL_VERSION, cookie=cookie))
            assert isinstance(again, Failed)
            assert again.message == "this session is authenticated"
            generator = random.Random(20240601)
            for size in (1, 7, 64, 1000):
                failed = raw.frame(generator.randbytes(size))
                assert isinstance(failed, Failed), failed
                assert failed.code in ("malformed", "bad_request")
            assert isinstance(raw.request(Tree()), TreeReply)
        finally:
            raw.close()

        # random bytes, unframed, before and after the hello
        for seed in range(4):
            noise = random.Random(seed).randbytes(300)
            for authenticated in (False, True):
                raw = session() if authenticated else Raw(dirs.socket)
                try:
                    raw.send(noise)
                    raw.end()
                    replies = raw.replies_until_closed()
                finally:
                    raw.close()
                assert all(isinstance(reply, Failed) for reply in replies), replies

        # a console that connects and leaves at once
        Raw(dirs.socket).close()

        assert node.alive(), node.output()
        result = node.console('call counter {"type": "Inc", "n": 2}', "tree")
        assert result.status == 0, result
        assert result.stdout.startswith("2\n")
        assert node.find("console_rejected")
        assert_no_traceback(node)


def test_the_smallest_allowed_max_frame_still_lets_a_console_attach(
    dirs: NodeDirs, tmp_path: Path
) -> None:
    """BUG: ``console.max_frame`` accepts 64 (the validated minimum), but the hello
    frame is about 110 bytes (its cookie alone is 64 hex digits), so with any
    ``max_frame`` below that no console can ever attach.

    console/server.py, ``ControlServer._authenticate`` reads the hello with
    ``min(self.max_frame, 4096)``; _runtime/config.py, ``ConsoleSection`` checks
    ``max_frame >= 64``. Fix: read the hello with its own fixed limit (4096), or
    raise the minimum (e.g. to 4096).
    """
    config = write_config(tmp_path / "node.toml", "[console]\nmax_frame = 64\n")
    counter_service(dirs, "counter")
    with NodeProcess(dirs, config=config) as node:
        node.wait_ready()
        result = node.console("tree")
        assert result.status == 0, result


# ======================================================================================
# 6. ARIA_<SECTION>__<KEY> environment overrides
# ======================================================================================


def test_environment_overrides_reach_the_node(dirs: NodeDirs) -> None:
    counter_service(dirs, "counter")
    env = {"ARIA_NODE__NAME": "envnode", "ARIA_RUNTIME__MAILBOX_SIZE": "7"}
    with NodeProcess(dirs, env=env) as node:
        assert node.wait_ready()["node"] == "envnode"
        info = info_of(node, "counter")
        assert info["mailbox"]["size"] == 7
        assert re.fullmatch(r"<actor envnode\.\d+ counter>", info["actor"])
        assert re.search(r"^mailbox\s+0/7 queued", node.console("info counter").stdout, re.M)
        assert welcome_node(dirs.state) == "envnode"
        assert json.loads(dirs.node_file.read_text())["node"] == "envnode"
        node.send(signal.SIGTERM)
        assert node.wait() == 0, node.output()


@pytest.mark.parametrize(
    ("variable", "value", "fragment"),
    [
        ("ARIA_RUNTIME__MAILBOX_SIZE", "0", "runtime.mailbox_size must be >= 1"),
        ("ARIA_BOGUS__X", "1", "unknown section 'bogus'"),
        ("ARIA_RUNTIME__NO_SUCH_KEY", "1", "unknown key runtime.no_such_key"),
    ],
)
def test_a_bad_environment_override_fails_the_start(
    dirs: NodeDirs, variable: str, value: str, fragment: str
) -> None:
    counter_service(dirs, "counter")
    with NodeProcess(dirs, env={variable: value}) as node:
        assert node.wait() == 2, node.output()
        failed = node.wait_for("node_failed")
        assert variable in failed["error"], failed
        assert fragment in failed["error"], failed
        assert "node_started" not in node.names()
        assert not dirs.socket.exists()
        assert_no_traceback(node)


def test_console_attach_errors_exit_2(tmp_path: Path) -> None:
    """No node at all: a clear message and status 2, never a traceback."""
    missing = run_console("--state-dir", str(tmp_path / "nothing"), "-c", "tree")
    assert missing.status == 2, missing
    assert "no node is running" in missing.stderr
    assert "Traceback" not in missing.stderr
