"""aria_engine's actors: the planner pool and the domain registry.

``aria_engine.planner`` (:class:`PlannerPoolActor`) answers :class:`PlanRequest` calls
with deferred replies: the handler validates the request (unknown domain, malformed
state or to-do list, bad strategy → the caller gets :class:`BadRequest` at once),
then a task waits for a free slot of the :class:`~.pool.PlanPool` and searches there.
While it waits or searches, the task watches the call: when the caller has gone (its
call timed out, or its task was cancelled) the search is cancelled, which frees the
slot within :data:`~.planner.CHECK_EVERY` expansions. Search outcomes
(``PlanningFailed``, ``BudgetExceeded``, ``DomainError`` ...) go back to the caller and
leave the actor running. At most ``pool_size + max_waiting`` requests are taken (a
request counts from the moment it is accepted until its slot is free again, or until
it left the queue); the rest fail at once with :class:`~.errors.EngineBusy`, whose
message names the limit. A caller whose call times out (or whose task is cancelled)
frees its place in the queue, or its slot once the search noticed. A broken pool (a
worker process died) crashes the actor, and its supervisor restarts it with a fresh
pool.

Every request is counted in :class:`~.metrics.EngineMetrics` (requests, outcomes,
search and queue times); the pool's gauges (size, busy slots, queue depth) follow
each change and are reset when the actor restarts.

``aria_engine.domains`` (:class:`DomainRegistryActor`) lists and describes the loaded
domains (:mod:`.registry`) and hands the Domain objects to the character actors.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Final

from ..._runtime.actor import Actor, DeferredReply, handles
from ..._runtime.messages import ExitReason
from .domain import Domain
from .errors import BudgetExceeded, Cancelled, EngineBusy, EngineError
from .messages import (
    DescribeDomain,
    DomainInfo,
    GetDomain,
    ListDomains,
    PlanRequest,
    PlanResult,
    PoolStats,
    PoolStatus,
)
from .metrics import EngineMetrics, PlanOutcome
from .planner import STRATEGIES
from .pool import Outcome, PlanJob, PlanPool, error_of
from .registry import load_domains, sources_from
from .settings import SERVICE, EngineSettings, load_settings
from .wire import BadRequest, UnknownDomain, state_from_data, todo_from_data

__all__ = [
    "DomainRegistryActor",
    "EngineBusy",
    "PlannerPoolActor",
    "describe_domain",
    "plan_outcome",
]

WATCH_INTERVAL: Final = 0.05
"""Seconds between two looks at whether a waiting or searching request's caller is gone."""


def make_job(settings: EngineSettings, domains: dict[str, Domain], request: PlanRequest) -> PlanJob:
    """The job for ``request``, validated.

    Raises:
        UnknownDomain: the domain is not loaded.
        BadRequest: a malformed state or to-do list, an unknown strategy, a bad budget.
    """
    if request.domain not in domains:
        raise UnknownDomain(request.domain, sorted(domains))
    strategy = request.strategy or settings.strategy
    if strategy not in STRATEGIES:
        raise BadRequest(f"unknown strategy {strategy!r}; one of {', '.join(STRATEGIES)}")
    if request.max_expansions is not None and request.max_expansions < 0:
        raise BadRequest("max_expansions must be 0 or more")
    if request.timeout is not None and request.timeout <= 0:
        raise BadRequest("timeout must be positive")
    state_from_data(request.state)  # raises BadRequest naming the fault
    todo_from_data(request.todo)
    limit = settings.max_expansions
    timeout = settings.timeout
    return PlanJob(
        domain=request.domain,
        state=request.state,
        todo=list(request.todo),
        strategy=strategy,  # type: ignore[arg-type]
        max_expansions=min(limit, request.max_expansions)
        if request.max_expansions is not None
        else limit,
        timeout=min(timeout, request.timeout) if request.timeout is not None else timeout,
        verify_goals=request.verify_goals,
        cost_bound=request.cost_bound,
        trace=request.trace,
    )


