"""Run unmodified GTPyhop domain modules on our planner.

:func:`load_gtpyhop_module` executes a GTPyhop domain module or package (for instance one of
``gtpyhop-examples``) with ``import gtpyhop`` resolving to a fresh :class:`GTPyhopModule`:
a ``gtpyhop``-shaped facade bound to that load only. Its ``Domain(...)``, ``declare_*``,
``find_plan``, ``run_lazy_lookahead``, ``PlannerSession``... operate on the facade's own
domains and settings, so any number of loaded domains (and the real ``gtpyhop``, if
installed) live side by side in one process, and their planners may run concurrently.

The facade follows GTPyhop 2.x's API and semantics with these deliberate differences:

- an action that returns the state unchanged stays in the plan (Nau's original GTPyhop;
  2.x drops it) — ``PlannerSession(drop_unchanging_actions=True)`` or
  ``facade.drop_unchanging_actions = True`` gives 2.x's plans;
- after a goal method's refinement fails, GTPyhop's *recursive* strategy leaves that
  method's subgoals in the to-do list of the next alternative; every strategy here gives
  each alternative the original to-do list (as GTPyhop's iterative backtracking does);
- malformed returns, unknown to-do items and failed goal verification raise
  :class:`~.errors.DomainError` subclasses instead of ``Exception``;
- ``PlannerSession.find_plan(max_expansions=...)`` is enforced (2.x ignores it);
- no strategy set means ``"recursive_dfs"`` (2.x raises); the search itself never
  recurses, so deep problems plan without ``RecursionError``.

Limits: names the module imports *after* loading (``import gtpyhop`` inside a function
run later) reach the real ``gtpyhop``, not the facade; memory tracking, session
persistence and plan traces are not provided.
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import domain as _domain
from .errors import BudgetExceeded, Cancelled, DomainError, EngineError, PlanningFailed
from .planner import STRATEGIES, Planner, Strategy
from .state import Multigoal, State, format_bindings
from .state import Multigoal as _Multigoal
from .state import State as _State

__all__ = [
    "ExecutionResult",
    "GTPyhopModule",
    "PlanResult",
    "load_gtpyhop_module",
]

_GTPYHOP_VERSION = "2.0.2"
_STRATEGY_ALIASES: dict[object, Strategy] = {
    True: "recursive_dfs",
    False: "iterative_greedy",
    "recursive_dfs": "recursive_dfs",
    "iterative_greedy": "iterative_greedy",
    "iterative_irrevocable_commitment": "iterative_greedy",
    "iterative_dfs_backtracking": "iterative_dfs_backtracking",
}


@dataclass
class PlanResult:
    """``PlannerSession.find_plan``'s result (GTPyhop 2.x shape): truthy when it succeeded."""

    success: bool
    plan: list[tuple[Any, ...]] = field(default_factory=list)
    error: str | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    session_id: str | None = None

    def __bool__(self) -> bool:
        return self.success


@dataclass
class ExecutionResult:
    """``PlannerSession.run_lazy_lookahead``'s result: truthy when the to-do list was done."""

    success: bool
    final_state: State | None = None
    executed_actions: list[tuple[Any, ...]] = field(default_factory=list)
    error: str | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    session_id: str | None = None
    tries_used: int = 0

    def __bool__(self) -> bool:
        return self.success


