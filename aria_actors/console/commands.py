"""What the node does for each console request.

Inspection (``tree``, ``ps``, ``info``, ``state``, ``services``, ``metrics``,
``logs``) reads the node's records directly and sends no message, so a busy actor
cannot delay it; long listings yield to the loop every few thousand actors so a
console never stalls the actors. ``call``/``cast`` go through the actor's mailbox
like any other message; ``restart``/``stop`` go through the actor's supervisor.
Every failure becomes a :class:`Failed` reply; nothing here raises into the server.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import inspect
import io
import math
import re
import traceback
from collections.abc import Awaitable, Callable
from typing import Any, Final

import msgspec
import prometheus_client

from .._runtime.errors import AriaError, CallTimeout
from .._runtime.node import Node
from .._runtime.ref import ActorRef
from .logbuffer import LogBuffer, LogFilter
from .protocol import (
    BootOrder,
    BootOrderReply,
    Call,
    Cast,
    Done,
    Eval,
    EvalReply,
    Failed,
    Info,
    InfoReply,
    Logs,
    LogsReply,
    Metrics,
    MetricsReply,
    Names,
    NamesReply,
    Ps,
    PsReply,
    Reply,
    Request,
    Restart,
    ServiceRow,
    Services,
    ServicesReply,
    Shutdown,
    State,
    StateReply,
    Stop,
    Trace,
    Tree,
    TreeReply,
    ValueReply,
)

YIELD_EVERY: Final = 5000
ACTOR_ID: Final = re.compile(r"^(?:(?P<node>[\w-]+)\.)?(?P<id>\d+)$")


class NotFound(Exception):
    """The request names an actor the node does not have."""


class Session:
    """Per-connection state: the eval namespace."""

    def __init__(self, node: Node) -> None:
        self.namespace: dict[str, Any] = {
            "node": node,
            "whereis": node.whereis,
            "asyncio": asyncio,
            "msgspec": msgspec,
            "__name__": "__console__",
        }


class Commands:
    """The node side of every console request."""

    def __init__(
        self,
        node: Node,
        logs: LogBuffer | None,
        eval_enabled: Callable[[], bool],
        shutdown: Callable[[], None],
    ) -> None:
        self.node = node
        self.logs = logs
        self.eval_enabled = eval_enabled
        self.shutdown = shutdown
        self.decoders: dict[frozenset[type], msgspec.json.Decoder[Any] | str] = {}
        self.handlers: dict[type, Callable[[Any, Session], Awaitable[Reply]]] = {
            Tree: self.tree,
            Ps: self.ps,
            Info: self.info,
            State: self.state,
            Call: self.call,
            Cast: self.cast,
            Restart: self.restart,
            Stop: self.stop,
            Services: self.services,
            BootOrder: self.boot_order,
            Trace: self.trace,
            Logs: self.recent_logs,
            Metrics: self.metrics,
            Shutdown: self.request_shutdown,
            Eval: self.eval,
            Names: self.names,
        }

    async def handle(self, request: Request, session: Session) -> Reply:
        """The reply to ``request``; failures become :class:`Failed` replies."""
        handler = self.handlers.get(type(request))
        if handler is None:
            return Failed("bad_request", f"{type(request).__name__} is not a console request here")
        try:
            return await handler(request, session)
        except NotFound as exc:
            return Failed("not_found", str(exc))
        except CallTimeout as exc:
            return Failed("timeout", str(exc))
        except AriaError as exc:
            return Failed("failed", f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # a bug here must not take the node down: report it
            return Failed("failed", f"{type(exc).__name__}: {exc}")

    # -- finding actors ---------------------------------------------------------------

    def resolve(self, name: str) -> ActorRef:
        """A registered name, or an id (``17``, ``aria.17``, ``<actor aria.17 x>``).

        Raises:
            NotFound: no live actor by that name or id.
        """
        text = name.strip()
        if text.startswith("<actor ") and text.endswith(">"):
            text = (text[len("<actor ") : -1].split() or [""])[0]
        ref = self.node.whereis(text)
        if ref is None:
            match = ACTOR_ID.match(text)
            if match and match["node"] in (None, self.node.name):
                ref = self.node.find(int(match["id"]))
        if ref is None or not ref.is_alive():
            raise NotFound(f"no actor {name!r} on node {self.node.name} (try: ps)")
        return ref

    # -- inspection ---------------------------------------------------------------------

    async def tree(self, request: Tree, session: Session) -> Reply:
        return TreeReply(roots=self.node.tree())

    async def ps(self, request: Ps, session: Session) -> Reply:
        refs = self.node.actors()
        rows = []
        for index, ref in enumerate(refs):
            if index and index % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # a long listing must not stall the actors
            if not ref.is_alive():
                continue
            row = self.node.process_row(ref)
            if request.service and row.service != request.service:
                continue
            rows.append(row)
        if request.sort == "id":
            rows.sort(key=lambda r: r.id)
        else:
            rows.sort(key=lambda r: (getattr(r, request.sort), -r.id), reverse=True)
        total = len(rows)
        if request.limit > 0:
            rows = rows[: request.limit]
        return PsReply(rows=rows, total=total)

    async def info(self, request: Info, session: Session) -> Reply:
        return InfoReply(info=self.node.info(self.resolve(request.name)))

    async def state(self, request: State, session: Session) -> Reply:
        ref = self.resolve(request.name)
        try:
            fields = self.node.inspect_state(ref)
        except Exception as exc:
            return Failed("failed", f"{ref!r}.inspect_state() raised {type(exc).__name__}: {exc}")
        return StateReply(actor=repr(ref), fields={str(k): str(v) for k, v in fields.items()})

    async def services(self, request: Services, session: Session) -> Reply:
        rows = []
        for name in self.node.services:
            found = self.node.service(name)
            if found is None:
                continue
            spec, supervisor = found
            rows.append(
                ServiceRow(
                    name=name,
                    restart=spec.restart,
                    requires=list(spec.requires),
                    supervisor=repr(supervisor),
                    status="running" if supervisor.is_alive() else "stopped",
                )
            )
        return ServicesReply(services=rows)

    async def boot_order(self, request: BootOrder, session: Session) -> Reply:
        return BootOrderReply(order=list(self.node.boot_history))

    async def names(self, request: Names, session: Session) -> Reply:
        return NamesReply(names=sorted(self.node.registered()))

    async def metrics(self, request: Metrics, session: Session) -> Reply:
        return MetricsReply(text=prometheus_client.generate_latest(self.node.metrics).decode())

    async def recent_logs(self, request: Logs, session: Session) -> Reply:
        if self.logs is None:
            return Failed("disabled", "this node keeps no log buffer (console.log_buffer = 0)")
        wanted = LogFilter(request.service, request.actor, request.level)
        return LogsReply(events=self.logs.recent(request.limit, wanted))

    # -- acting on actors ---------------------------------------------------------------

    def decoder(self, ref: ActorRef) -> msgspec.json.Decoder[Any] | str:
        """A JSON decoder for the tagged messages ``ref``'s actor handles, or why not."""
        types = [t for t in self.node.message_types(ref) if t.__struct_config__.tag is not None]
        key = frozenset(types)
        cached = self.decoders.get(key)
        if cached is not None:
            return cached
        decoder: msgspec.json.Decoder[Any] | str
        if not types:
            decoder = "it handles no tagged message types (declare them with tag=True)"
        else:
            union: Any = types[0]
            for extra in types[1:]:
                union = union | extra
            try:
                decoder = msgspec.json.Decoder(union)
            except TypeError as exc:
                decoder = f"its message types cannot be decoded together: {exc}"
        self.decoders[key] = decoder
        return decoder

    def message_for(self, ref: ActorRef, text: str) -> object:
        """Decode ``text`` (JSON with the message's tag) with ``ref``'s message types."""
        decoder = self.decoder(ref)
        if isinstance(decoder, str):
            raise AriaError(f"cannot send {ref!r} a message from the console: {decoder}")
        try:
            return decoder.decode(text)
        except msgspec.DecodeError as exc:
            accepted = sorted(
                f"{t.__struct_config__.tag_field}={t.__struct_config__.tag!r}"
                for t in self.node.message_types(ref)
                if t.__struct_config__.tag is not None
            )
            raise AriaError(
                f"{exc}; {ref!r} accepts JSON objects with {', '.join(accepted)}"
            ) from exc

    async def call(self, request: Call, session: Session) -> Reply:
        if not 0 < request.timeout < math.inf:
            return Failed(
                "bad_request", f"timeout must be a positive number, not {request.timeout}"
            )
        ref = self.resolve(request.name)
        reply = await ref.call(self.message_for(ref, request.message), timeout=request.timeout)
        return ValueReply(value=msgspec.json.encode(reply, enc_hook=repr).decode())

    async def cast(self, request: Cast, session: Session) -> Reply:
        ref = self.resolve(request.name)
        ref.cast_nowait(self.message_for(ref, request.message))
        return Done(f"sent to {ref!r}")

    async def restart(self, request: Restart, session: Session) -> Reply:
        ref = self.resolve(request.name)
        supervised = self.node.supervisor_of(ref)
        if supervised is None:
            if ref.name in self.node.services:
                return Failed(
                    "failed",
                    f"{ref!r} is the top supervisor of service {ref.name}; restart its children, "
                    "or restart the node",
                )
            return Failed("failed", f"{ref!r} has no supervisor to restart it (stop it instead)")
        supervisor, child = supervised
        new = await supervisor.restart(child)
        return Done(f"restarted {child if isinstance(child, str) else ref!r}: now {new!r}")

    async def stop(self, request: Stop, session: Session) -> Reply:
        ref = self.resolve(request.name)
        supervised = self.node.supervisor_of(ref)
        if supervised is not None:
            supervisor, child = supervised
            await supervisor.terminate_child(child)
            return Done(f"stopped {ref!r} through {supervisor!r} (it stays stopped)")
        for name in self.node.services:
            found = self.node.service(name)
            if found is not None and found[1] == ref and found[0].restart != "temporary":
                return Failed(
                    "failed",
                    f"{ref!r} is the top of the {found[0].restart} service {name}: stopping it "
                    "would stop the node with exit status 1; use shutdown to stop the node",
                )
        reason = await self.node.stop_actor(ref)
        return Done(f"stopped {ref!r}: {reason}")

    async def trace(self, request: Trace, session: Session) -> Reply:
        ref = self.resolve(request.name)
        self.node.trace(ref, request.on)
        state = "on" if request.on else "off"
        return Done(f"tracing {state} for {ref!r}: see 'logs --follow --actor {request.name}'")

    async def request_shutdown(self, request: Shutdown, session: Session) -> Reply:
        self.shutdown()
        return Done(f"node {self.node.name} is stopping")

    # -- eval -----------------------------------------------------------------------------

    async def eval(self, request: Eval, session: Session) -> Reply:
        if not self.eval_enabled():
            return Failed("disabled", "eval is disabled on this node (console.eval = false)")
        namespace = session.namespace
        namespace["refs"] = self.node.registered()
        output = io.StringIO()

        def console_print(*args: Any, **kwargs: Any) -> None:
            kwargs["file"] = output
            print(*args, **kwargs)

        namespace["print"] = console_print
        flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
        try:
            code = compile(request.code, "<console>", "eval", flags=flags)
            is_expression = True
        except SyntaxError:
            is_expression = False
        try:
            if not is_expression:
                code = compile(request.code, "<console>", "exec", flags=flags)
            with contextlib.redirect_stdout(output):
                result = eval(code, namespace)
                if code.co_flags & inspect.CO_COROUTINE:  # top-level await: run it
                    result = await result
        except (Exception, SystemExit, KeyboardInterrupt) as exc:
            # exit() or sys.exit() in the console must not stop the node; the frames of
            # this module are left out of the traceback.
            tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
            text = "".join(traceback.format_exception(type(exc), exc, tb))
            return EvalReply(output=output.getvalue(), value="", error=text)
        value = ""
        if is_expression and result is not None:
            namespace["_"] = result
            with contextlib.suppress(Exception):
                value = repr(result)
        return EvalReply(output=output.getvalue(), value=value)
