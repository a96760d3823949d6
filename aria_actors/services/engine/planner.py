"""The planner: GTPyhop's search, on explicit stacks, with budgets, cancellation and costs.

``Planner(domain, strategy=...).find_plan(state, todo)`` returns a :class:`Plan` (a tuple
of action tuples, its cost and statistics) or raises. The to-do list holds actions, tasks,
unigoals ``(var, arg, value)`` and multigoals, classified in GTPyhop's order
(:mod:`.todo`). No step of the search uses Python recursion: to-do lists and partial
plans are persistent linked lists (O(1) push/pop, shared between alternatives), so a plan
of 100,000 actions needs no deeper call stack than a plan of one. The depth-first
strategies change one working state in place and undo from a log on backtracking
(:mod:`.trail`: an action costs what it changes); the others, and states that do not fit
an undo log, copy states on write (:mod:`.state`).

Strategies (closed vocabulary, :data:`Strategy`):

``"recursive_dfs"`` / ``"iterative_dfs_backtracking"``
    Depth-first search with chronological backtracking: the first applicable method of a
    task or goal is refined first; when everything below it fails, the next applicable
    method is tried. Methods are called lazily, when their turn comes (as GTPyhop's
    recursive strategy does; its iterative one calls them all up front — same plans).
    First plan found.
``"iterative_greedy"``
    GTPyhop's irrevocable commitment: the first applicable method is the only one tried;
    any later failure fails the whole search.
``"branch_and_bound"``
    Anytime depth-first branch and bound over every applicable method: the first plan
    comes as fast as DFS finds it, then only cheaper plans are kept. Returns the cheapest
    plan when the space is exhausted (``Plan.optimal``), or the best so far when the
    budget ends (``optimal=False``).
``"best_first"``
    Uniform-cost search over partial decompositions (cheapest partial plan first): the
    first complete plan taken off the queue is the cheapest. On budget end, returns the
    cheapest complete plan generated so far, if any.

For the last two, ``cost_bound`` prunes every partial plan costing more than it.

Semantics shared by all strategies:

- An action gets a state of its own to change (a copy, or the logged working
  state); returning that :class:`~.state.State` (or another one) applies it (and
  appends it to the plan, *even when the state did not change*: Nau's original GTPyhop;
  GTPyhop 2.x drops such actions — ``drop_unchanging_actions=True`` reproduces that);
  ``False``/``None`` means not applicable; anything else raises
  :class:`~.errors.MalformedReturn`.
- A method returning ``False``/``None`` does not apply; a list (or tuple) replaces the
  item by its elements; anything else raises :class:`~.errors.MalformedReturn`.
- A unigoal that already holds is skipped. With ``verify_goals`` (default on), after a
  goal method's refinement the goal is checked and :class:`~.errors.GoalNotAchieved`
  raised if it does not hold.

Budgets and cancellation: ``max_expansions`` (every node or choice point taken off the
stack counts one) and ``timeout`` (seconds) raise :class:`~.errors.BudgetExceeded`;
:meth:`CancelToken.cancel` (from any thread) makes the search raise
:class:`~.errors.Cancelled`. The clock and the token are checked every
:data:`CHECK_EVERY` expansions, the expansion count at every one. A domain function
that runs long is not interrupted: the search stops at the next check after it returns
(the service's planner pool frees the caller at its own timeout regardless).
"""

from __future__ import annotations

import contextlib
import heapq
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from .domain import Domain
from .errors import (
    BudgetExceeded,
    Cancelled,
    DomainError,
    GoalNotAchieved,
    MalformedReturn,
    PlanningFailed,
)
from .state import State, goals_not_achieved, unigoal_holds
from .todo import ItemKind, classify, is_multigoal
from .trail import ActionView, Trail, TrailUnsuitable, undo, working_copy

if TYPE_CHECKING:
    from .spans import SearchTracer

__all__ = ["CHECK_EVERY", "CancelToken", "Plan", "Planner", "Strategy", "find_plan"]