class GTPyhopModule(types.ModuleType):
    """A ``gtpyhop`` module facade bound to its own domains and settings (see module doc)."""

    State = State
    Multigoal = Multigoal
    m_split_multigoal = staticmethod(_domain.m_split_multigoal)
    PlanResult = PlanResult
    ExecutionResult = ExecutionResult

    def __init__(self) -> None:
        super().__init__("gtpyhop", "A gtpyhop facade over aria_actors' planner.")
        self.__version__ = _GTPYHOP_VERSION
        self.__path__: list[str] = []
        self.domains: list[_domain.Domain] = []
        self.current_domain: _domain.Domain | None = None
        self.verbose = 1
        self.verify_goals = True
        self.strategy: Strategy = "recursive_dfs"
        self.drop_unchanging_actions = False
        self.test_harness = _test_harness_module()
        facade = self

        class PlannerSession(_PlannerSession):
            def __init__(self, session_id: str | None = None, **kwargs: Any) -> None:
                super().__init__(facade, session_id, **kwargs)

        self.PlannerSession = PlannerSession

    # -- domains ----------------------------------------------------------------------------

    def Domain(self, domain_name: str) -> _domain.Domain:
        """Create a domain and make it this facade's current domain."""
        d = _domain.Domain(domain_name)
        self.domains.append(d)
        self.current_domain = d
        return d

    def _current(self, what: str) -> _domain.Domain:
        if self.current_domain is None:
            raise DomainError(f"cannot {what} until a domain has been created")
        return self.current_domain

    def set_current_domain(self, domain: _domain.Domain) -> None:
        self.current_domain = domain

    def get_current_domain(self) -> _domain.Domain | None:
        return self.current_domain

    def find_domain_by_name(self, domain_name: str) -> _domain.Domain | None:
        for d in self.domains:
            if d.name == domain_name:
                return d
        return None

    def is_domain_created(self, domain_name: str) -> bool:
        return self.find_domain_by_name(domain_name) is not None

    def print_domain_names(self) -> None:
        print("Domains:", ", ".join(d.name for d in self.domains) or "none")

    def declare_actions(self, *actions: Callable[..., Any]) -> dict[str, Callable[..., Any]]:
        d = self._current("declare actions")
        d.declare_actions(*actions)
        return d.actions

    declare_operators = declare_actions

    def declare_commands(self, *commands: Callable[..., Any]) -> dict[str, Callable[..., Any]]:
        d = self._current("declare commands")
        d.declare_commands(*commands)
        return d.commands

    def declare_task_methods(
        self, task_name: str, *methods: Callable[..., Any]
    ) -> dict[str, list[Callable[..., Any]]]:
        d = self._current("declare methods")
        d.declare_task_methods(task_name, *methods)
        return d.task_methods

    declare_methods = declare_task_methods

    def declare_unigoal_methods(
        self, state_var_name: str, *methods: Callable[..., Any]
    ) -> dict[str, list[Callable[..., Any]]]:
        d = self._current("declare methods")
        d.declare_unigoal_methods(state_var_name, *methods)
        return d.unigoal_methods

    def declare_multigoal_methods(self, *methods: Callable[..., Any]) -> list[Callable[..., Any]]:
        d = self._current("declare methods")
        d.declare_multigoal_methods(*methods)
        return d.multigoal_methods

    # -- settings --------------------------------------------------------------------------

    def set_verbose_level(self, level: int) -> None:
        self.verbose = level

    def get_verbose_level(self) -> int:
        return self.verbose

    def set_verify_goals(self, value: bool) -> bool:
        previous, self.verify_goals = self.verify_goals, bool(value)
        return previous

    def get_verify_goals(self) -> bool:
        return self.verify_goals

    def set_recursive_planning(self, strategy: bool | str, verbose_output: bool = False) -> None:
        if strategy not in _STRATEGY_ALIASES:
            raise ValueError(f"unknown strategy {strategy!r}")
        self.strategy = _STRATEGY_ALIASES[strategy]

    def get_recursive_planning(self) -> bool:
        return self.strategy == "recursive_dfs"

    def reset_planning_strategy(self) -> None:
        self.strategy = "recursive_dfs"

    # -- printing --------------------------------------------------------------------------

    def print_domain(self, domain: _domain.Domain | None = None) -> None:
        d = domain or self.current_domain
        print(d.describe() if d is not None else "There is no current domain")

    def print_actions(self, domain: _domain.Domain | None = None) -> None:
        d = domain or self._current("print actions")
        print("-- Actions:", ", ".join(d.actions) or "none")

    def print_operators(self) -> None:
        self.print_actions()

    def print_commands(self, domain: _domain.Domain | None = None) -> None:
        d = domain or self._current("print commands")
        print("-- Commands:", ", ".join(d.commands) or "none")

    def print_methods(self, domain: _domain.Domain | None = None) -> None:
        self.print_domain(domain)

    def print_state(self, state: _State, heading: str | None = None) -> None:
        state.display(heading)

    def print_multigoal(self, multigoal: _Multigoal, heading: str | None = None) -> None:
        print(format_bindings(multigoal.__name__, multigoal.goals(), heading))

    def get_type(self, obj: object) -> str:
        return type(obj).__name__

    # -- planning --------------------------------------------------------------------------

    def planner(self, domain: _domain.Domain | None = None, **options: Any) -> Planner:
        """A :class:`Planner` on the current domain with this facade's settings."""
        opts: dict[str, Any] = {
            "verify_goals": self.verify_goals,
            "drop_unchanging_actions": self.drop_unchanging_actions,
        }
        opts.update(options)
        strategy = opts.pop("strategy", self.strategy)
        return Planner(domain or self._current("plan"), strategy, **opts)

    def find_plan(self, state: _State, todo_list: Sequence[Any]) -> list[tuple[Any, ...]] | bool:
        """GTPyhop's find_plan: the plan as a list, or False when there is none."""
        if self.verbose >= 1:
            print(f"FP> find_plan, verbose={self.verbose}: state = {state}, todo = {todo_list}")
        try:
            result: list[tuple[Any, ...]] | bool = (
                self.planner().find_plan(state, todo_list).as_list()
            )
        except PlanningFailed:
            result = False
        if self.verbose >= 1:
            print(f"FP> result = {result}\n")
        return result

    pyhop = find_plan

    def run_lazy_lookahead(
        self, state: _State, todo_list: Sequence[Any], max_tries: int = 10
    ) -> _State:
        """Plan, act with each action's command (``c_<name>``, else the action), replan.

        Returns the state after acting: done when a plan is empty, or after ``max_tries``
        plans, or when planning fails.
        """
        return _lazy_lookahead(self, self.planner(), state, todo_list, max_tries)[0]

    def validate_plan_from_goal(
        self,
        initial_state: _State,
        plan: Sequence[Any],
        key_string: str = "",
        goal_dict: Any = None,
    ) -> bool:
        """Replay ``plan`` from ``initial_state``; optionally check ``state.<key_string>``."""
        d = self._current("validate a plan")
        state = initial_state.copy()
        for action in plan:
            fn = d.actions.get(action[0])
            new = fn(state.copy(), *action[1:]) if fn is not None else None
            if not isinstance(new, State):
                return False
            state = new
        if key_string and goal_dict:
            binding = getattr(state, key_string, {})
            return all(binding.get(k) == v for k, v in dict(goal_dict).items())
        return True


