"""Turning replies into text for people, or JSON for scripts (``--json``)."""

from __future__ import annotations

import json
from typing import Any, Final

import msgspec

from .._runtime.introspect import TreeNode
from .protocol import (
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

STYLE: Final = {
    "running": "\x1b[32m",
    "stopped": "\x1b[31m",
    "exiting": "\x1b[33m",
    "error": "\x1b[31m",
    "dim": "\x1b[2m",
    "bold": "\x1b[1m",
}
RESET: Final = "\x1b[0m"


def as_json(reply: Reply) -> str:
    """The reply as one JSON document (the protocol's own field names)."""
    return msgspec.json.encode(reply).decode()


class Renderer:
    """Text for a terminal; ``colour`` adds ANSI colours."""

    def __init__(self, colour: bool = False) -> None:
        self.colour = colour

    def paint(self, text: str, style: str) -> str:
        if not self.colour or style not in STYLE:
            return text
        return f"{STYLE[style]}{text}{RESET}"

    def render(self, reply: Reply) -> str:
        """The reply as text (no trailing newline)."""
        if isinstance(reply, Failed):
            return self.paint(f"error ({reply.code}): {reply.message}", "error")
        if isinstance(reply, Done):
            return reply.detail or "ok"
        if isinstance(reply, Welcome):
            return f"attached to node {reply.node} (pid {reply.pid}, protocol {reply.version})"
        if isinstance(reply, TreeReply):
            return self.tree(reply.roots)
        if isinstance(reply, PsReply):
            return self.ps(reply)
        if isinstance(reply, InfoReply):
            return self.info(reply)
        if isinstance(reply, StateReply):
            width = max((len(k) for k in reply.fields), default=0)
            lines = [reply.actor] + [f"  {k.ljust(width)}  {v}" for k, v in reply.fields.items()]
            return "\n".join(lines)
        if isinstance(reply, ValueReply):
            return reply.value
        if isinstance(reply, ServicesReply):
            return self.table(
                ["SERVICE", "RESTART", "STATUS", "SUPERVISOR", "REQUIRES"],
                [
                    [s.name, s.restart, s.status, s.supervisor, ", ".join(s.requires) or "-"]
                    for s in reply.services
                ],
            )
        if isinstance(reply, BootOrderReply):
            return "\n".join(f"{i:>2}. {name}" for i, name in enumerate(reply.order, 1)) or (
                "(no services booted)"
            )
        if isinstance(reply, LogsReply):
            return "\n".join(self.event(e) for e in reply.events) or "(no matching events)"
        if isinstance(reply, LogEvent):
            text = self.event(reply.event)
            if reply.dropped:
                text = self.paint(f"... {reply.dropped} event(s) dropped ...", "dim") + "\n" + text
            return text
        if isinstance(reply, MetricsReply):
            return reply.text.rstrip()
        if isinstance(reply, EvalReply):
            parts = [reply.output.rstrip("\n")] if reply.output else []
            if reply.value:
                parts.append(reply.value)
            if reply.error:
                parts.append(self.paint(reply.error.rstrip(), "error"))
            return "\n".join(parts)
        if isinstance(reply, NamesReply):
            return "\n".join(reply.names)
        return as_json(reply)

    def tree(self, roots: list[TreeNode]) -> str:
        if not roots:
            return "(no actors)"
        lines: list[str] = []

        def walk(node: TreeNode, prefix: str, last: bool, top: bool) -> None:
            branch = "" if top else ("└─ " if last else "├─ ")
            restarts = f" restarts={node.restarts}" if node.restarts else ""
            actor = node.actor or "-"
            status = self.paint(node.status, node.status)
            lines.append(f"{prefix}{branch}{node.label} [{node.kind}] {actor} {status}{restarts}")
            child_prefix = prefix if top else prefix + ("   " if last else "│  ")
            for index, child in enumerate(node.children):
                walk(child, child_prefix, index == len(node.children) - 1, False)

        for root in roots:
            walk(root, "", True, True)
        return "\n".join(lines)

    def ps(self, reply: PsReply) -> str:
        text = self.table(
            ["ID", "ACTOR", "SERVICE", "TASK", "MAILBOX", "HANDLED", "RESTARTS"],
            [
                [
                    str(r.id),
                    r.name or r.actor,
                    r.service or "-",
                    r.task,
                    str(r.mailbox),
                    str(r.handled),
                    str(r.restarts),
                ]
                for r in reply.rows
            ],
        )
        if reply.total > len(reply.rows):
            text += "\n" + self.paint(f"({len(reply.rows)} of {reply.total}; ps --all)", "dim")
        return text

    def info(self, reply: InfoReply) -> str:
        info = reply.info
        rows: list[tuple[str, Any]] = [
            ("actor", info.actor),
            ("class", info.actor_class),
            ("service", info.service or "-"),
            ("state", info.state),
            ("task", info.task),
            (
                "mailbox",
                f"{info.mailbox.depth}/{info.mailbox.size} queued, "
                f"{info.mailbox.waiting_senders} senders waiting",
            ),
            ("handled", info.mailbox.handled),
            ("parent", info.parent or "-"),
            ("child id", info.child_id or "-"),
            ("restarts", info.restarts),
            ("trap exits", info.trap_exits),
            ("links", ", ".join(info.links) or "-"),
            ("monitors", ", ".join(info.monitors) or "-"),
            ("monitored by", ", ".join(info.watchers) or "-"),
            ("timers", info.timers),
            ("tasks", info.tasks),
            ("traced", info.traced),
        ]
        if info.exit_reason is not None:
            rows.append(("exit reason", str(info.exit_reason)))
        width = max(len(key) for key, _ in rows)
        return "\n".join(f"{key.ljust(width)}  {value}" for key, value in rows)

    def event(self, event: dict[str, Any]) -> str:
        stamp = str(event.get("timestamp", ""))
        level = str(event.get("level", ""))
        name = str(event.get("event", ""))
        rest = {k: v for k, v in event.items() if k not in ("timestamp", "level", "event")}
        fields = " ".join(
            f"{k}={json.dumps(v) if isinstance(v, str) and ' ' in v else v}"
            for k, v in rest.items()
        )
        style = "error" if level in ("error", "critical") else "dim" if level == "debug" else ""
        return f"{self.paint(stamp, 'dim')} {self.paint(level.ljust(7), style)} {name} {fields}"

    def table(self, header: list[str], rows: list[list[str]]) -> str:
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(header, widths, strict=True))]
        lines[0] = self.paint(lines[0].rstrip(), "bold")
        lines += [
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            for row in rows
        ]
        return "\n".join(lines)