Strategy = Literal[
    "recursive_dfs",
    "iterative_dfs_backtracking",
    "iterative_greedy",
    "branch_and_bound",
    "best_first",
]
STRATEGIES: tuple[str, ...] = (
    "recursive_dfs",
    "iterative_dfs_backtracking",
    "iterative_greedy",
    "branch_and_bound",
    "best_first",
)

CHECK_EVERY = 256
"""How many expansions pass between two looks at the clock and the cancellation token."""


class CancelToken:
    """Cancels a running search from another thread (or from a callback in the domain)."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        """Ask the search to stop; it raises :class:`~.errors.Cancelled` soon after."""
        self._event.set()

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` was called."""
        return self._event.is_set()


@dataclass(frozen=True)
class Plan:
    """A plan: its actions (tuples ``(name, *args)``) in order, their total cost, statistics.

    ``optimal`` is True when the strategy proved no cheaper plan exists (a completed
    ``branch_and_bound`` or ``best_first``); the first-found strategies leave it False.
    ``final_state`` is the state the planner predicted after the last action.
    ``search``: how the search went, as :class:`~.planner_spans.SearchLog` events, when
    it ran elsewhere and was logged (see :class:`~.acting.Acting`, which turns them into
    the plan's spans); ``None`` otherwise.
    """

    actions: tuple[tuple[Any, ...], ...]
    cost: float
    expansions: int
    final_state: State = field(repr=False, compare=False)
    optimal: bool = False
    search: Sequence[Any] | None = field(default=None, repr=False, compare=False)

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self.actions)

    def __len__(self) -> int:
        return len(self.actions)

    def as_list(self) -> list[tuple[Any, ...]]:
        """The actions as a list, GTPyhop's plan shape."""
        return list(self.actions)


class _Verify:
    """The internal to-do item checking that a goal method achieved its goal."""

    __slots__ = ("goal", "method", "multigoal")

    def __init__(self, method: str, goal: Any, multigoal: bool) -> None:
        self.method = method
        self.goal = goal
        self.multigoal = multigoal

    def check(self, state: State) -> None:
        if self.multigoal:
            if goals_not_achieved(state, self.goal):
                raise GoalNotAchieved(
                    f"multigoal method {self.method} did not achieve {self.goal}",
                    self.method,
                    self.goal,
                )
            return
        var, arg, value = self.goal
        if not unigoal_holds(state, var, arg, value):
            raise GoalNotAchieved(
                f"unigoal method {self.method} did not achieve goal {var}[{arg!r}] = {value!r}",
                self.method,
                self.goal,
            )


# A to-do list and a partial plan are persistent cons lists: None, or (head, tail).
_Cons = tuple[Any, Any] | None


def _push_all(items: Sequence[Any], tail: _Cons) -> _Cons:
    for item in reversed(items):
        tail = (item, tail)
    return tail


def _cons_from(items: Sequence[Any]) -> _Cons:
    return _push_all(list(items), None)


def _unwind(plan: _Cons) -> tuple[tuple[Any, ...], ...]:
    out: list[tuple[Any, ...]] = []
    while plan is not None:
        out.append(plan[0])
        plan = plan[1]
    out.reverse()
    return tuple(tuple(a) for a in out)


