"""``aria-node``: run one node in the foreground until SIGTERM or SIGINT.

This is the runtime-only daemon: it starts a node, boots whatever services
``supervisors/*.toml`` defines (none are shipped yet, and it says so instead of
pretending), and stops in reverse boot order on SIGTERM/SIGINT with exit status 0,
or with status 1 when a permanent service's tree died for good.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

import structlog

from ._runtime.config import NodeConfig, load_node_config
from ._runtime.errors import AriaError
from ._runtime.loader import load_services
from ._runtime.loops import loop_factory, loop_name
from ._runtime.node import Node
from .resources import config_dir, supervisors_dir


def configure_logging(json_logs: bool, level: str = "info") -> None:
    """JSON lines on stdout under a service manager, coloured key=value in a terminal."""
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if json_logs
        else structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=True,
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="aria-node", description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="aria", help="node name (default: aria)")
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="node configuration TOML (default: the shipped config/default.toml)",
    )
    parser.add_argument(
        "--supervisors",
        type=Path,
        default=None,
        help="directory of service TOML files (default: the shipped supervisors/)",
    )
    parser.add_argument(
        "--service",
        action="append",
        dest="services",
        default=None,
        help="boot only this service and what it requires (repeatable)",
    )
    parser.add_argument("--log-format", choices=["auto", "json", "console"], default="auto")
    parser.add_argument("--log-level", default="info")
    return parser.parse_args(argv)


EXIT_START_FAILED = 2
"""Exit status when the node cannot start (bad configuration, a service failed to start);
1 is kept for "a permanent service died", so a service manager can tell them apart."""


async def run(args: argparse.Namespace, config: NodeConfig, directory: Path) -> int:
    """Run the node until a signal or a fatal service exit; return the exit status.

    Raises:
        AriaError: the supervision trees cannot be read.
    """
    log = structlog.get_logger("aria_node")
    services = load_services(directory)
    async with Node(name=args.name, config=config) as node:
        loop = asyncio.get_running_loop()
        stopping: list[asyncio.Task[None]] = []
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, lambda: stopping.append(loop.create_task(node.stop())))
        try:
            booted = await node.boot(services, only=args.services) if services else []
        except AriaError as exc:
            if not node.is_running:  # a signal arrived during the boot: an orderly stop
                return await node.wait_stopped()
            log.error("node_failed", node=node.name, error=str(exc))
            node.exit_status = EXIT_START_FAILED
            return EXIT_START_FAILED
        ready: dict[str, object] = {"node": node.name, "event_loop": loop_name(loop)}
        if booted:
            log.info("node_ready", services=booted, **ready)
        else:
            note = f"no services are defined in {directory} yet; running the runtime only"
            log.info("node_ready", services=[], note=note, **ready)
        return await node.wait_stopped()


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``aria-node``."""
    args = parse_args(argv)
    json_logs = args.log_format == "json" or (args.log_format == "auto" and not sys.stdout.isatty())
    configure_logging(json_logs, args.log_level)
    try:
        config = load_node_config(
            args.config if args.config is not None else config_dir() / "default.toml"
        )
        directory = args.supervisors if args.supervisors is not None else supervisors_dir()
        with asyncio.Runner(loop_factory=loop_factory(config.runtime.event_loop)) as runner:
            status = runner.run(run(args, config, directory))
    except AriaError as exc:
        structlog.get_logger("aria_node").error("node_failed", error=str(exc))
        status = EXIT_START_FAILED
    sys.exit(status)
