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

from ._runtime.config import load_node_config
from ._runtime.errors import AriaError
from ._runtime.loader import load_services
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


async def run(args: argparse.Namespace) -> int:
    """Run the node until a signal or a fatal service exit; return the exit status."""
    log = structlog.get_logger("aria_node")
    directory = args.supervisors if args.supervisors is not None else supervisors_dir()
    config = load_node_config(
        args.config if args.config is not None else config_dir() / "default.toml"
    )
    services = load_services(directory)
    async with Node(name=args.name, config=config) as node:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, lambda: loop.create_task(node.stop()))
        if services:
            booted = await node.boot(services, only=args.services)
            log.info("node_ready", node=node.name, services=booted)
        else:
            log.info(
                "node_ready",
                node=node.name,
                services=[],
                note=f"no services are defined in {directory} yet; running the runtime only",
            )
        return await node.wait_stopped()


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``aria-node``."""
    args = parse_args(argv)
    json_logs = args.log_format == "json" or (args.log_format == "auto" and not sys.stdout.isatty())
    configure_logging(json_logs, args.log_level)
    try:
        status = asyncio.run(run(args))
    except AriaError as exc:
        structlog.get_logger("aria_node").error("node_failed", error=str(exc))
        status = 2
    sys.exit(status)
