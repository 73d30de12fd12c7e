"""Alert rules evaluated on each round; alert state kept in the store; mail queued.

Modules: ``metrics`` (what a rule measures in a host's result, pure), ``machine``
(the ok -> pending -> firing -> resolved state machine, pure), ``evaluate`` (a
round against the rules in one transaction: states and outbox rows), ``query``
(what is firing). Sending is ``fleetstat.mail``'s job: alerts only queue.
"""

from fleetstat.alerts.evaluate import Evaluation, evaluate_round, limits_for
from fleetstat.alerts.machine import AlertState, Limits, step
from fleetstat.alerts.metrics import Measurement, measure, metric_value
from fleetstat.alerts.query import AlertView, active_alerts

__all__ = [
    "AlertState",
    "AlertView",
    "Evaluation",
    "Limits",
    "Measurement",
    "active_alerts",
    "evaluate_round",
    "limits_for",
    "measure",
    "metric_value",
    "step",
]
