"""Running console commands against an attached node, for both modes.

:func:`run_command` sends one parsed command and writes what comes back to
``out``; ``top`` and ``logs --follow`` keep going until their count is reached,
the node goes away, or the user interrupts (Ctrl-C cancels the task).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from .client import ConsoleClient
from .commandline import HELP, Command, Local, Top
from .protocol import Failed, Logs, LogsReply, Ps, Reply
from .render import Renderer, as_json

Write = Callable[[str], None]


async def run_command(
    client: ConsoleClient,
    command: Command,
    write: Write,
    renderer: Renderer,
    json_output: bool = False,
    clear_screen: bool = False,
) -> bool:
    """Carry out ``command``; False when the node answered with an error.

    Raises:
        ConsoleError: the connection failed (closed, timed out).
    """

    def show(reply: Reply) -> None:
        write(as_json(reply) if json_output else renderer.render(reply))

    if isinstance(command, Local):
        if command.name == "help":
            write(HELP.strip())
        return True
    if isinstance(command, Top):
        return await run_top(client, command, show, write, clear_screen)
    reply = await client.request(command)
    show(reply)
    if isinstance(reply, Failed):
        return False
    if isinstance(command, Logs) and command.follow and isinstance(reply, LogsReply):
        async for event in client.events():
            show(event)
    return True


async def run_top(
    client: ConsoleClient,
    command: Top,
    show: Callable[[Reply], None],
    write: Write,
    clear_screen: bool,
) -> bool:
    """``ps`` by mailbox depth every ``interval`` seconds, ``count`` times (0: forever)."""
    frames = 0
    while True:
        reply = await client.request(Ps(limit=command.limit, sort="mailbox"))
        if clear_screen:
            write("\x1b[2J\x1b[H")
        show(reply)
        if isinstance(reply, Failed):
            return False
        frames += 1
        if command.count and frames >= command.count:
            return True
        await asyncio.sleep(command.interval)
