"""The interactive console: prompt_toolkit with history, completion and colour.

Completion offers the command words, and actor names where a command takes one
(refreshed after every command). History is kept in the user's state directory.
``eval`` alone switches to Python mode (prompt ``py>``), where every line runs in
the node until ``exit`` or Ctrl-D. Ctrl-C interrupts a running ``top`` or
``logs --follow`` and returns to the prompt; Ctrl-D (or ``quit``) leaves.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable
from pathlib import Path

import msgspec
from prompt_toolkit import PromptSession
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.formatted_text import ANSI, HTML
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from prompt_toolkit.input import Input
from prompt_toolkit.output import Output
from prompt_toolkit.patch_stdout import patch_stdout
from prompt_toolkit.shortcuts import print_formatted_text

from .client import ConsoleClient, ConsoleError
from .commandline import COMMANDS, NAMED, CommandError, Local, parse
from .protocol import Call, Eval, Names, NamesReply, Shutdown
from .render import Renderer
from .session import run_command


class ConsoleCompleter(Completer):
    """Command words first; actor names after a command that takes one."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def get_completions(
        self, document: Document, complete_event: CompleteEvent
    ) -> Iterable[Completion]:
        text = document.text_before_cursor
        words = text.split()
        if len(words) == 0 or (len(words) == 1 and not text.endswith(" ")):
            prefix = words[0] if words else ""
            for word in COMMANDS:
                if word.startswith(prefix):
                    yield Completion(word, start_position=-len(prefix))
            return
        command = words[0].lower()
        if command in NAMED and (len(words) == 1 or (len(words) == 2 and not text.endswith(" "))):
            prefix = words[1] if len(words) == 2 else ""
            for name in self.names:
                if name.startswith(prefix):
                    yield Completion(name, start_position=-len(prefix))
        elif command == "trace" and len(words) >= 2:
            prefix = words[2] if len(words) == 3 else ""
            for state in ("on", "off"):
                if state.startswith(prefix):
                    yield Completion(state, start_position=-len(prefix))


def history_file() -> History:
    """The prompt history in the user's state directory (in memory if it cannot be made)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    path = Path(base) / "aria" / "console_history"
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        return FileHistory(str(path))
    except OSError:
        return InMemoryHistory()


async def interactive(
    client: ConsoleClient,
    colour: bool = True,
    input: Input | None = None,
    output: Output | None = None,
    history: History | None = None,
    call_timeout: float = 5.0,
) -> int:
    """Run the prompt until ``quit``/Ctrl-D; the exit status (0, or 1 if the node went away)."""
    renderer = Renderer(colour=colour)
    completer = ConsoleCompleter()
    session: PromptSession[str] = PromptSession(
        history=history if history is not None else history_file(),
        completer=completer,
        complete_while_typing=False,
        input=input,
        output=output,
    )
    node = client.welcome.node

    def write(text: str) -> None:
        print_formatted_text(ANSI(text), output=output)

    async def refresh_names() -> None:
        reply = await client.request(Names())
        if isinstance(reply, NamesReply):
            completer.names = reply.names

    write(renderer.render(client.welcome) + "  (help for commands, Ctrl-D to leave)")
    python_mode = False
    with patch_stdout(raw=True):
        while True:
            prompt = HTML(
                f"<ansicyan>{node}</ansicyan> py&gt; "
                if python_mode
                else f"<ansicyan>{node}</ansicyan>&gt; "
            )
            try:
                await refresh_names()
                line = await session.prompt_async(prompt)
            except KeyboardInterrupt:
                continue
            except EOFError:
                if python_mode:
                    python_mode = False
                    continue
                return 0
            except ConsoleError as exc:
                write(renderer.paint(f"the node went away: {exc}", "error"))
                return 1
            if python_mode:
                if line.strip() in ("exit", "quit"):
                    python_mode = False
                    continue
                if not line.strip():
                    continue
                write(renderer.render(await client.request(Eval(code=line))))
                continue
            try:
                command = parse(line)
            except CommandError as exc:
                write(renderer.paint(str(exc), "error"))
                continue
            if command is None:
                continue
            if isinstance(command, Local) and command.name == "quit":
                return 0
            if isinstance(command, Local) and command.name == "eval":
                if not client.welcome.eval_enabled:
                    write(renderer.paint("eval is disabled on this node", "error"))
                else:
                    python_mode = True
                    write("Python mode: lines run in the node; exit or Ctrl-D to leave")
                continue
            if isinstance(command, Call):
                command = msgspec.structs.replace(command, timeout=call_timeout)
            task = asyncio.ensure_future(run_command(client, command, write, renderer))
            try:
                if await task and isinstance(command, Shutdown):
                    return 0  # the node is going away: so does the console
            except KeyboardInterrupt:
                task.cancel()
            except asyncio.CancelledError:
                pass  # Ctrl-C ended a top or a follow
            except ConsoleError as exc:
                write(renderer.paint(f"the node went away: {exc}", "error"))
                return 1
