"""The daemon's logging: structlog, JSON lines or coloured key=value, plus the buffer.

``auto`` renders JSON lines when stdout is not a terminal (a service manager,
journald, a pipe) and readable coloured key=value in a terminal. The console's
:class:`LogBuffer` sits in the chain before the renderer, so ``aria-console logs``
sees every event the node logs. :func:`configure_logging` can be called again
(``SIGHUP``) to change the level or the format live.
"""

from __future__ import annotations

import logging
import sys

import structlog

from .._runtime.config import LogSection
from ..console.logbuffer import LogBuffer


def wants_json(format: str) -> bool:
    """JSON for ``json``, key=value for ``console``, and for ``auto``: JSON unless a tty."""
    if format == "json":
        return True
    if format == "console":
        return False
    return not sys.stdout.isatty()


def configure_logging(section: LogSection, buffer: LogBuffer | None) -> None:
    """Configure structlog for the daemon (process-wide)."""
    json_lines = wants_json(section.format)
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if json_lines
        else structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty())
    )
    processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if buffer is not None:
        processors.append(buffer)
    processors.append(renderer)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[section.level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=False,
    )
