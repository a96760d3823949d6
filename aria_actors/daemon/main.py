"""``aria-node``: run one node in the foreground.

The node reads its configuration (``--config``: a file, or the name of a shipped
one: ``default``, ``dev``, ``test``, ``prod``; then ``ARIA_<SECTION>__<KEY>``
environment overrides; then the command-line options), boots the services of
``supervisors/*.toml`` in cold-boot order and listens on its control socket for
``aria-console``.

Signals: SIGTERM or SIGINT stop the node in reverse boot order (exit status 0); a
second SIGINT stops it at once (every actor cancelled, status 130); SIGHUP reloads
the configuration (what can change live changes, the rest is reported).
Exit status 1: a permanent service's tree died for good (the service manager
restarts the node); 2: the node could not start (the ``node_failed`` event says why).

Under systemd (``Type=notify``): ``STATUS=`` lines while booting, ``READY=1`` once
every service is up, ``STOPPING=1``, ``RELOADING=1``, and watchdog pings when
``WATCHDOG_USEC`` is set.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Coroutine, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import msgspec
import structlog

from .._runtime.config import LogSection, NodeConfig, load_node_config
from .._runtime.errors import AriaError, ConfigError
from .._runtime.loader import load_services
from .._runtime.loops import loop_factory, loop_name
from .._runtime.node import Node
from .._runtime.specs import ServiceSpec
from ..console.commands import Commands
from ..console.cookie import load_or_create_cookie
from ..console.logbuffer import LogBuffer
from ..console.protocol import PROTOCOL_VERSION
from ..console.server import ControlServer
from ..notify import SystemdNotifier, Watchdog, watchdog_interval
from ..paths import (
    COOKIE_NAME,
    NODE_FILE_NAME,
    ensure_private_dir,
    runtime_dir,
    socket_path,
    state_dir,
)
from ..resources import config_dir, supervisors_dir
from .logs import configure_logging

EXIT_START_FAILED: Final = 2
"""Exit status when the node cannot start (bad configuration, a service failed to
start); 1 is kept for "a permanent service died", so a service manager can tell them apart."""
EXIT_HALTED: Final = 130
SHIPPED_CONFIGS: Final = ("default", "dev", "test", "prod")

logger = structlog.get_logger("aria_node")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="aria-node", description="Run one Aria node in the foreground."
    )
    parser.add_argument(
        "--config",
        default="default",
        help="configuration file, or a shipped one: default, dev, test, prod (default: default)",
    )
    parser.add_argument("--name", help="node name (node.name)")
    parser.add_argument("--state-dir", help="state directory (node.state_dir)")
    parser.add_argument("--runtime-dir", help="runtime directory (node.runtime_dir)")
    parser.add_argument("--supervisors", help="directory of service files (node.supervisors)")
    parser.add_argument(
        "--service",
        action="append",
        dest="services",
        help="boot only this service and what it requires (repeatable; node.services)",
    )
    parser.add_argument("--log-format", choices=["auto", "json", "console"])
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error", "critical"])
    return parser.parse_args(argv)


def config_path(choice: str) -> Path:
    """The file for ``--config``: a path, or the name of a shipped configuration."""
    if choice in SHIPPED_CONFIGS:
        return config_dir() / f"{choice}.toml"
    return Path(choice).expanduser()


def read_config(args: argparse.Namespace, environ: Mapping[str, str]) -> NodeConfig:
    """The file, then the environment, then the command line.

    Raises:
        ConfigError: naming the file and key, or the variable or option.
    """
    config = load_node_config(config_path(args.config), environ)
    node = config.node
    changes: dict[str, object] = {}
    for option, key in (
        ("name", "name"),
        ("state_dir", "state_dir"),
        ("runtime_dir", "runtime_dir"),
        ("supervisors", "supervisors"),
    ):
        value = getattr(args, option)
        if value is not None:
            changes[key] = value
    if args.services:
        changes["services"] = tuple(args.services)
    try:
        if changes:
            node = msgspec.structs.replace(node, **changes)
        log = config.log
        if args.log_format is not None:
            log = msgspec.structs.replace(log, format=args.log_format)
        if args.log_level is not None:
            log = msgspec.structs.replace(log, level=args.log_level)
    except ValueError as exc:
        raise ConfigError(f"command line: {exc}") from exc
    return msgspec.structs.replace(config, node=node, log=log)


class Daemon:
    """One node's life: start, serve, reload, stop."""

    def __init__(
        self,
        args: argparse.Namespace,
        config: NodeConfig,
        environ: Mapping[str, str],
        buffer: LogBuffer | None,
    ) -> None:
        self.args = args
        self.config = config
        self.environ = environ
        self.buffer = buffer
        self.notifier = SystemdNotifier.from_environ(environ)
        self.interrupts = 0
        self.tasks: set[asyncio.Task[None]] = set()
        self.node = Node(name=config.node.name, config=config)
        self.commands: Commands | None = None
        self.server: ControlServer | None = None
        self.ready = False  # READY=1 was sent (a reload may send it again only then)
        self.stopped = False  # STOPPING=1 was sent

    async def run(self) -> int:
        """Run the node until it stops; its exit status.

        Raises:
            AriaError: it could not start (before the node came up).
        """
        config = self.config
        state = ensure_private_dir(state_dir(config, self.environ), "state directory")
        runtime = ensure_private_dir(runtime_dir(config, self.environ), "runtime directory")
        self.node.state_dir = state  # where services keep their files
        cookie = load_or_create_cookie(state / COOKIE_NAME)
        directory = Path(config.node.supervisors) if config.node.supervisors else supervisors_dir()
        services = load_services(directory)
        watchdog: Watchdog | None = None
        node_file = state / NODE_FILE_NAME
        wrote_node_file = False
        async with self.node as node:
            self.install_signals(node)
            node.when_stopping(self.stopping)
            try:
                if config.console.enabled:
                    self.commands = Commands(node, self.buffer, self.eval_enabled, self.shutdown)
                    server = ControlServer(
                        self.commands, cookie, socket_path(runtime), config.console.max_frame
                    )
                    await server.start()  # refuses when a live node answers on the socket
                    self.server = server
                    self.write_node_file(node_file, server.path)
                    wrote_node_file = True
                interval = watchdog_interval(self.environ) if self.notifier else None
                if self.notifier is not None and interval is not None:
                    watchdog = Watchdog(self.notifier, interval)
                    watchdog.start(asyncio.get_running_loop())
                await self.boot(node, services, directory)
                return await node.wait_stopped()
            except AriaError as exc:
                if not node.is_running:  # a signal arrived during the start: an orderly stop
                    return await node.wait_stopped()
                logger.error("node_failed", node=node.name, error=str(exc))
                node.exit_status = EXIT_START_FAILED
                return EXIT_START_FAILED
            finally:
                if watchdog is not None:
                    watchdog.stop()
                await node.stop()
                if self.server is not None:
                    await self.server.stop()
                if wrote_node_file:  # never another live node's
                    with contextlib.suppress(FileNotFoundError):
                        node_file.unlink()
                if self.notifier is not None:
                    self.notifier.close()

    async def boot(self, node: Node, services: list[ServiceSpec], directory: Path) -> None:
        """Boot the services, telling systemd how far it got, then announce readiness."""
        notifier = self.notifier

        def progress(name: str, index: int, total: int) -> None:
            if notifier is not None:
                notifier.status(f"starting {name} ({index}/{total})")

        only = self.config.node.services or None
        booted = await node.boot(services, only=only, progress=progress) if services else []
        if not node.is_running:
            return
        attach = f"aria-console --node {node.name}"
        if self.config.node.state_dir or self.environ.get("STATE_DIRECTORY"):
            attach = f"aria-console --state-dir {state_dir(self.config, self.environ)}"
        fields: dict[str, object] = {
            "node": node.name,
            "services": booted,
            "event_loop": loop_name(asyncio.get_running_loop()),
            "attach": attach if self.config.console.enabled else "console disabled",
        }
        if not services:
            fields["note"] = f"no services are defined in {directory} yet; running the runtime only"
        logger.info("node_ready", **fields)
        if notifier is not None and not self.stopped:
            notifier.ready(f"running {len(booted)} service(s)")
        self.ready = True

    # -- signals --------------------------------------------------------------------------

    def install_signals(self, node: Node) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.shutdown)
        loop.add_signal_handler(signal.SIGINT, self.interrupt)
        loop.add_signal_handler(signal.SIGHUP, self.reload)

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def shutdown(self) -> None:
        """An orderly stop in reverse boot order."""
        self.spawn(self.node.stop())

    def interrupt(self) -> None:
        """Ctrl-C: the first stops in order, the second at once."""
        self.interrupts += 1
        if self.interrupts == 1:
            logger.info("interrupt", note="stopping in order; Ctrl-C again to stop at once")
            self.shutdown()
        else:
            self.node.halt(EXIT_HALTED)

    def stopping(self) -> None:
        self.stopped = True
        if self.notifier is not None:
            self.notifier.stopping("stopping services in reverse boot order")

    def eval_enabled(self) -> bool:
        return self.config.console.eval

    def reload(self) -> None:
        """SIGHUP: read the configuration again and apply what can change live.

        systemd hears RELOADING=1 and then READY=1 only once the node announced it
        was ready (a reload during the boot must not declare it ready early), and
        not while it is stopping.
        """
        tell = self.notifier if (self.ready and not self.stopped) else None
        if tell is not None:
            tell.reloading("reloading the configuration")
        try:
            new = read_config(self.args, self.environ)
        except AriaError as exc:
            logger.error("config_reload_failed", error=str(exc), kept="the old configuration")
            if tell is not None:
                tell.reloaded("reload failed; running on the old configuration")
            return
        old_log = self.config.log
        applied, restart = self.apply(new)
        logger.info("config_reloaded", applied=applied, needs_restart=restart)
        if new.log != old_log:  # last, so the event above is seen under the old settings
            configure_logging(new.log, self.buffer)
        if tell is not None:
            tell.reloaded(f"reloaded ({len(applied)} change(s) applied)")

    def apply(self, new: NodeConfig) -> tuple[list[str], list[str]]:
        """Switch to ``new``; the keys applied live, and those that need a restart."""
        old = self.config
        applied = [f"runtime.{key}" for key in self.node.apply_runtime_config(new.runtime)]
        restart = [f"runtime.{k}" for k in changed(old.runtime, new.runtime) if k == "event_loop"]
        restart += [f"node.{key}" for key in changed(old.node, new.node)]
        live_console = {"eval", "log_buffer", "max_frame"}
        for key in changed(old.console, new.console):
            (applied if key in live_console else restart).append(f"console.{key}")
        if new.console.log_buffer != old.console.log_buffer:
            self.resize_log_buffer(new.console.log_buffer, old.log)
        if self.server is not None:
            self.server.max_frame = new.console.max_frame
        applied += [f"log.{key}" for key in changed(old.log, new.log)]
        self.config = msgspec.structs.replace(
            new,
            node=old.node,
            runtime=self.node.config.runtime,
            console=msgspec.structs.replace(new.console, enabled=old.console.enabled),
        )
        return applied, restart

    def resize_log_buffer(self, size: int, log: LogSection) -> None:
        """Keep ``size`` recent events for ``logs`` (0: none), from now on."""
        if size and self.buffer is None:
            self.buffer = LogBuffer(size)
            configure_logging(log, self.buffer)
        elif size and self.buffer is not None:
            self.buffer.resize(size)
        elif not size and self.buffer is not None:
            self.buffer = None
            configure_logging(log, None)
        if self.commands is not None:
            self.commands.logs = self.buffer

    def write_node_file(self, path: Path, socket: Path) -> None:
        """``node.json``: how a console finds this node from its state directory."""
        document = {
            "node": self.config.node.name,
            "pid": os.getpid(),
            "socket": str(socket),
            "protocol": PROTOCOL_VERSION,
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(document) + "\n", encoding="utf-8")
        os.chmod(temporary, 0o600)
        temporary.replace(path)


def changed(old: msgspec.Struct, new: msgspec.Struct) -> list[str]:
    """The fields of two structs of one type whose values differ."""
    return [
        field.name
        for field in msgspec.structs.fields(type(old))
        if getattr(old, field.name) != getattr(new, field.name)
    ]


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``aria-node``."""
    args = parse_args(argv)
    environ = dict(os.environ)
    configure_logging(LogSection(format=args.log_format or "auto"), None)
    try:
        config = read_config(args, environ)
        buffer = LogBuffer(config.console.log_buffer) if config.console.log_buffer else None
        configure_logging(config.log, buffer)
        daemon = Daemon(args, config, environ, buffer)
        with asyncio.Runner(loop_factory=loop_factory(config.runtime.event_loop)) as runner:
            status = runner.run(daemon.run())
    except AriaError as exc:
        logger.error("node_failed", error=str(exc))
        status = EXIT_START_FAILED
    sys.exit(status)
