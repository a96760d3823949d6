"""Aria's actor runtime: OTP-style supervised actors on asyncio.

The public API is exactly what ``__all__`` lists; everything else is internal.

Names load on first use (PEP 562), so ``import aria_actors.services.storage`` and the
command-line tools do not pay for the whole runtime at start.
"""

from __future__ import annotations

import importlib as _importlib
from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

if _TYPE_CHECKING:
    from ._runtime.actor import Actor as Actor
    from ._runtime.actor import DeferredReply as DeferredReply
    from ._runtime.actor import TimerRef as TimerRef
    from ._runtime.actor import handles as handles
    from ._runtime.blocking import run_blocking as run_blocking
    from ._runtime.blocking import run_in_process as run_in_process
    from ._runtime.boot import LAYER_ORDER as LAYER_ORDER
    from ._runtime.boot import boot_order as boot_order
    from ._runtime.clock import Clock as Clock
    from ._runtime.clock import SystemClock as SystemClock
    from ._runtime.config import NodeConfig as NodeConfig
    from ._runtime.config import RuntimeConfig as RuntimeConfig
    from ._runtime.errors import ActorExited as ActorExited
    from ._runtime.errors import AriaError as AriaError
    from ._runtime.errors import BootError as BootError
    from ._runtime.errors import CallTimeout as CallTimeout
    from ._runtime.errors import ConfigError as ConfigError
    from ._runtime.errors import MailboxFull as MailboxFull
    from ._runtime.errors import NoProcess as NoProcess
    from ._runtime.errors import StartError as StartError
    from ._runtime.errors import SupervisorError as SupervisorError
    from ._runtime.errors import UnhandledMessage as UnhandledMessage
    from ._runtime.loader import load_services as load_services
    from ._runtime.mailbox import MailboxStatistics as MailboxStatistics
    from ._runtime.messages import Down as Down
    from ._runtime.messages import Exit as Exit
    from ._runtime.messages import ExitKind as ExitKind
    from ._runtime.messages import ExitReason as ExitReason
    from ._runtime.node import Node as Node
    from ._runtime.ref import ActorRef as ActorRef
    from ._runtime.ref import MonitorRef as MonitorRef
    from ._runtime.specs import DEFAULTS as DEFAULTS
    from ._runtime.specs import ChildSpec as ChildSpec
    from ._runtime.specs import DynamicSupervisorSpec as DynamicSupervisorSpec
    from ._runtime.specs import Restart as Restart
    from ._runtime.specs import ServiceSpec as ServiceSpec
    from ._runtime.specs import Shutdown as Shutdown
    from ._runtime.specs import Strategy as Strategy
    from ._runtime.specs import SupervisorSpec as SupervisorSpec
    from ._runtime.supervisor_api import ChildCounts as ChildCounts
    from ._runtime.supervisor_api import ChildInfo as ChildInfo
    from ._runtime.supervisor_api import SupervisorRef as SupervisorRef
    from ._runtime.threaded import NodeThread as NodeThread

__version__ = "0.1.0"

__all__ = [
    "DEFAULTS",
    "LAYER_ORDER",
    "Actor",
    "ActorExited",
    "ActorRef",
    "AriaError",
    "BootError",
    "CallTimeout",
    "ChildCounts",
    "ChildInfo",
    "ChildSpec",
    "Clock",
    "ConfigError",
    "DeferredReply",
    "Down",
    "DynamicSupervisorSpec",
    "Exit",
    "ExitKind",
    "ExitReason",
    "MailboxFull",
    "MailboxStatistics",
    "MonitorRef",
    "NoProcess",
    "Node",
    "NodeConfig",
    "NodeThread",
    "Restart",
    "RuntimeConfig",
    "ServiceSpec",
    "Shutdown",
    "StartError",
    "Strategy",
    "SupervisorError",
    "SupervisorRef",
    "SupervisorSpec",
    "SystemClock",
    "TimerRef",
    "UnhandledMessage",
    "boot_order",
    "handles",
    "load_services",
    "run_blocking",
    "run_in_process",
]

_LAZY: dict[str, str] = {
    "Actor": "._runtime.actor",
    "DeferredReply": "._runtime.actor",
    "TimerRef": "._runtime.actor",
    "handles": "._runtime.actor",
    "run_blocking": "._runtime.blocking",
    "run_in_process": "._runtime.blocking",
    "LAYER_ORDER": "._runtime.boot",
    "boot_order": "._runtime.boot",
    "Clock": "._runtime.clock",
    "SystemClock": "._runtime.clock",
    "NodeConfig": "._runtime.config",
    "RuntimeConfig": "._runtime.config",
    "ActorExited": "._runtime.errors",
    "AriaError": "._runtime.errors",
    "BootError": "._runtime.errors",
    "CallTimeout": "._runtime.errors",
    "ConfigError": "._runtime.errors",
    "MailboxFull": "._runtime.errors",
    "NoProcess": "._runtime.errors",
    "StartError": "._runtime.errors",
    "SupervisorError": "._runtime.errors",
    "UnhandledMessage": "._runtime.errors",
    "load_services": "._runtime.loader",
    "MailboxStatistics": "._runtime.mailbox",
    "Down": "._runtime.messages",
    "Exit": "._runtime.messages",
    "ExitKind": "._runtime.messages",
    "ExitReason": "._runtime.messages",
    "Node": "._runtime.node",
    "ActorRef": "._runtime.ref",
    "MonitorRef": "._runtime.ref",
    "DEFAULTS": "._runtime.specs",
    "ChildSpec": "._runtime.specs",
    "DynamicSupervisorSpec": "._runtime.specs",
    "Restart": "._runtime.specs",
    "ServiceSpec": "._runtime.specs",
    "Shutdown": "._runtime.specs",
    "Strategy": "._runtime.specs",
    "SupervisorSpec": "._runtime.specs",
    "ChildCounts": "._runtime.supervisor_api",
    "ChildInfo": "._runtime.supervisor_api",
    "SupervisorRef": "._runtime.supervisor_api",
    "NodeThread": "._runtime.threaded",
}


def __getattr__(name: str) -> _Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'aria_actors' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