class PlannerPoolActor(Actor):
    """``aria_engine.planner``; see the module documentation."""

    async def init(self) -> None:
        self.settings = load_settings(self.node.service_settings(SERVICE))
        sources = sources_from(self.settings)
        self.domains = await self.run_blocking(load_domains, sources)
        self.pool = PlanPool(self.settings.pool, self.settings.pool_size, sources, self.domains)
        self.free: asyncio.Queue[int] = asyncio.Queue()
        for slot in range(self.settings.pool_size):
            self.free.put_nowait(slot)
        self.tasks: set[asyncio.Task[None]] = set()
        self.running = 0
        self.waiting = 0  # accepted, not yet in a slot (counted from the handler on)
        self.completed = 0
        self.failed = 0
        self.cancelled = 0
        self.metrics = EngineMetrics(self.node)
        self.metrics.pool_size.set(self.settings.pool_size)
        self._gauges()

    def _gauges(self) -> None:
        self.metrics.pool_busy.set(self.running)
        self.metrics.pool_waiting.set(self.waiting)

    async def terminate(self, reason: ExitReason) -> None:
        for task in self.tasks:
            task.cancel()
        await self.run_blocking(self.pool.close)

    @handles(PoolStatus)
    def pool_status(self, message: PoolStatus) -> PoolStats:
        return PoolStats(
            kind=self.pool.kind,
            size=self.pool.size,
            running=self.running,
            waiting=self.waiting,
            completed=self.completed,
            failed=self.failed,
            cancelled=self.cancelled,
        )

    def busy_error(self) -> EngineBusy:
        """The error refusing a request while the pool is full."""
        size, queue = self.settings.pool_size, self.settings.max_waiting
        return EngineBusy(
            f"the planner pool is full: {self.running} searching and {self.waiting} waiting "
            f"reach the limit of pool_size + max_waiting = {size} + {queue} = {size + queue} "
            "plan requests; try again later, or raise services.aria_engine.max_waiting "
            "(or pool_size)"
        )

    @handles(PlanRequest)
    def plan(self, message: PlanRequest) -> None:
        reply = self.defer_reply()
        self.metrics.plan_requests.inc()
        if self.running + self.waiting >= self.settings.pool_size + self.settings.max_waiting:
            self.metrics.plan_ended("refused")
            reply.fail(self.busy_error())
            return
        try:
            job = make_job(self.settings, self.domains, message)
        except BadRequest as exc:
            self.metrics.plan_ended("bad_request")
            reply.fail(exc)
            return
        self.waiting += 1  # here, not in the task: the next request must see it
        self._gauges()
        task = self.start_task(self._search(job, reply))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _search(self, job: PlanJob, reply: DeferredReply) -> None:
        queued = time.perf_counter()
        try:
            slot = await self._take_slot(reply)
        finally:
            self.waiting -= 1
            self._gauges()
        if slot is None:
            self.cancelled += 1
            self.metrics.plan_ended("abandoned")
            return
        started = time.perf_counter()
        self.metrics.plan_wait_seconds.observe(started - queued)
        self.running += 1
        self._gauges()
        try:
            future = asyncio.wrap_future(self.pool.submit(job, slot))
            given_up = False
            while True:
                done, _ = await asyncio.wait({future}, timeout=WATCH_INTERVAL)
                if done:
                    break
                if reply.done and not given_up:
                    given_up = True
                    self.pool.cancel(slot)
            try:
                outcome = future.result()
            except BrokenProcessPool as exc:
                self.metrics.plan_ended("failed")
                reply.fail(EngineError(f"the planner pool broke: {exc}"))
                self.stop(ExitReason.from_exception(exc))  # restart with a fresh pool
                return
        finally:
            self.running -= 1
            self._gauges()
            self.free.put_nowait(slot)
        seconds = time.perf_counter() - started
        self.metrics.planning_seconds.labels(domain=job.domain).observe(seconds)
        self.metrics.plan_ended(plan_outcome(job, outcome, given_up))
        self._answer(job, outcome, reply, given_up)

    async def _take_slot(self, reply: DeferredReply) -> int | None:
        """A free slot, or ``None`` once the caller is gone."""
        while not reply.done:
            try:
                async with asyncio.timeout(WATCH_INTERVAL):
                    return await self.free.get()
            except TimeoutError:
                continue
        return None

    def _answer(self, job: PlanJob, outcome: Outcome, reply: DeferredReply, given_up: bool) -> None:
        if given_up:
            self.cancelled += 1
        if outcome.error is not None:
            self.failed += not given_up
            reply.fail(error_of(outcome))
            return
        self.completed += 1
        assert outcome.final_state is not None
        reply.reply(
            PlanResult(
                domain=job.domain,
                strategy=job.strategy,
                actions=list(outcome.actions),
                cost=outcome.cost,
                expansions=outcome.expansions,
                optimal=outcome.optimal,
                final_state=outcome.final_state,
                search=outcome.search,
            )
        )


def plan_outcome(job: PlanJob, outcome: Outcome, given_up: bool) -> PlanOutcome:
    """How a search that ran ended, for :class:`~.metrics.EngineMetrics`.

    A ``BudgetExceeded`` within the expansion budget was the deadline's doing.
    """
    if given_up or outcome.error == Cancelled.__name__:
        return "abandoned"
    if outcome.error is None:
        return "succeeded"
    if outcome.error == BudgetExceeded.__name__:
        return "timed_out" if outcome.expansions <= job.max_expansions else "budget_exceeded"
    return "failed"


def describe_domain(domain: Domain) -> DomainInfo:
    """What :class:`DescribeDomain` answers for ``domain``."""
    costs: dict[str, float | None] = {
        name: None if callable(domain.costs.get(name, 1.0)) else float(domain.costs.get(name, 1.0))  # type: ignore[arg-type]
        for name in domain.actions
    }

    def names(methods: list[Any]) -> list[str]:
        return [getattr(m, "__name__", repr(m)) for m in methods]

    return DomainInfo(
        name=domain.name,
        actions=costs,
        commands=list(domain.commands),
        tasks={k: names(v) for k, v in domain.task_methods.items()},
        unigoals={k: names(v) for k, v in domain.unigoal_methods.items()},
        multigoal_methods=names(domain.multigoal_methods),
        text=domain.describe(),
    )


class DomainRegistryActor(Actor):
    """``aria_engine.domains``: the loaded domains, by name."""

    async def init(self) -> None:
        settings = load_settings(self.node.service_settings(SERVICE))
        self.domains = await self.run_blocking(load_domains, sources_from(settings))

    def _domain(self, name: str) -> Domain:
        domain = self.domains.get(name)
        if domain is None:
            raise UnknownDomain(name, sorted(self.domains))
        return domain

    @handles(ListDomains)
    def list_domains(self, message: ListDomains) -> list[DomainInfo]:
        return [describe_domain(d) for d in self.domains.values()]

    @handles(DescribeDomain)
    def describe(self, message: DescribeDomain) -> None:
        reply = self.defer_reply()
        try:
            reply.reply(describe_domain(self._domain(message.name)))
        except UnknownDomain as exc:
            reply.fail(exc)

    @handles(GetDomain)
    def get_domain(self, message: GetDomain) -> None:
        reply = self.defer_reply()
        try:
            reply.reply(self._domain(message.name))
        except UnknownDomain as exc:
            reply.fail(exc)