class Planner:
    """Finds plans in one domain with one strategy and budget; reusable, thread-compatible.

    One planner may serve many searches, concurrently from many threads, provided no
    State object is shared between concurrent searches (give each its own ``copy()``)
    and the domain is not re-declared meanwhile.

    ``undo_log=False`` makes the depth-first strategies copy states on write instead of
    using an undo-logged working state (same plans; for comparison and diagnosis).
    """

    def __init__(
        self,
        domain: Domain,
        strategy: Strategy = "iterative_dfs_backtracking",
        *,
        max_expansions: int | None = None,
        timeout: float | None = None,
        verify_goals: bool = True,
        cost_bound: float | None = None,
        drop_unchanging_actions: bool = False,
        undo_log: bool = True,
    ) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}; one of {', '.join(STRATEGIES)}")
        if max_expansions is not None and max_expansions < 0:
            raise ValueError("max_expansions must be >= 0")
        if timeout is not None and timeout < 0:
            raise ValueError("timeout must be >= 0")
        self.domain = domain
        self.strategy = strategy
        self.max_expansions = max_expansions
        self.timeout = timeout
        self.verify_goals = verify_goals
        self.cost_bound = cost_bound
        self.drop_unchanging_actions = drop_unchanging_actions
        self.undo_log = undo_log

    def _trail_fits(self) -> bool:
        # Undo-logged search needs costs known without the pre-action state at hand and
        # no comparison of whole states (drop_unchanging_actions).
        if not self.undo_log or self.drop_unchanging_actions:
            return False
        return not any(callable(c) for c in self.domain.costs.values())

    def _derive(
        self,
        state: State,
        todo: Sequence[Any],
        plan: Plan,
        cancel: CancelToken | None,
        tracer: SearchTracer,
    ) -> None:
        # Report how an optimising strategy's plan decomposes: a depth-first search held
        # to that plan's actions (the explored alternatives are not reported).
        traced = _cons_from([(item, None) for item in todo])
        with contextlib.suppress(PlanningFailed, BudgetExceeded):  # the report stays partial
            _Search(self, cancel).depth_first_traced(state, traced, True, tracer, plan.actions)

    def find_plan(
        self,
        state: State,
        todo: Sequence[Any],
        *,
        cancel: CancelToken | None = None,
        tracer: SearchTracer | None = None,
    ) -> Plan:
        """A plan accomplishing ``todo`` from ``state``.

        ``state`` is never modified. The untraced depth-first strategies search on one
        private working copy of it, changed in place by actions and restored on
        backtracking from an undo log (:mod:`.trail`: cost per action = what it changes);
        methods then get that working copy. States that do not fit (sets, lists, nested
        values, see :func:`~.trail.working_copy`), traced and optimising searches, cost
        functions, ``drop_unchanging_actions`` and ``undo_log=False`` (the planner's
        option) use copy-on-write states (each action gets a copy; methods get the state
        as it is). Both give the same plans.

        ``tracer`` (a :class:`~.spans.SearchTracer`, e.g. a
        :class:`~.spans.PlannerSpanTracer`) is told about the search as it goes: every
        task/goal refined, every method tried, every action tried, every backtrack, and
        the end (also when the search raises). Tracing never changes the plan; without a
        tracer the search runs untraced code (no per-step cost). The depth-first
        strategies report their whole search; ``branch_and_bound`` and ``best_first``
        report how the plan they return decomposes (tasks, methods, actions: a
        depth-first search held to that plan's actions, run after the optimising search
        with a budget of the same size; if that runs out the report stays partial), not
        the alternatives they explored, and report nothing but the end when they find
        no plan.

        Raises:
            PlanningFailed: no plan exists (for greedy: the committed choices dead-end).
            BudgetExceeded: the expansion budget or the timeout ran out (``best``: the
                best plan an anytime strategy had, which it then returns instead when
                it has one).
            Cancelled: ``cancel`` was set.
            DomainError: the domain misbehaved (unknown item, malformed return, a goal
                method that did not achieve its goal, a missing state variable).
        """
        run = _Search(self, cancel)
        optimising = self.strategy in ("branch_and_bound", "best_first")
        if tracer is None:
            if optimising:
                return run.optimise(state, _cons_from(todo), self.strategy == "best_first")
            backtrack = self.strategy != "iterative_greedy"
            live = working_copy(state) if self._trail_fits() else None
            if live is not None:
                logged = _Search(self, cancel, logged=True)
                try:
                    return logged.depth_first(live, _cons_from(todo), backtrack)
                except TrailUnsuitable:
                    run.deadline = logged.deadline  # start again, copy-on-write; same clock
            return run.depth_first(state, _cons_from(todo), backtrack)
        found = False
        try:
            if optimising:
                plan = run.optimise(state, _cons_from(todo), self.strategy == "best_first")
                self._derive(state, todo, plan, cancel, tracer)
            else:
                traced = _cons_from([(item, None) for item in todo])
                plan = run.depth_first_traced(
                    state, traced, self.strategy != "iterative_greedy", tracer
                )
            found = True
            return plan
        finally:
            tracer.on_end(found)


