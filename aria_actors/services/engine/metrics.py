"""aria_engine's Prometheus metrics, in the node's registry (``node.metrics``).

The actors ask for them on every (re)start (:meth:`~aria_actors.Node.metric` shares
them), so counters keep counting across restarts; the gauges are set again by the
actor that owns them when it starts. They are exposed like every other metric of the
node (the console's ``metrics``, ``prometheus_client.generate_latest(node.metrics)``).

=============================================  =========  ====================================
metric                                         kind       what
=============================================  =========  ====================================
``aria_engine_plan_requests_total``            counter    plan requests the pool received
``aria_engine_plans_total{outcome}``           counter    how they ended (see :data:`PlanOutcome`)
``aria_engine_planning_seconds{domain}``       histogram  search time in a worker slot
``aria_engine_plan_wait_seconds``              histogram  time waiting for a free slot
``aria_engine_pool_size``                      gauge      worker slots
``aria_engine_pool_busy``                      gauge      slots searching now
``aria_engine_pool_waiting``                   gauge      requests queued for a slot now
``aria_engine_characters_active``              gauge      character actors running now
``aria_engine_acting_runs_total{outcome}``     counter    ``Achieve`` runs: ``done``/``failed``
``aria_engine_commands_total{outcome}``        counter    commands executed: ``ok``/``failed``
``aria_engine_replans_total``                  counter    plans made again during runs
``aria_engine_character_save_errors_total``    counter    write-throughs that failed
``aria_engine_character_load_errors_total``    counter    stored rows that could not be read
=============================================  =========  ====================================
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, Literal

from prometheus_client import Counter, Gauge, Histogram

from ..._runtime.node import Node

__all__ = ["PLANNING_BUCKETS", "EngineMetrics", "PlanOutcome"]

PLANNING_BUCKETS: Final = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

PlanOutcome = Literal[
    "succeeded", "failed", "budget_exceeded", "timed_out", "abandoned", "refused", "bad_request"
]
"""How a plan request ended: ``succeeded`` (a plan); ``failed`` (no plan exists, the
domain's code failed, or the pool broke); ``budget_exceeded`` (the expansion budget ran
out); ``timed_out`` (the search's deadline ran out); ``abandoned`` (the caller stopped
waiting — its call timed out or was cancelled — before the answer); ``refused`` (the
pool was full: ``EngineBusy``); ``bad_request`` (malformed, unknown domain)."""


class EngineMetrics:
    """aria_engine's metrics (see the module documentation)."""

    def __init__(self, node: Node) -> None:
        self.plan_requests = node.metric(
            Counter, "aria_engine_plan_requests", "Plan requests the planner pool received."
        )
        self.plans = node.metric(
            Counter,
            "aria_engine_plans",
            "Plan requests by how they ended: succeeded, failed, budget_exceeded, "
            "timed_out, abandoned, refused, bad_request.",
            labelnames=["outcome"],
        )
        self.planning_seconds = node.metric(
            Histogram,
            "aria_engine_planning_seconds",
            "Seconds a plan search took in a worker slot, by domain.",
            labelnames=["domain"],
            buckets=PLANNING_BUCKETS,
        )
        self.plan_wait_seconds = node.metric(
            Histogram,
            "aria_engine_plan_wait_seconds",
            "Seconds a plan request waited for a free worker slot.",
            buckets=PLANNING_BUCKETS,
        )
        self.pool_size = node.metric(
            Gauge, "aria_engine_pool_size", "Worker slots of the planner pool."
        )
        self.pool_busy = node.metric(
            Gauge, "aria_engine_pool_busy", "Worker slots searching a plan now."
        )
        self.pool_waiting = node.metric(
            Gauge, "aria_engine_pool_waiting", "Plan requests waiting for a worker slot now."
        )
        self.characters_active = node.metric(
            Gauge, "aria_engine_characters_active", "Character actors running now."
        )
        self.acting_runs = node.metric(
            Counter,
            "aria_engine_acting_runs",
            "Achieve runs of characters by outcome: done, failed.",
            labelnames=["outcome"],
        )
        self.commands = node.metric(
            Counter,
            "aria_engine_commands",
            "Commands characters executed, by outcome: ok, failed.",
            labelnames=["outcome"],
        )
        self.replans = node.metric(
            Counter, "aria_engine_replans", "Plans characters had to make again during runs."
        )
        self.save_errors = node.metric(
            Counter,
            "aria_engine_character_save_errors",
            "Writes of a character's state to aria_data that failed.",
        )
        self.load_errors = node.metric(
            Counter,
            "aria_engine_character_load_errors",
            "Stored characters whose row could not be decoded.",
        )

    def plan_ended(self, outcome: PlanOutcome) -> None:
        """Count one plan request that ended with ``outcome``."""
        self.plans.labels(outcome=outcome).inc()

    def count_characters(self, count: Callable[[], int]) -> None:
        """Make ``aria_engine_characters_active`` read ``count()`` at every scrape."""
        self.characters_active.set_function(count)
