"""Running plan searches off the event loop: in worker processes or threads.

:class:`PlanPool` owns ``size`` *slots*, one per worker; a search runs in a slot and
only ever as many searches are submitted as there are slots, so a submitted search
starts at once. Each slot has a cancellation flag (a byte in shared memory for
processes, in a ``bytearray`` for threads) that the search's
:class:`~.planner.CancelToken` reads: :meth:`PlanPool.cancel` makes the search raise
``Cancelled`` within :data:`~.planner.CHECK_EVERY` expansions, and the slot is free
again when it has.

A worker process loads its domains once, from the same :class:`~.registry.DomainSource`
list as the node (:func:`_init_worker`). Searches never raise across the pool: they
return an :class:`Outcome` (a plan, or the error's class name and message), so that
exceptions with extra fields survive pickling and a domain's own bug (an exception in
an action) is reported as a ``DomainError`` naming it (a read of a variable the state
lacks names the state and the variable).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Mapping, MutableSequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Final

from .domain import Domain
from .errors import (
    BudgetExceeded,
    Cancelled,
    DomainError,
    EngineError,
    GoalNotAchieved,
    MalformedReturn,
    PlanningFailed,
    UnknownTodoItem,
)
from .planner import CancelToken, Planner, Strategy
from .planner_spans import SearchLog
from .registry import DomainSource, load_domains
from .settings import PoolKind
from .state import missing_variable_message
from .wire import BadRequest, state_from_data, state_to_data, todo_from_data

__all__ = ["Outcome", "PlanJob", "PlanPool", "error_of", "run_job"]


@dataclass(frozen=True)
class PlanJob:
    """One search: validated wire data and the budgets to use."""

    domain: str
    state: dict[str, Any]
    todo: list[Any]
    strategy: Strategy
    max_expansions: int
    timeout: float
    verify_goals: bool
    cost_bound: float | None
    trace: bool = False


SEARCH_EVENTS: Final = 20_000
"""The most search events a traced job ships back (a longer log is dropped whole)."""


@dataclass(frozen=True)
class Outcome:
    """What a search ended with: ``error`` is ``None`` and the plan fields are set, or
    ``error`` is the name of an :class:`EngineError` class and ``message`` its text."""

    error: str | None = None
    message: str = ""
    expansions: int = 0
    actions: tuple[tuple[Any, ...], ...] = ()
    cost: float = 0.0
    optimal: bool = False
    final_state: dict[str, Any] | None = None
    search: list[list[Any]] | None = None


_ERRORS: dict[str, type[EngineError]] = {
    cls.__name__: cls
    for cls in (
        PlanningFailed,
        BudgetExceeded,
        Cancelled,
        DomainError,
        UnknownTodoItem,
        MalformedReturn,
        GoalNotAchieved,
        BadRequest,
    )
}


def error_of(outcome: Outcome) -> EngineError:
    """The exception an error outcome stands for."""
    assert outcome.error is not None
    cls = _ERRORS.get(outcome.error, DomainError)
    if cls in (PlanningFailed, BudgetExceeded, Cancelled):
        return cls(outcome.message, outcome.expansions)
    return cls(outcome.message)


class _SlotToken(CancelToken):
    """A cancellation token reading one slot's flag."""

    def __init__(self, flags: MutableSequence[int], slot: int) -> None:
        super().__init__()
        self._flags = flags
        self._slot = slot

    @property
    def cancelled(self) -> bool:
        return bool(self._flags[self._slot])


def run_job(
    domains: Mapping[str, Domain], job: PlanJob, flags: MutableSequence[int], slot: int
) -> Outcome:
    """Search ``job`` in ``domains`` (in whatever thread or process calls it)."""
    domain = domains.get(job.domain)
    if domain is None:
        return Outcome("BadRequest", f"domain {job.domain!r} is not loaded in this worker")
    try:
        state = state_from_data(job.state, f"{job.domain}_request")
        todo = todo_from_data(job.todo)
        planner = Planner(
            domain,
            job.strategy,
            max_expansions=job.max_expansions,
            timeout=job.timeout,
            verify_goals=job.verify_goals,
            cost_bound=job.cost_bound,
        )
        log = SearchLog(SEARCH_EVENTS) if job.trace else None
        plan = planner.find_plan(state, todo, cancel=_SlotToken(flags, slot), tracer=log)
        final = state_to_data(plan.final_state)
    except (PlanningFailed, BudgetExceeded, Cancelled) as exc:
        return Outcome(type(exc).__name__, str(exc), exc.expansions)
    except EngineError as exc:
        return Outcome(type(exc).__name__, str(exc))
    except Exception as exc:  # the domain's code failed on this state: a domain error
        missing = missing_variable_message(exc) if isinstance(exc, AttributeError) else None
        if missing is not None:
            return Outcome(
                "DomainError",
                f"domain {job.domain!r} read a variable the state lacks: {missing}",
            )
        return Outcome(
            "DomainError",
            f"domain {job.domain!r} raised {type(exc).__name__}: {exc} (is the state "
            "missing a variable the domain reads?)",
        )
    return Outcome(
        None,
        expansions=plan.expansions,
        actions=plan.actions,
        cost=plan.cost,
        optimal=plan.optimal,
        final_state=final,
        search=None if log is None else log.events,
    )


# -- the worker process side ------------------------------------------------------------------

_worker_domains: dict[str, Domain] = {}
_worker_flags: MutableSequence[int] = bytearray()


def _init_worker(sources: list[DomainSource], flags: MutableSequence[int]) -> None:
    """Load the node's domains into this worker process, once."""
    global _worker_flags
    _worker_domains.update(load_domains(sources))
    _worker_flags = flags


def _run_in_worker(job: PlanJob, slot: int) -> Outcome:
    return run_job(_worker_domains, job, _worker_flags, slot)


# -- the pool ------------------------------------------------------------------------------


class PlanPool:
    """``size`` slots of searches in worker processes or threads (see the module doc).

    The caller owns slot allocation: it submits to a slot only when that slot's
    previous search has finished.
    """

    def __init__(
        self,
        kind: PoolKind,
        size: int,
        sources: list[DomainSource],
        domains: Mapping[str, Domain],
    ) -> None:
        self.kind = kind
        self.size = size
        self._domains = domains
        self._flags: MutableSequence[int]
        self._executor: Executor
        if kind == "process":
            context = multiprocessing.get_context("spawn")  # no fork of a running loop
            self._flags = context.RawArray("b", size)
            self._executor = ProcessPoolExecutor(
                max_workers=size,
                mp_context=context,
                initializer=_init_worker,
                initargs=(sources, self._flags),
            )
        else:
            self._flags = bytearray(size)
            self._executor = ThreadPoolExecutor(
                max_workers=size, thread_name_prefix="aria_engine-planner"
            )

    def submit(self, job: PlanJob, slot: int) -> Future[Outcome]:
        """Start ``job`` in ``slot`` (which must be free)."""
        self._flags[slot] = 0
        if self.kind == "process":
            return self._executor.submit(_run_in_worker, job, slot)
        return self._executor.submit(run_job, self._domains, job, self._flags, slot)

    def cancel(self, slot: int) -> None:
        """Make the search in ``slot`` stop soon (it raises ``Cancelled``)."""
        self._flags[slot] = 1

    def close(self) -> None:
        """Cancel every search and wait for the workers to end (blocking)."""
        for slot in range(self.size):
            self._flags[slot] = 1
        self._executor.shutdown(wait=True, cancel_futures=True)