def find_plan(
    domain: Domain,
    state: State,
    todo: Sequence[Any],
    strategy: Strategy = "iterative_dfs_backtracking",
    **options: Any,
) -> Plan:
    """Shorthand for ``Planner(domain, strategy, **options).find_plan(state, todo)``
    (``cancel`` and ``tracer`` among ``options`` go to :meth:`Planner.find_plan`)."""
    cancel = options.pop("cancel", None)
    tracer = options.pop("tracer", None)
    return Planner(domain, strategy, **options).find_plan(state, todo, cancel=cancel, tracer=tracer)


# A search node: (state, todo, plan, cost). A choice point adds the item being refined,
# its relevant methods and the index of the next method to try.
_Node = tuple[State, _Cons, _Cons, float]


class _Search:
    """One run of a search: its counters, budget and the shared expansion step."""

    def __init__(self, planner: Planner, cancel: CancelToken | None, logged: bool = False) -> None:
        self.p = planner
        self.logged = logged
        self.trail: Trail = []
        self.domain = planner.domain
        self.cancel = cancel
        self.expansions = 0
        self.limit = planner.max_expansions
        self.deadline = None if planner.timeout is None else time.monotonic() + planner.timeout
        self.best: Plan | None = None

    # -- budget ---------------------------------------------------------------------------

    def tick(self) -> None:
        self.expansions += 1
        if self.limit is not None and self.expansions > self.limit:
            self.out_of_budget(f"expansion budget of {self.limit} exhausted")
        if self.expansions % CHECK_EVERY == 0:
            if self.cancel is not None and self.cancel.cancelled:
                raise Cancelled(f"cancelled after {self.expansions} expansions", self.expansions)
            if self.deadline is not None and time.monotonic() > self.deadline:
                self.out_of_budget(f"timeout of {self.p.timeout}s exceeded")

    def out_of_budget(self, why: str) -> None:
        raise BudgetExceeded(
            f"{why} after {self.expansions} expansions", self.expansions, self.best
        )

    # -- steps shared by all strategies ---------------------------------------------------

    def apply_action(self, state: State, item: Any, cost: float) -> tuple[State, float, bool]:
        """Apply action ``item``: (new state, new cost, appended?) or raise _NotApplicable."""
        name = item[0]
        args = tuple(item[1:])
        result = self.domain.actions[name](state.copy(), *args)
        if isinstance(result, State):
            if self.p.drop_unchanging_actions and result == state:
                return result, cost, False
            return result, cost + self.domain.action_cost(name, state, args), True
        if result is False or result is None:
            raise _NotApplicable
        raise MalformedReturn(
            f"action {name} returned a {type(result).__name__} ({result!r:.80}): an action "
            f"returns the State it was given (or another State), False or None",
            name,
            result,
        )

    def apply_logged(self, live: State, item: Any, cost: float) -> tuple[State, float, bool]:
        """:meth:`apply_action` on the working state of an undo-logged search.

        Raises:
            _NotApplicable: the action returned False/None (its changes are undone).
            TrailUnsuitable: the action returned another State, stored a mutable value...
        """
        name = item[0]
        args = tuple(item[1:])
        trail = self.trail
        mark = len(trail)
        view = ActionView(live, trail)
        result = self.domain.actions[name](view, *args)
        if result is view:
            view.settle()
            return live, cost + self.domain.action_cost(name, live, args), True
        undo(trail, mark)
        if result is False or result is None:
            raise _NotApplicable
        if isinstance(result, State):
            raise TrailUnsuitable(f"action {name} returned a State it was not given")
        raise MalformedReturn(
            f"action {name} returned a {type(result).__name__} ({result!r:.80}): an action "
            f"returns the State it was given (or another State), False or None",
            name,
            result,
        )

    def refinement(
        self, method: Callable[..., Any], state: State, item: Any, kind: ItemKind
    ) -> Any:
        if kind is ItemKind.TASK:
            subs = method(state, *item[1:])
        elif kind is ItemKind.UNIGOAL:
            subs = method(state, item[1], item[2])
        else:
            subs = method(state, item)
        if subs is False or subs is None:
            return None
        if not isinstance(subs, list | tuple):
            name = getattr(method, "__name__", repr(method))
            raise MalformedReturn(
                f"method {name} for {item!r} returned a {type(subs).__name__} ({subs!r:.80}): "
                f"a method returns a list of to-do items, False or None",
                name,
                subs,
            )
        return subs

    def new_todo(
        self, subs: Any, method: Callable[..., Any], item: Any, kind: ItemKind, rest: _Cons
    ) -> _Cons:
        if self.p.verify_goals and kind is not ItemKind.TASK:
            goal = item if kind is ItemKind.MULTIGOAL else (item[0], item[1], item[2])
            rest = (_Verify(method.__name__, goal, kind is ItemKind.MULTIGOAL), rest)
        return _push_all(subs, rest)

    def methods_for(self, item: Any, kind: ItemKind) -> list[Callable[..., Any]]:
        if kind is ItemKind.TASK:
            return self.domain.task_methods[item[0]]
        if kind is ItemKind.UNIGOAL:
            return self.domain.unigoal_methods[item[0]]
        return self.domain.multigoal_methods

    def goal_holds(self, state: State, item: Any) -> bool:
        try:
            return unigoal_holds(state, item[0], item[1], item[2])
        except (AttributeError, TypeError) as e:
            raise DomainError(str(e)) from e

    def classify(self, item: Any) -> ItemKind:
        if type(item) is tuple and item:
            # Fast path of todo.classify for the common case (same order).
            name = item[0]
            d = self.domain
            if type(name) is str:
                if name in d.actions:
                    return ItemKind.ACTION
                if name in d.task_methods:
                    return ItemKind.TASK
        return classify(self.domain, item)

    def done(self, state: State, plan: _Cons, cost: float, optimal: bool) -> Plan:
        return Plan(_unwind(plan), cost, self.expansions, state, optimal)

    # -- depth-first and greedy ------------------------------------------------------------

    def depth_first(self, state: State, todo: _Cons, backtrack: bool) -> Plan:
        # Stack entries: (state, todo, plan, cost, None, mark) for a node to expand, or
        # (state, todo-after-item, plan, cost, (item, kind, methods, next index), mark)
        # for a choice point whose remaining methods are still to try. `mark` is the
        # trail's length when the entry was pushed: an undo-logged search undoes back to
        # it on popping (a copy-on-write search has an empty trail and marks of 0).
        trail = self.trail
        apply = self.apply_logged if self.logged else self.apply_action
        stack: list[tuple[State, _Cons, _Cons, float, Any, int]] = [
            (state, todo, None, 0.0, None, 0)
        ]
        pop, push = stack.pop, stack.append
        while stack:
            self.tick()
            state, todo, plan, cost, choice, mark = pop()
            if len(trail) > mark:
                undo(trail, mark)
            if choice is not None:
                item, kind, methods, index = choice
                n = len(methods)
                while index < n:
                    method = methods[index]
                    index += 1
                    subs = self.refinement(method, state, item, kind)
                    if subs is None:
                        continue
                    if backtrack and index < n:
                        push((state, todo, plan, cost, (item, kind, methods, index), mark))
                    new = self.new_todo(subs, method, item, kind, todo)
                    push((state, new, plan, cost, None, mark))
                    break
                continue
            if todo is None:
                return self.done(state, plan, cost, False)
            item, rest = todo
            if type(item) is _Verify:
                self.check(item, state)
                push((state, rest, plan, cost, None, mark))
                continue
            kind = self.classify(item)
            if kind is ItemKind.ACTION:
                try:
                    new_state, new_cost, appended = apply(state, item, cost)
                except _NotApplicable:
                    continue
                new_plan = (item, plan) if appended else plan
                push((new_state, rest, new_plan, new_cost, None, len(trail)))
            elif kind is ItemKind.UNIGOAL and self.goal_holds(state, item):
                push((state, rest, plan, cost, None, mark))
            else:
                methods = self.methods_for(item, kind)
                push((state, rest, plan, cost, (item, kind, methods, 0), mark))
        raise PlanningFailed(
            f"no plan found ({self.p.strategy}, {self.expansions} expansions)", self.expansions
        )

    def depth_first_traced(
        self,
        state: State,
        todo: _Cons,
        backtrack: bool,
        tracer: SearchTracer,
        follow: tuple[tuple[Any, ...], ...] | None = None,
    ) -> Plan:
        """:meth:`depth_first`, reporting to ``tracer``: same search, same plan.

        Kept apart from :meth:`depth_first` on purpose, so the untraced search (the hot
        path) carries no token bookkeeping; a hypothesis test holds the two to the same
        plans, costs and expansion counts.

        The to-do list holds ``(item, parent token)`` pairs (the token of the method whose
        refinement the item came from, ``None`` at the top level); a choice point also
        carries its item's token and a mark in ``trail``, the tokens of the methods applied
        so far in chronological order. When a choice point resumes, every method applied
        since its mark — the one it last refined and any applied later on the abandoned
        branch, outside that method's refinement too — is reported backtracked.

        With ``follow`` (a plan found by another strategy), an action that would make the
        plan deviate from ``follow`` counts as not applicable, and only a plan equal to
        ``follow`` ends the search: the search derives that plan, reporting how.
        """
        trail: list[int] = []
        stack: list[tuple[State, _Cons, _Cons, float, Any]] = [(state, todo, None, 0.0, None)]
        pop, push = stack.pop, stack.append
        while stack:
            self.tick()
            state, todo, plan, cost, choice = pop()
            if choice is not None:
                item, kind, methods, index, item_token, mark = choice
                if mark is not None:
                    for abandoned in trail[mark:]:
                        tracer.on_backtrack(abandoned)
                    del trail[mark:]
                n = len(methods)
                while index < n:
                    method = methods[index]
                    index += 1
                    subs = self.refinement(method, state, item, kind)
                    token = tracer.on_method(item_token, _method_name(method), subs)
                    if subs is None:
                        continue
                    if backtrack and index < n:
                        point = (item, kind, methods, index, item_token, len(trail))
                        push((state, todo, plan, cost, point))
                    trail.append(token)
                    new = self.new_todo_traced(subs, method, item, kind, todo, token)
                    push((state, new, plan, cost, None))
                    break
                continue
            if todo is None:
                if follow is None or _unwind(plan) == follow:
                    return self.done(state, plan, cost, False)
                continue
            (item, parent), rest = todo
            if type(item) is _Verify:
                self.check(item, state)
                push((state, rest, plan, cost, None))
                continue
            kind = self.classify(item)
            if kind is ItemKind.ACTION:
                try:
                    new_state, new_cost, appended = self.apply_action(state, item, cost)
                    if follow is not None and appended and not _follows(plan, item, follow):
                        raise _NotApplicable
                except _NotApplicable:
                    tracer.on_action(item, parent, False)
                    continue
                tracer.on_action(item, parent, True)
                new_plan: Any = plan
                if appended:
                    new_plan = (item, plan) if follow is None else (item, plan, _length(plan) + 1)
                push((new_state, rest, new_plan, new_cost, None))
            elif kind is ItemKind.UNIGOAL and self.goal_holds(state, item):
                push((state, rest, plan, cost, None))
            else:
                item_token = tracer.on_item(item, kind.value, parent)
                methods = self.methods_for(item, kind)
                push((state, rest, plan, cost, (item, kind, methods, 0, item_token, None)))
        raise PlanningFailed(
            f"no plan found ({self.p.strategy}, {self.expansions} expansions)", self.expansions
        )

    def new_todo_traced(
        self,
        subs: Any,
        method: Callable[..., Any],
        item: Any,
        kind: ItemKind,
        rest: _Cons,
        token: int,
    ) -> _Cons:
        if self.p.verify_goals and kind is not ItemKind.TASK:
            goal = item if kind is ItemKind.MULTIGOAL else (item[0], item[1], item[2])
            rest = ((_Verify(method.__name__, goal, kind is ItemKind.MULTIGOAL), token), rest)
        for sub in reversed(subs):
            rest = ((sub, token), rest)
        return rest

    def check(self, verify: _Verify, state: State) -> None:
        try:
            verify.check(state)
        except (AttributeError, TypeError) as e:
            raise DomainError(str(e)) from e

    # -- optimising: branch and bound, best first ------------------------------------------

    def children(self, node: _Node) -> list[_Node]:
        """Every successor of a node, in method order (all applicable methods)."""
        state, todo, plan, cost = node
        assert todo is not None
        item, rest = todo
        if type(item) is _Verify:
            self.check(item, state)
            return [(state, rest, plan, cost)]
        kind = self.classify(item)
        if kind is ItemKind.ACTION:
            try:
                new_state, new_cost, appended = self.apply_action(state, item, cost)
            except _NotApplicable:
                return []
            return [(new_state, rest, (item, plan) if appended else plan, new_cost)]
        if kind is ItemKind.UNIGOAL and self.goal_holds(state, item):
            return [(state, rest, plan, cost)]
        out: list[_Node] = []
        for method in self.methods_for(item, kind):
            subs = self.refinement(method, state, item, kind)
            if subs is not None:
                out.append((state, self.new_todo(subs, method, item, kind, rest), plan, cost))
        return out

    def optimise(self, state: State, todo: _Cons, best_first: bool) -> Plan:
        bound = self.p.cost_bound
        root: _Node = (state, todo, None, 0.0)
        try:
            if best_first:
                self.uniform_cost(root, bound)
            else:
                self.branch_and_bound(root, bound)
        except BudgetExceeded:
            if self.best is not None:
                return self.best
            raise
        if self.best is None:
            raise PlanningFailed(
                f"no plan found ({self.p.strategy}, {self.expansions} expansions"
                + (f", cost bound {bound})" if bound is not None else ")"),
                self.expansions,
            )
        return self.best

    def offer(self, node: _Node, optimal: bool) -> None:
        state, _, plan, cost = node
        if self.best is None or cost < self.best.cost or optimal:
            self.best = self.done(state, plan, cost, optimal)

    def branch_and_bound(self, root: _Node, bound: float | None) -> None:
        stack = [root]
        while stack:
            self.tick()
            node = stack.pop()
            cost = node[3]
            if (bound is not None and cost > bound) or (
                self.best is not None and cost >= self.best.cost
            ):
                continue
            if node[1] is None:
                self.offer(node, False)
                continue
            stack.extend(reversed(self.children(node)))
        if self.best is not None:
            self.best = Plan(
                self.best.actions, self.best.cost, self.expansions, self.best.final_state, True
            )

    def uniform_cost(self, root: _Node, bound: float | None) -> None:
        queue: list[tuple[float, int, _Node]] = [(0.0, 0, root)]
        serial = 1
        while queue:
            self.tick()
            _, _, node = heapq.heappop(queue)
            if node[1] is None:
                self.offer(node, True)
                return
            for child in self.children(node):
                c = child[3]
                if bound is not None and c > bound:
                    continue
                if child[1] is None:
                    self.offer(child, False)  # incumbent, in case the budget ends first
                heapq.heappush(queue, (c, serial, child))
                serial += 1


def _follows(plan: Any, item: Any, follow: tuple[tuple[Any, ...], ...]) -> bool:
    """Whether appending action ``item`` to ``plan`` keeps it a prefix of ``follow``
    (a followed search's plan cells carry their length: ``(action, tail, length)``)."""
    n = 0 if plan is None else plan[2]
    return bool(n < len(follow) and tuple(item) == follow[n])


def _length(plan: Any) -> int:
    return 0 if plan is None else int(plan[2])


def _method_name(method: Callable[..., Any]) -> str:
    return getattr(method, "__name__", repr(method))


class _NotApplicable(Exception):
    """Internal: an action's preconditions did not hold."""


__all__ += ["STRATEGIES", "is_multigoal"]
