"""aria_engine's functional core: a GTPyhop-compatible hierarchical task planner.

The planner (:class:`Planner`, :func:`find_plan`) plans with GTPyhop's domain model —
actions, commands, task/unigoal/multigoal methods, goal verification — and its three
strategies, plus cost-optimising ones, without recursion, with enforced budgets and
cancellation. :mod:`.compat` runs unmodified GTPyhop domain modules on it.
"""

from __future__ import annotations

from .compat import GTPyhopModule as GTPyhopModule
from .compat import LoadedModule as LoadedModule
from .compat import load_gtpyhop_module as load_gtpyhop_module
from .domain import Domain as Domain
from .domain import m_split_multigoal as m_split_multigoal
from .errors import BudgetExceeded as BudgetExceeded
from .errors import Cancelled as Cancelled
from .errors import CorruptCharacter as CorruptCharacter
from .errors import DomainError as DomainError
from .errors import EngineBusy as EngineBusy
from .errors import EngineError as EngineError
from .errors import GoalNotAchieved as GoalNotAchieved
from .errors import MalformedReturn as MalformedReturn
from .errors import PlanningFailed as PlanningFailed
from .errors import UnknownTodoItem as UnknownTodoItem
from .planner import STRATEGIES as STRATEGIES
from .planner import CancelToken as CancelToken
from .planner import Plan as Plan
from .planner import Planner as Planner
from .planner import Strategy as Strategy
from .planner import find_plan as find_plan
from .state import Multigoal as Multigoal
from .state import State as State
from .todo import ItemKind as ItemKind
from .todo import classify as classify

__all__ = [
    "STRATEGIES",
    "BudgetExceeded",
    "CancelToken",
    "Cancelled",
    "CorruptCharacter",
    "Domain",
    "DomainError",
    "EngineBusy",
    "EngineError",
    "GTPyhopModule",
    "GoalNotAchieved",
    "ItemKind",
    "LoadedModule",
    "MalformedReturn",
    "Multigoal",
    "Plan",
    "Planner",
    "PlanningFailed",
    "State",
    "Strategy",
    "UnknownTodoItem",
    "classify",
    "find_plan",
    "load_gtpyhop_module",
    "m_split_multigoal",
]
