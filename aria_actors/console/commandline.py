"""The console's command language, shared by ``-c`` and the interactive prompt.

::

    tree                                   the supervision trees
    ps [--all] [--limit N] [--sort K] [--service S]
    top [--interval S] [--count N]         ps, refreshed (Ctrl-C ends it)
    info NAME        state NAME            NAME: a registered name or an id (17, aria.17)
    call NAME JSON   cast NAME JSON        JSON with the message's tag: {"type": "Inc", "n": 2}
    restart NAME     stop NAME
    services         boot-order            metrics
    trace NAME on|off
    logs [--limit N] [--service S] [--actor A] [--level L] [--follow]
    eval CODE                              Python in the node (top-level await allowed)
    shutdown         help                  quit
"""

from __future__ import annotations

import argparse
import math
import re
import shlex
from typing import Final

import msgspec

from .protocol import (
    BootOrder,
    Call,
    Cast,
    Eval,
    Info,
    Logs,
    Metrics,
    Ps,
    Request,
    Restart,
    Services,
    Shutdown,
    State,
    Stop,
    Trace,
    Tree,
)

COMMANDS: Final = (
    "tree",
    "ps",
    "top",
    "info",
    "state",
    "call",
    "cast",
    "restart",
    "stop",
    "services",
    "boot-order",
    "trace",
    "logs",
    "metrics",
    "eval",
    "shutdown",
    "help",
    "quit",
)
"""Every command word (the completer offers these)."""

USAGE: Final = {
    "ps": "ps [--all] [--limit N] [--sort mailbox|handled|id|restarts] [--service S]",
    "top": "top [--interval S] [--count N] [--limit N]",
    "logs": "logs [--limit N] [--service S] [--actor A] [--level L] [--follow]",
    "info": "info NAME",
    "state": "state NAME",
    "restart": "restart NAME",
    "stop": "stop NAME",
    "trace": "trace NAME on|off",
}
"""The usage line shown with an error in a command's arguments."""

ACTOR_REPR: Final = re.compile(r"<actor ([\w.-]+)[^>]*>")

NAMED: Final = frozenset({"info", "state", "call", "cast", "restart", "stop", "trace"})
"""Commands whose first argument is an actor (the completer offers names there)."""

HELP: Final = __doc__ or ""


class CommandError(ValueError):
    """A command line that does not parse; the message says how to write it."""


class Top(msgspec.Struct, frozen=True):
    """``top``: ps every ``interval`` seconds, ``count`` times (0: until interrupted)."""

    interval: float = 1.0
    count: int = 0
    limit: int = 20


class Local(msgspec.Struct, frozen=True):
    """A command the console handles itself: ``help``, ``quit``, ``eval`` (mode switch)."""

    name: str


Command = Request | Top | Local


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise CommandError(f"{self.prog}: {message}")


def _options(prog: str) -> _Parser:
    return _Parser(prog=prog, add_help=False, exit_on_error=False)


def parse(line: str) -> Command | None:
    """The command on ``line``; ``None`` for an empty line.

    Raises:
        CommandError: an unknown command or wrong arguments (with the usage).
    """
    text = ACTOR_REPR.sub(r"\1", line.strip())  # "<actor aria.17 counter>" names aria.17
    if not text or text.startswith("#"):
        return None
    word, _, rest = text.partition(" ")
    word = word.lower()
    rest = rest.strip()
    if word in ("quit", "exit"):
        return Local("quit")
    if word in ("help", "?"):
        return Local("help")
    if word == "eval":
        return Eval(code=rest) if rest else Local("eval")
    if word in ("call", "cast"):
        name, _, message = rest.partition(" ")
        if not name or not message.strip():
            raise CommandError(f'usage: {word} NAME JSON   e.g. {word} counter {{"type": "Inc"}}')
        if word == "call":
            return Call(name=name, message=message.strip())
        return Cast(name=name, message=message.strip())
    try:
        args = shlex.split(rest)
    except ValueError as exc:
        raise CommandError(_with_usage(word, f"{word}: {exc}")) from exc
    return _simple(word, args)


def _with_usage(word: str, message: str) -> str:
    usage = USAGE.get(word)
    return f"{message}\nusage: {usage}" if usage else message


def _simple(word: str, args: list[str]) -> Command:
    if word in ("tree", "services", "boot-order", "metrics", "shutdown"):
        if args:
            raise CommandError(f"{word} takes no arguments")
        simple: dict[str, Command] = {
            "tree": Tree(),
            "services": Services(),
            "boot-order": BootOrder(),
            "metrics": Metrics(),
            "shutdown": Shutdown(),
        }
        return simple[word]
    if word in ("info", "state", "restart", "stop"):
        if len(args) != 1:
            raise CommandError(f"usage: {word} NAME")
        one: dict[str, Command] = {
            "info": Info(name=args[0]),
            "state": State(name=args[0]),
            "restart": Restart(name=args[0]),
            "stop": Stop(name=args[0]),
        }
        return one[word]
    if word == "trace":
        if len(args) != 2 or args[1] not in ("on", "off"):
            raise CommandError("usage: trace NAME on|off")
        return Trace(name=args[0], on=args[1] == "on")
    if word == "ps":
        parser = _options("ps")
        parser.add_argument("--all", action="store_true")
        parser.add_argument("--limit", type=int, default=100)
        parser.add_argument("--sort", choices=["mailbox", "handled", "id", "restarts"])
        parser.add_argument("--service", default="")
        options = _parse_options(parser, args)
        return Ps(
            limit=0 if options.all else options.limit,
            sort=options.sort or "mailbox",
            service=options.service,
        )
    if word == "top":
        parser = _options("top")
        parser.add_argument("--interval", type=float, default=1.0)
        parser.add_argument("--count", type=int, default=0)
        parser.add_argument("--limit", type=int, default=20)
        options = _parse_options(parser, args)
        if not 0 < options.interval < math.inf:
            raise CommandError(_with_usage("top", "top: --interval must be a number > 0"))
        return Top(interval=options.interval, count=options.count, limit=options.limit)
    if word == "logs":
        parser = _options("logs")
        parser.add_argument("--limit", type=int, default=50)
        parser.add_argument("--service", default="")
        parser.add_argument("--actor", default="")
        parser.add_argument(
            "--level", default="", choices=["", "debug", "info", "warning", "error", "critical"]
        )
        parser.add_argument("--follow", "-f", action="store_true")
        options = _parse_options(parser, args)
        return Logs(
            limit=options.limit,
            service=options.service,
            actor=options.actor,
            level=options.level,
            follow=options.follow,
        )
    raise CommandError(f"unknown command {word!r}; try: help")


def _parse_options(parser: _Parser, args: list[str]) -> argparse.Namespace:
    try:
        return parser.parse_args(args)
    except argparse.ArgumentError as exc:
        raise CommandError(_with_usage(parser.prog, f"{parser.prog}: {exc}")) from exc
    except CommandError as exc:
        raise CommandError(_with_usage(parser.prog, str(exc))) from exc
