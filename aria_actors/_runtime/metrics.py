"""Prometheus metrics of the runtime, and the event-loop lag probe.

Nothing here sits on the message path: actors keep plain integer counters and
this collector reads them when Prometheus scrapes. Each node has its own
``CollectorRegistry`` (``node.metrics``), so several nodes in one process do not
collide; expose it with ``prometheus_client.generate_latest(node.metrics)``.

Metrics:

- ``aria_actors``: live actors.
- ``aria_messages_handled_total``: messages handled by all actors.
- ``aria_dead_letters_total``: casts that reached no handler (dead or unhandled).
- ``aria_restarts_total{supervisor,child}``: automatic restarts by supervisors.
- ``aria_mailbox_depth{actor}`` / ``aria_actor_messages_handled_total{actor}``:
  per *named* actor (unnamed ones would make label sets unbounded).
- ``aria_mailbox_depth_max``: the deepest mailbox among all actors.
- ``aria_event_loop_lag_seconds``: the latest lag of the loop (a timer's lateness),
  and ``aria_event_loop_lag_max_seconds`` since the last scrape; a histogram
  ``aria_event_loop_lag_histogram_seconds`` of every probe.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from .node import Node

LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class RuntimeCollector(Collector):
    """Reads the node's counters at scrape time."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def collect(self) -> Iterator[Metric]:
        node = self.node
        yield GaugeMetricFamily("aria_actors", "Live actors on the node.", value=len(node._procs))
        yield CounterMetricFamily(
            "aria_messages_handled", "Messages handled by all actors.", value=node.handled
        )
        yield CounterMetricFamily(
            "aria_dead_letters", "Casts that reached no handler.", value=node.dead_letters
        )
        restarts = CounterMetricFamily(
            "aria_restarts", "Automatic restarts of children.", labels=["supervisor", "child"]
        )
        for (supervisor, child), count in sorted(node.restart_counts.items()):
            restarts.add_metric([supervisor, child], count)
        yield restarts
        depth = GaugeMetricFamily(
            "aria_mailbox_depth", "Messages waiting, per named actor.", labels=["actor"]
        )
        handled = CounterMetricFamily(
            "aria_actor_messages_handled", "Messages handled, per named actor.", labels=["actor"]
        )
        for name, proc in sorted(node._names.items()):
            depth.add_metric([name], len(proc.mailbox) if proc.mailbox else 0)
            handled.add_metric([name], proc.handled)
        yield depth
        yield handled
        deepest = max((len(p.mailbox) for p in node._procs.values() if p.mailbox), default=0)
        yield GaugeMetricFamily(
            "aria_mailbox_depth_max", "The deepest mailbox on the node.", value=deepest
        )
        lag = node.loop_lag
        yield GaugeMetricFamily(
            "aria_event_loop_lag_seconds", "Latest event-loop lag.", value=lag.last
        )
        yield GaugeMetricFamily(
            "aria_event_loop_lag_max_seconds",
            "Largest event-loop lag since the previous scrape.",
            value=lag.take_max(),
        )


class LoopLagProbe:
    """Measures how late a timer fires: the time the loop was busy with other work.

    Every ``interval`` seconds it schedules itself with ``call_later`` and records
    ``actual - expected`` when it runs. No task, nothing on the message path.
    """

    __slots__ = ("expected", "handle", "histogram", "interval", "last", "loop", "max")

    def __init__(self, registry: CollectorRegistry, interval: float) -> None:
        self.interval = interval
        self.last = 0.0
        self.max = 0.0
        self.histogram = Histogram(
            "aria_event_loop_lag_histogram_seconds",
            "Event-loop lag per probe.",
            buckets=LAG_BUCKETS,
            registry=registry,
        )
        self.handle: asyncio.TimerHandle | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.expected = 0.0

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start probing on ``loop`` (no-op when the interval is 0)."""
        if self.interval <= 0:
            return
        self.loop = loop
        self._arm()

    def stop(self) -> None:
        """Stop probing."""
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None

    def take_max(self) -> float:
        """The largest lag since the previous call, and reset it."""
        value, self.max = self.max, 0.0
        return value

    def _arm(self) -> None:
        assert self.loop is not None
        self.expected = self.loop.time() + self.interval
        self.handle = self.loop.call_later(self.interval, self._fire)

    def _fire(self) -> None:
        assert self.loop is not None
        lag = max(0.0, self.loop.time() - self.expected)
        self.last = lag
        if lag > self.max:
            self.max = lag
        self.histogram.observe(lag)
        self._arm()
