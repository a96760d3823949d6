"""``aria-console``: attach to a running node.

::

    aria-console                         # the node "aria" of this user, interactively
    aria-console --node aria-dev -c tree
    aria-console --state-dir /var/lib/aria -c "ps --limit 10" --json
    aria-console --socket /run/aria/control.sock --cookie-file /var/lib/aria/cookie

Exit status: 0 when every command succeeded, 1 when the node answered with an
error (or went away), 2 when the console could not attach.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

import msgspec

from .._runtime.errors import AriaError
from .client import ConsoleClient, ConsoleError, Target, locate
from .commandline import Command, CommandError, parse
from .protocol import Call
from .render import Renderer
from .session import run_command

EXIT_FAILED = 1
EXIT_CANNOT_ATTACH = 2


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="aria-console",
        description="Attach to a running Aria node: inspect it, call actors, trace, eval.",
        epilog="Commands: tree, ps, top, info, state, call, cast, restart, stop, services, "
        "boot-order, trace, logs, metrics, eval, shutdown (type help in the console).",
    )
    where = parser.add_argument_group("which node")
    where.add_argument("--node", help="node name (finds its default state directory)")
    where.add_argument("--state-dir", help="the node's state directory (node.json, cookie)")
    where.add_argument("--socket", help="the node's control socket")
    where.add_argument("--cookie-file", help="the node's cookie file (with --socket)")
    parser.add_argument(
        "-c",
        "--command",
        action="append",
        dest="commands",
        help="run this command and exit (repeatable)",
    )
    parser.add_argument("--json", action="store_true", help="print replies as JSON (with -c)")
    parser.add_argument("--no-colour", action="store_true", help="no ANSI colours")
    parser.add_argument(
        "--timeout", type=float, default=5.0, help="seconds to wait for the node to attach"
    )
    parser.add_argument(
        "--call-timeout", type=float, default=5.0, help="seconds a call may take (default 5)"
    )
    return parser.parse_args(argv)


def with_timeout(command: Command, timeout: float) -> Command:
    """``command`` with the console's call timeout, if it is a call."""
    if isinstance(command, Call):
        return msgspec.structs.replace(command, timeout=timeout)
    return command


async def one_shot(target: Target, args: argparse.Namespace) -> int:
    """Run ``-c`` commands in order; stop at the first that cannot be parsed."""
    commands = []
    for text in args.commands:
        try:
            command = parse(text)
        except CommandError as exc:
            print(f"aria-console: {exc}", file=sys.stderr)
            return EXIT_FAILED
        if command is not None:
            commands.append(command)
    client = await ConsoleClient.attach(target, args.timeout)
    renderer = Renderer(colour=not args.no_colour and sys.stdout.isatty())
    status = 0
    try:
        for command in commands:

            def write(text: str) -> None:
                if text:
                    print(text, flush=True)

            ok = await run_command(
                client, with_timeout(command, args.call_timeout), write, renderer, args.json
            )
            if not ok:
                status = EXIT_FAILED
    finally:
        await client.close()
    return status


async def attach_interactive(target: Target, args: argparse.Namespace) -> int:
    from .repl import interactive  # prompt_toolkit is only needed here

    client = await ConsoleClient.attach(target, args.timeout)
    try:
        return await interactive(client, colour=not args.no_colour, call_timeout=args.call_timeout)
    finally:
        await client.close()


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``aria-console``."""
    args = parse_args(argv)
    try:
        target = locate(
            node=args.node,
            state_dir=args.state_dir,
            socket=args.socket,
            cookie_file=args.cookie_file,
        )
    except AriaError as exc:
        print(f"aria-console: {exc}", file=sys.stderr)
        sys.exit(EXIT_CANNOT_ATTACH)
    try:
        if args.commands:
            status = asyncio.run(one_shot(target, args))
        else:
            status = asyncio.run(attach_interactive(target, args))
    except ConsoleError as exc:
        print(f"aria-console: {exc}", file=sys.stderr)
        attach_codes = ("unreachable", "unauthenticated", "version", "timeout")
        status = EXIT_CANNOT_ATTACH if exc.code in attach_codes else EXIT_FAILED
    except KeyboardInterrupt:
        status = 0
    except BrokenPipeError:  # the reader of our output went away (| head): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        status = 0
    sys.exit(status)
