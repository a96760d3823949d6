"""Acting: carry out a plan with commands, replanning from what is observed (lazy lookahead).

:func:`act` (or :class:`Acting` for a run that also takes world events) follows GTPyhop's
``run_lazy_lookahead``: plan from the observed state, execute the plan's actions with
their *commands* (``c_<action>``) one at a time, and when a command fails, plan again
from the state observed after the failure. Unlike GTPyhop's, commands are ``async``
(usually calls to actors, see :class:`ActorExecutor`), each bounded by
``command_timeout``, and acting also adapts to changes it did not cause.

Behaviour, step by step
-----------------------
1. **Observe.** ``state_source`` is the initial :class:`~.state.State`, or an async
   callable returning the observed state, called before the first plan and before
   every replan.
2. **Plan** with the planner (in a worker thread, so a long search never stalls the
   loop; cancelling acting cancels the search through its token) — or, when acting is
   given a ``plan`` function instead of a planner (:data:`PlanFunction`, e.g. a call
   to a planner pool actor), by awaiting ``plan(state, todo)`` (no thread of its own;
   cancelling acting cancels that call). An empty plan means done. Planning errors
   (an :class:`~.errors.EngineError`) end acting with :class:`~.acting_errors.NoPlan`
   (cause chained); a :class:`~.errors.DomainError` propagates unchanged (a domain
   bug), as does any other exception the ``plan`` function raises.
3. **Execute** each action ``(name, *args)`` as ``await executor("c_"+name, args,
   state)`` under ``asyncio.timeout(command_timeout)``. The executor returns the
   observed :class:`State` (success), ``True`` (success as predicted: the action model
   is applied), or ``False``/``None`` (the command reports failure); it may raise
   :class:`~.acting_errors.CommandError` (failure, with the observed state if known) or
   any other ``Exception`` (failure). A timeout is a failure too. Two exceptions are not
   failures but bugs and propagate at once: :class:`~.acting_errors.UnknownCommand`
   and :class:`~.errors.DomainError`.
4. **Replan on failure**, from the state observed after it (re-observed through
   ``state_source`` if it is a callable; otherwise the state the failure reported, or
   the state before the command). At most ``max_replans`` replans happen in a run;
   the failure after that raises :class:`~.acting_errors.ReplanLimitExceeded` naming
   the command, its arguments and why it failed.
5. **Adapt to events.** :meth:`Acting.notify` (or the ``events`` queue) delivers world
   changes — a whole observed State, or facts ``(var, arg, value)`` — at any time;
   they are applied at the next step boundary (after the command in flight, on top of
   its result). Whenever the state differs from the one the plan predicted for that
   step (an event, or a command whose result differs from its model), the remaining
   actions are replayed on a copy of the state; acting replans only if one of them is
   no longer applicable (this counts against ``max_replans``).
6. **Finish** when the last command succeeds — or, with ``confirm=True`` (GTPyhop's
   behaviour, for goal to-do lists), only when planning again from the final state
   yields an empty plan.

Cancellation: cancelling the task running acting stops it at once — the command in
flight is cancelled (the executor sees ``CancelledError``), its span and every open
span end ``cancelled``, and ``CancelledError`` propagates. Nothing is swallowed.

Spans (one trace per run, see :mod:`.spans`): ``acting`` (root) → ``plan`` / ``replan``
(from planning until the plan is finished or abandoned; attributes ``reason``,
``actions``, ``expansions``, ``cost``) → the plan's actions, then one ``command`` span
per command executed (outcome ``ok``/``failed``/``timeout``/``cancelled``); ``event``
spans (under the root) record each applicability check after an event or deviation.

The plan's actions appear exactly once, in one of three ways:

- **Searched here, traced** (a :class:`Planner` whose search reported its steps to
  the :class:`~.spans.PlannerSpanTracer` acting gives it, ``tracer.started > 0``): the
  search's own spans — ``task`` spans with their ``method`` children and the
  ``action`` spans tried under them. The plan is the ``ok`` action spans of that
  subtree, in id order; everything the search abandoned ends ``failed`` (attribute
  ``failure``). No predicted action spans are recorded: they would duplicate the
  search's.
- **Searched elsewhere, logged** (a ``plan`` function returning a :class:`Plan` whose
  ``search`` holds a :class:`~.spans.SearchLog`'s events, as the service's planner pool
  does on request): the same search spans, replayed from the log with the times the
  search recorded (:func:`~.spans.replay_search`).
- **Planned elsewhere, not logged** (or a log that does not replay, which the plan
  span's ``search_log`` attribute says), or by a search that reported no steps: one
  predicted ``action`` span per planned action, directly under the plan span, with its
  ``step`` and ``predicted`` effects (see :func:`~.spans.record_plan`).

Span capacity: the run's recorder keeps the newest ``span_capacity`` spans
(:data:`~.spans.DEFAULT_SPAN_CAPACITY` by default; a big plan's search alone can exceed
it). What overflows is evicted oldest first — the deepest search steps go first, the
root, plan and command spans stay — and counted: :attr:`ActingResult.dropped` (and
``acting.spans.dropped``, also after a failed run) is how many spans of the run were
lost, so a non-zero value means the trace is incomplete.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from .acting_errors import CommandError, NoPlan, ReplanLimitExceeded, UnknownCommand
from .acting_executors import ActorExecutor, DomainCommandExecutor, apply_reply
from .acting_messages import Fact, WorldChanged, apply_facts
from .domain import Domain
from .errors import DomainError, EngineError, MalformedReturn
from .planner import CancelToken, Plan, Planner
from .spans import (
    DEFAULT_SPAN_CAPACITY,
    OpenSpan,
    PlannerSpanTracer,
    SpanOutcome,
    SpanRecorder,
    outcome_of,
    record_plan,
    replay_search,
)
from .state import State

__all__ = [
    "ActingResult",
    "Acting",
    "ActorExecutor",
    "CommandFailure",
    "DomainCommandExecutor",
    "Executor",
    "PlanFunction",
    "StateSource",
    "WorldEvent",
    "act",
    "apply_reply",
    "replay",
]

Executor: TypeAlias = Callable[[str, tuple[Any, ...], State], Awaitable[State | bool | None]]
"""``await executor(command, args, state)``: run one command; see the module docstring."""

PlanFunction: TypeAlias = Callable[[State, Sequence[Any]], Awaitable[Plan]]
"""``await plan(state, todo)``: find a plan (an alternative to a :class:`Planner`).

