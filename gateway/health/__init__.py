"""The health of every system instance, shared by all gateway processes through the store.

``state`` is one instance's health and how it may change; ``shared`` the store's picture
and the operator's API; ``view`` this process's copy that routing reads; ``availability``
the question routing asks; ``outliers`` passive checks (the proxy's traffic); ``probes``
and ``leases`` active checks, one process at a time per instance; ``events`` what is
reported (logs, audit, observers such as metrics); ``checks`` puts them together;
``report`` is ``roam routes status``'s table.
"""

from gateway.health.availability import AlwaysUp, Health, unavailable_because, usable
from gateway.health.checks import HealthChecks, node_id
from gateway.health.events import CheckResult, HealthObserver, LogObserver, MetricsObserver
from gateway.health.leases import Leases
from gateway.health.outliers import Outliers
from gateway.health.probes import Prober, Target
from gateway.health.report import status_table
from gateway.health.shared import SharedHealth, UnknownInstance
from gateway.health.state import Availability, InstanceState, Transition, instance_id
from gateway.health.view import HealthView

__all__ = [
    "AlwaysUp",
    "Availability",
    "CheckResult",
    "Health",
    "HealthChecks",
    "HealthObserver",
    "HealthView",
    "InstanceState",
    "Leases",
    "LogObserver",
    "MetricsObserver",
    "Outliers",
    "Prober",
    "SharedHealth",
    "Target",
    "Transition",
    "UnknownInstance",
    "instance_id",
    "node_id",
    "status_table",
    "unavailable_because",
    "usable",
]