def _lazy_lookahead(
    facade: GTPyhopModule, planner: Planner, state: State, todo: Sequence[Any], max_tries: int
) -> tuple[State, list[tuple[Any, ...]], int, bool]:
    domain = planner.domain
    executed: list[tuple[Any, ...]] = []
    for tries in range(1, max_tries + 1):
        try:
            plan = planner.find_plan(state, todo)
        except PlanningFailed:
            return state, executed, tries, False
        if not plan.actions:
            return state, executed, tries, True
        for action in plan.actions:
            fn = domain.commands.get("c_" + str(action[0]), domain.actions.get(action[0]))
            new = fn(state.copy(), *action[1:]) if fn is not None else None
            if not isinstance(new, State):
                if facade.verbose >= 1:
                    print(f"RLL> command for {action} failed; replanning")
                break
            executed.append(action)
            state = new
    return state, executed, max_tries, False


class _PlannerSession:
    """GTPyhop 2.x's PlannerSession on the facade: per-session domain, strategy, budget."""

    def __init__(
        self,
        facade: GTPyhopModule,
        session_id: str | None = None,
        *,
        domain: _domain.Domain | None = None,
        verbose: int = 0,
        recursive: bool = False,
        strategy: str | None = None,
        verify_goals: bool | None = None,
        drop_unchanging_actions: bool | None = None,
        **_ignored: Any,
    ) -> None:
        self.facade = facade
        self.session_id = session_id or f"session_{next(_SESSIONS)}"
        self.domain = domain
        self.verbose = verbose
        key: object = strategy if strategy is not None else recursive
        if key not in _STRATEGY_ALIASES:
            raise ValueError(f"unknown strategy {strategy!r}")
        self.strategy: Strategy = _STRATEGY_ALIASES[key]
        self.verify_goals = facade.verify_goals if verify_goals is None else verify_goals
        self.drop_unchanging_actions = (
            facade.drop_unchanging_actions
            if drop_unchanging_actions is None
            else drop_unchanging_actions
        )

    def __enter__(self) -> _PlannerSession:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    @property
    def recursive(self) -> bool:
        return self.strategy == "recursive_dfs"

    @contextlib.contextmanager
    def isolated_execution(self, **_ignored: Any) -> Iterator[_PlannerSession]:
        yield self

    def _planner(self, timeout_ms: int | None = None, max_expansions: int | None = None) -> Planner:
        return self.facade.planner(
            self.domain,
            strategy=self.strategy,
            verify_goals=self.verify_goals,
            drop_unchanging_actions=self.drop_unchanging_actions,
            timeout=None if timeout_ms is None else timeout_ms / 1000,
            max_expansions=max_expansions,
        )

    def find_plan(
        self,
        state: State,
        todo_list: Sequence[Any],
        *,
        timeout_ms: int | None = None,
        max_expansions: int | None = None,
        **_ignored: Any,
    ) -> PlanResult:
        start = time.perf_counter()
        planner = self._planner(timeout_ms, max_expansions)
        try:
            plan = planner.find_plan(state, todo_list)
        except (PlanningFailed, BudgetExceeded, Cancelled) as e:
            return PlanResult(
                False,
                error=str(e),
                stats={
                    "duration_ms": (time.perf_counter() - start) * 1000,
                    "expansions": e.expansions,
                },
                session_id=self.session_id,
            )
        return PlanResult(
            True,
            plan.as_list(),
            stats={
                "duration_ms": (time.perf_counter() - start) * 1000,
                "expansions": plan.expansions,
            },
            session_id=self.session_id,
        )

    def run_lazy_lookahead(
        self, state: State, todo_list: Sequence[Any], *, max_tries: int = 10, **_ignored: Any
    ) -> ExecutionResult:
        try:
            final, executed, tries, ok = _lazy_lookahead(
                self.facade, self._planner(), state, todo_list, max_tries
            )
        except EngineError as e:
            return ExecutionResult(False, error=str(e), session_id=self.session_id)
        return ExecutionResult(ok, final, executed, session_id=self.session_id, tries_used=tries)