It receives a copy of the observed state and the to-do list, returns a :class:`Plan`
(empty: nothing to do) or raises: an :class:`~.errors.EngineError` means "no plan"
(acting raises :class:`~.acting_errors.NoPlan`), a :class:`~.errors.DomainError` or any
other exception propagates. Acting cancels the call when it is cancelled."""

StateSource: TypeAlias = State | Callable[[], Awaitable[State]]
"""The initial state, or an async callable observing the world."""

WorldEvent: TypeAlias = State | WorldChanged | Sequence[Fact | tuple[str, Any, Any]]
"""A change of the world: a whole observed state, or facts ``(var, arg, value)``."""

FailureKind = Literal["failed", "timeout", "error", "broken"]
"""``failed``: the command reported failure; ``timeout``; ``error``: it raised;
``broken``: the command was not run, it no longer applied after the world changed."""

Action: TypeAlias = tuple[Any, ...]

_traces = itertools.count(1)
_VERBS = {"timeout": "timed out", "broken": "could not run"}


@dataclass(frozen=True)
class CommandFailure:
    """One failed command: which, at which step of which plan, how (``kind``) and why."""

    plan: int
    step: int
    command: str
    args: tuple[Any, ...]
    kind: FailureKind
    reason: str


@dataclass(frozen=True)
class ActingResult:
    """What a successful run did.

    ``state``: the final observed state; ``executed``: the actions whose commands
    succeeded, in order; ``plans``: plans made (the first one included); ``replans``:
    ``plans - 1``; ``failures``: every failed command (a plan broken by an event is
    not a failure); ``checks``: applicability checks made after events or deviations;
    ``trace``: the spans' trace id; ``dropped``: how many of the run's spans the recorder
    evicted for lack of room (0: the recorder holds the whole trace).
    """

    state: State
    executed: tuple[tuple[Any, ...], ...]
    plans: int
    replans: int
    failures: tuple[CommandFailure, ...]
    checks: int
    trace: str
    dropped: int = 0


def replay(
    domain: Domain, state: State, actions: Sequence[tuple[Any, ...]]
) -> tuple[list[State], int | None]:
    """Apply ``actions``' models in order from a copy of ``state``.

    Returns the predicted states (``[state, after 1st, ...]``, as far as they apply)
    and the index of the first action that does not apply (``None``: all apply).
    """
    states = [state]
    current = state
    for i, action in enumerate(actions):
        model = domain.actions.get(action[0])
        nxt = model(current.copy(), *action[1:]) if model is not None else None
        if not isinstance(nxt, State):
            return states, i
        states.append(nxt)
        current = nxt
    return states, None


class Acting:
    """One acting run over ``todo`` (see the module docstring for the whole behaviour).

    ``max_replans`` bounds the replans of the run (failures and broken plans alike);
    ``command_timeout`` bounds each command (seconds; ``None``: unbounded);
    ``spans`` records the run's spans (by default a fresh recorder keeping the newest
    ``span_capacity`` of them, :data:`~.spans.DEFAULT_SPAN_CAPACITY` if ``None``);
    ``events`` is an optional queue of :data:`WorldEvent` read at every step boundary;
    ``plan_in_thread`` runs the planner in a worker thread (default) or inline.

    Plans come from exactly one of ``planner`` (searched here, with the search's spans)
    or ``plan`` (a :data:`PlanFunction` awaited as is, e.g. a call to a planner pool;
    no search spans but predicted action spans, ``plan_in_thread`` is ignored).

    Raises:
        ValueError: both or neither of ``planner`` and ``plan``; a bad bound; both
            ``spans`` and ``span_capacity`` (a given recorder has its own ``keep``).
    """

    def __init__(
        self,
        domain: Domain,
        planner: Planner | None,
        state_source: StateSource,
        todo: Sequence[Any],
        executor: Executor,
        *,
        plan: PlanFunction | None = None,
        max_replans: int = 3,
        command_timeout: float | None = 10.0,
        spans: SpanRecorder | None = None,
        events: asyncio.Queue[WorldEvent] | None = None,
        confirm: bool = False,
        plan_in_thread: bool = True,
        span_capacity: int | None = None,
    ) -> None:
        if (planner is None) == (plan is None):
            raise ValueError(
                "give acting exactly one way to plan: a planner, or a plan function (plan=)"
                + (", not both" if planner is not None else "")
            )
        if max_replans < 0:
            raise ValueError("max_replans must be >= 0")
        if command_timeout is not None and command_timeout <= 0:
            raise ValueError("command_timeout must be > 0 (or None)")
        if span_capacity is not None:
            if spans is not None:
                raise ValueError(
                    "give span_capacity or a recorder (spans=), not both: "
                    "a recorder's capacity is its keep="
                )
            if span_capacity < 1:
                raise ValueError("span_capacity must be >= 1")
        self.domain = domain
        self.planner = planner
        self.plan_function = plan
        self.state_source = state_source
        self.todo = list(todo)
        self.executor = executor
        self.max_replans = max_replans
        self.command_timeout = command_timeout
        self.spans = (
            spans
            if spans is not None
            else SpanRecorder(
                f"acting-{next(_traces)}",
                keep=span_capacity if span_capacity is not None else DEFAULT_SPAN_CAPACITY,
            )
        )
        self.events = events
        self.confirm = confirm
        self.plan_in_thread = plan_in_thread
        # Pending world changes, applied at the next step boundary. Bounded by the size
        # of the world: a whole state replaces what came before it, facts overwrite facts.
        self._pending_state: State | None = None
        self._pending_facts: dict[tuple[str, Any], Any] = {}
        self._pending = False
        # The run's record.
        self._executed: list[tuple[Any, ...]] = []
        self._failures: list[CommandFailure] = []
        self._plans = 0
        self._checks = 0

    # -- events -----------------------------------------------------------------------------

    def notify(self, event: WorldEvent) -> None:
        """Tell the run that the world changed; applied at the next step boundary.

        Never blocks; pending changes are merged (a whole state replaces earlier ones).
        """
        if isinstance(event, State):
            self._pending_state = event
            self._pending_facts.clear()
        else:
            facts = event.updates if isinstance(event, WorldChanged) else event
            for fact in facts:
                var, arg, value = (
                    (fact.var, fact.arg, fact.value) if isinstance(fact, Fact) else fact
                )
                self._pending_facts[(var, arg)] = value
        self._pending = True

    def _take_events(self, state: State) -> State | None:
        """The state with the pending changes applied, or ``None`` if nothing is pending."""
        if self.events is not None:
            while not self.events.empty():
                self.notify(self.events.get_nowait())
        if not self._pending:
            return None
        base = self._pending_state if self._pending_state is not None else state
        new = apply_facts(base, [(v, a, x) for (v, a), x in self._pending_facts.items()])
        self._pending_state = None
        self._pending_facts.clear()
        self._pending = False
        return new

    # -- the run ----------------------------------------------------------------------------

    async def run(self) -> ActingResult:
        """Act until the to-do list is accomplished; see the module docstring.

        Raises:
            ReplanLimitExceeded: a command failed (or the plan broke) with no replan left.
            NoPlan: the planner found no plan from an observed state.
            UnknownCommand: nothing executes one of the plan's commands.
            DomainError: the domain or an executor's reply is malformed.
            asyncio.CancelledError: the caller cancelled the run.
        """
        rec = self.spans
        dropped_before = rec.dropped
        root = rec.start("acting", "acting", todo=repr(self.todo))
        outcome: SpanOutcome = "failed"
        try:
            result = await self._run(root)
            outcome = "ok"
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        finally:
            root.end(outcome, plans=self._plans, executed=len(self._executed))
        # Counted once the root has ended: emitting it may evict one more span.
        return dataclasses.replace(result, dropped=rec.dropped - dropped_before)

    async def _observe(self, fallback: State | None) -> State:
        if callable(self.state_source):
            return await self.state_source()
        return fallback if fallback is not None else self.state_source

    async def _run(self, root: OpenSpan) -> ActingResult:
        state = await self._observe(None)
        reason = "start"
        last_failure: CommandFailure | None = None
        while True:
            # A (re)plan from `state`, then its execution until it finishes or breaks.
            if self._plans > self.max_replans:
                raise self._give_up(state, last_failure)
            plan, plan_span = await self._plan(state, root, reason)
            actions = plan.actions
            if not actions:
                plan_span.end("ok")
                return self._result(state)
            try:
                state, step, failure = await self._follow(root, plan_span, state, actions)
            except BaseException as e:
                plan_span.end(outcome_of(e), error=f"{type(e).__name__}: {e}")
                raise
            if failure is None:
                plan_span.end("ok", executed=step)
                if not self.confirm:
                    return self._result(state)
                reason = "confirm"
                continue
            last_failure = failure
            if failure.kind == "broken":
                plan_span.end("failed", executed=step, broke_at=failure.step)
                reason = "broken"
            else:
                self._failures.append(failure)
                plan_span.end(
                    "timeout" if failure.kind == "timeout" else "failed",
                    executed=step,
                    failed_at=step,
                )
                state = await self._observe(state)
                reason = "command failed"

    async def _follow(
        self, root: OpenSpan, plan_span: OpenSpan, state: State, actions: Sequence[Action]
    ) -> tuple[State, int, CommandFailure | None]:
        """Execute ``actions`` from ``state`` until done, a command fails, or the plan breaks.

        Returns the state then, how many actions were executed, and the failure (kind
        ``broken`` when the plan stopped being applicable), or ``None`` when done.
        """
        predicted, _ = replay(self.domain, state, actions)
        step = 0
        while step < len(actions):
            new = self._take_events(state)
            if new is not None:
                state = new
            if step >= len(predicted) or state != predicted[step]:
                ok, predicted = self._still_applicable(root, state, actions, step, new)
                if not ok:
                    return state, step, self._broken_failure(state, actions, step)
            action = actions[step]
            failure, observed = await self._execute(plan_span, step, action, state)
            if failure is not None:
                return (observed if observed is not None else state), step, failure
            assert observed is not None
            self._executed.append(action)
            state = observed
            step += 1
        new = self._take_events(state)
        return (new if new is not None else state), step, None

    def _result(self, state: State) -> ActingResult:
        return ActingResult(
            state=state,
            executed=tuple(self._executed),
            plans=self._plans,
            replans=max(0, self._plans - 1),
            failures=tuple(self._failures),
            checks=self._checks,
            trace=self.spans.trace,
        )

    async def _plan(self, state: State, root: OpenSpan, reason: str) -> tuple[Plan, OpenSpan]:
        first = self._plans == 0
        self._plans += 1
        span = self.spans.start(
            "plan" if first else "replan",
            "plan" if first else "replan",
            root,
            reason=reason,
            attempt=self._plans,
        )
        token = CancelToken()
        tracer: PlannerSpanTracer | None = None
        snapshot = state.copy()
        try:
            if self.plan_function is not None:
                plan = await self.plan_function(snapshot, list(self.todo))
            else:
                assert self.planner is not None
                tracer = PlannerSpanTracer(self.spans, span)
                if self.plan_in_thread:
                    plan = await asyncio.to_thread(
                        self.planner.find_plan, snapshot, self.todo, cancel=token, tracer=tracer
                    )
                else:
                    plan = self.planner.find_plan(snapshot, self.todo, cancel=token, tracer=tracer)
        except asyncio.CancelledError:
            token.cancel()
            if tracer is not None:
                tracer.abandon()  # the worker thread may still be searching: drop its spans
            span.end("cancelled")
            raise
        except DomainError as e:
            span.end("failed", error=f"{type(e).__name__}: {e}")
            raise
        except EngineError as e:
            span.end("failed", error=f"{type(e).__name__}: {e}")
            raise NoPlan(
                f"no plan for {self.todo!r} from the observed state "
                f"(plan {self._plans}, after {len(self._executed)} executed actions): {e}",
                state=state,
                executed=self._executed,
                replans=self._plans - 1,
            ) from e
        except Exception as e:  # a plan function's own failure (a lost actor, a bug...)
            span.end(outcome_of(e), error=f"{type(e).__name__}: {e}")
            raise
        span.set(actions=len(plan.actions), expansions=plan.expansions, cost=plan.cost)
        if tracer is None and plan.search is not None:
            tracer = self._replay_search(plan.search, span)
        if tracer is None or tracer.started == 0:
            # Planned elsewhere, or by a strategy that reports no steps: the predicted
            # action spans are the only record of the plan. Otherwise the search's own
            # action spans are (see the module docstring).
            record_plan(self.spans, span, plan.actions, state, self.domain.actions)
        return plan, span

    def _replay_search(self, events: Sequence[Any], span: OpenSpan) -> PlannerSpanTracer | None:
        """The spans of a search that ran elsewhere and was logged, under ``span``; None
        (and nothing recorded) when the log is malformed (``span`` says so)."""
        tracer = PlannerSpanTracer(self.spans, span)
        try:
            replay_search(events, tracer)
        except ValueError as e:
            tracer.abandon()
            tracer.on_end(False)
            span.set(search_log=f"not replayed: {e}")
            return None
        return tracer

    def _still_applicable(
        self,
        root: OpenSpan,
        state: State,
        actions: Sequence[tuple[Any, ...]],
        step: int,
        event: State | None,
    ) -> tuple[bool, list[State]]:
        """Replay the remaining actions from ``state``; returns (applicable?, predictions)
        re-indexed so that ``predictions[step]`` is ``state``."""
        self._checks += 1
        with self.spans.span(
            "check",
            "event",
            root,
            step=step,
            cause="event" if event is not None else "deviation",
        ) as span:
            states, broken_at = replay(self.domain, state, actions[step:])
            span.set(applicable=broken_at is None)
            if broken_at is not None:
                span.set(broken_at=step + broken_at)
        return broken_at is None, [state] * step + states

    def _broken_failure(
        self, state: State, actions: Sequence[tuple[Any, ...]], step: int
    ) -> CommandFailure:
        _, broken_at = replay(self.domain, state, actions[step:])
        index = step + (broken_at or 0)
        action = actions[index]
        return CommandFailure(
            plan=self._plans,
            step=index,
            command=f"c_{action[0]}",
            args=tuple(action[1:]),
            kind="broken",
            reason="no longer applicable after the world changed",
        )

    def _give_up(self, state: State, failure: CommandFailure | None) -> ReplanLimitExceeded:
        if failure is None:  # confirm=True: the plans succeeded, the to-do list is not done
            return ReplanLimitExceeded(
                f"gave up after {self.max_replans} replans (max_replans={self.max_replans}): "
                f"every plan was carried out, yet planning again still finds actions to do",
                command="",
                args=(),
                reason="to-do list not accomplished",
                state=state,
                executed=self._executed,
                replans=self._plans - 1,
            )
        return ReplanLimitExceeded(
            f"gave up after {self.max_replans} replans (max_replans={self.max_replans}): "
            f"command {failure.command}{failure.args!r} at step {failure.step} of plan "
            f"{failure.plan} {_VERBS.get(failure.kind, 'failed')}: "
            f"{failure.reason}",
            command=failure.command,
            args=failure.args,
            reason=failure.reason,
            state=state,
            executed=self._executed,
            replans=self._plans - 1,
        )

    async def _execute(
        self, plan_span: OpenSpan, step: int, action: tuple[Any, ...], state: State
    ) -> tuple[CommandFailure | None, State | None]:
        """Run one command: (None, observed state) on success, else (failure, observed
        state if the failure reported one)."""
        command = f"c_{action[0]}"
        args = tuple(action[1:])
        span = self.spans.start(command, "command", plan_span, step=step, args=repr(args))

        def failed(
            kind: FailureKind, reason: str, observed: State | None = None
        ) -> tuple[CommandFailure | None, State | None]:
            span.end("timeout" if kind == "timeout" else "failed", failure=kind, reason=reason)
            return CommandFailure(self._plans, step, command, args, kind, reason), observed

        try:
            async with asyncio.timeout(self.command_timeout):
                reply = await self.executor(command, args, state.copy())
        except asyncio.CancelledError:
            span.end("cancelled")
            raise
        except (UnknownCommand, DomainError) as e:
            span.end("failed", error=f"{type(e).__name__}: {e}")
            raise
        except CommandError as e:
            return failed("failed", e.reason, e.state)
        except TimeoutError as e:
            why = str(e) or f"no result within {self.command_timeout}s"
            return failed("timeout", why)
        except Exception as e:
            return failed("error", f"{type(e).__name__}: {e}")
        if isinstance(reply, State):
            span.end("ok")
            return None, reply
        if reply is True:
            predicted, broken = replay(self.domain, state, [action])
            span.end("ok")
            return None, predicted[-1] if broken is None else state
        if reply is False or reply is None:
            return failed("failed", "the command reported failure")
        span.end("failed", error="malformed reply")
        raise MalformedReturn(
            f"the executor returned a {type(reply).__name__} for {command}{args!r}: "
            f"it must return a State, True, False or None",
            command,
            reply,
        )


async def act(
    domain: Domain,
    planner: Planner | None,
    state_source: StateSource,
    todo: Sequence[Any],
    executor: Executor,
    *,
    plan: PlanFunction | None = None,
    max_replans: int = 3,
    command_timeout: float | None = 10.0,
    spans: SpanRecorder | None = None,
    events: asyncio.Queue[WorldEvent] | None = None,
    confirm: bool = False,
    plan_in_thread: bool = True,
    span_capacity: int | None = None,
) -> ActingResult:
    """Act on ``todo`` with lazy lookahead: ``await Acting(...).run()`` (see the module doc).

    Raises what :meth:`Acting.run` raises.
    """
    return await Acting(
        domain,
        planner,
        state_source,
        todo,
        executor,
        plan=plan,
        max_replans=max_replans,
        command_timeout=command_timeout,
        spans=spans,
        events=events,
        confirm=confirm,
        plan_in_thread=plan_in_thread,
        span_capacity=span_capacity,
    ).run()
