"""Aria's actor runtime: OTP-style supervised actors on asyncio.

The public API is exactly what ``__all__`` lists; everything else is internal.
"""

from __future__ import annotations

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