_SESSIONS = itertools.count(1)
_LOADS = itertools.count(1)
_LOAD_LOCK = threading.Lock()  # guards the brief swap of sys.modules['gtpyhop'] during a load


def _test_harness_module() -> types.ModuleType:
    harness = types.ModuleType("gtpyhop.test_harness", "check_result and pause, facade versions")

    def check_result(actual: object, expected: object) -> None:
        if actual != expected:
            raise AssertionError(f"actual result {actual!r} differs from expected {expected!r}")
        if actual is not None:
            print("check_result> The result is as expected.\n")

    def pause(do_pause: bool = True) -> None:
        print("Continuing.")

    harness.check_result = check_result  # type: ignore[attr-defined]
    harness.pause = pause  # type: ignore[attr-defined]
    return harness


@dataclass
class LoadedModule:
    """A GTPyhop module loaded on a facade: the module, its facade, its current domain."""

    module: types.ModuleType
    facade: GTPyhopModule

    @property
    def domain(self) -> _domain.Domain:
        """The domain the module declared (its ``the_domain``, else the facade's current)."""
        d = getattr(self.module, "the_domain", None)
        if isinstance(d, _domain.Domain):
            return d
        if self.facade.current_domain is None:
            raise DomainError(f"module {self.module.__name__} created no domain")
        return self.facade.current_domain


def load_gtpyhop_module(source: str | Path, *, verbose: int = 0) -> LoadedModule:
    """Execute a GTPyhop domain module or package with ``import gtpyhop`` bound to a facade.

    ``source`` is a dotted module name (``"gtpyhop.examples.blocks_htn"``; found, not
    imported) or a path to a ``.py`` file or a package directory. The module runs under
    a private name, so loading the same source twice gives two independent domains.

    Raises:
        ModuleNotFoundError: ``source`` names nothing.
        Exception: whatever the module raises while it runs (a malformed declaration
            raises :class:`~.errors.DomainError`).
    """
    path = _locate(source)
    facade = GTPyhopModule()
    facade.verbose = verbose
    parent = f"_aria_gtpyhop_load_{next(_LOADS)}"
    stem = path.name if path.is_dir() else path.stem
    fullname = f"{parent}.{stem.replace('-', '_')}"
    if path.is_dir():
        spec = importlib.util.spec_from_file_location(
            fullname, path / "__init__.py", submodule_search_locations=[str(path)]
        )
    else:
        spec = importlib.util.spec_from_file_location(fullname, path)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"cannot load {source!r}")
    module = importlib.util.module_from_spec(spec)
    parent_module = types.ModuleType(parent)
    parent_module.__path__ = []
    with _LOAD_LOCK:
        saved = {k: sys.modules.get(k) for k in ("gtpyhop", "gtpyhop.test_harness")}
        sys.modules["gtpyhop"] = facade
        sys.modules["gtpyhop.test_harness"] = facade.test_harness
        sys.modules[parent] = parent_module
        sys.modules[fullname] = module
        try:
            spec.loader.exec_module(module)
        finally:
            for k, v in saved.items():
                if v is None:
                    sys.modules.pop(k, None)
                else:
                    sys.modules[k] = v
    return LoadedModule(module, facade)


def _locate(source: str | Path) -> Path:
    path = Path(source)
    if path.exists():
        return path
    name = str(source)
    parent, _, leaf = name.rpartition(".")
    if parent:
        spec = importlib.util.find_spec(parent)
        if spec is not None and spec.submodule_search_locations:
            for base in spec.submodule_search_locations:
                for candidate in (Path(base) / leaf, Path(base) / f"{leaf}.py"):
                    if candidate.exists():
                        return candidate
    raise ModuleNotFoundError(f"no GTPyhop module or package {name!r}")


__all__ += ["LoadedModule", "STRATEGIES"]
