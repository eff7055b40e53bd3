"""What health reports to the metrics: gauges for every instance after each read, probe
results with their durations (prometheus-client's own registry, read back)."""

from __future__ import annotations

from gateway.config import Systems
from gateway.health import CheckResult, HealthView, MetricsObserver, SharedHealth
from gateway.metrics.recorder import PrometheusMetrics
from tests.health.conftest import A, B, Processes
from tests.health.test_shared import eject


def sample(metrics: PrometheusMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, {"system": "pair", **labels})


async def test_every_process_sets_every_instance_s_gauges_after_a_read(
        processes: Processes, systems: Systems) -> None:
    metrics = PrometheusMetrics(systems=systems)
    view = HealthView(SharedHealth(processes(), systems, observers=[MetricsObserver(metrics)]))
    other = SharedHealth(processes(), systems)
    await other.change("pair", A, eject)
    await other.drain("pair", B, by="ops")
    await view.read()
    assert sample(metrics, "roam_instance_healthy", upstream=A) == 0
    assert sample(metrics, "roam_instance_circuit_state", upstream=A, state="open") == 1
    assert sample(metrics, "roam_instance_circuit_state", upstream=A, state="closed") == 0
    assert sample(metrics, "roam_instance_healthy", upstream=B) == 0  # drained: no traffic
    assert sample(metrics, "roam_instance_circuit_state", upstream=B, state="closed") == 1


async def test_a_transition_and_a_probe_are_recorded_where_they_happen(
        processes: Processes, systems: Systems) -> None:
    metrics = PrometheusMetrics(systems=systems)
    shared = SharedHealth(processes(), systems, observers=[MetricsObserver(metrics)])
    await shared.change("pair", A, lambda s: s.moved("half_open", "cooldown over", now=1,
                                                     cause="passive"))
    assert sample(metrics, "roam_instance_healthy", upstream=A) == 1  # it takes its trial
    assert sample(metrics, "roam_instance_circuit_state", upstream=A, state="half_open") == 1
    for ok, error in ((True, ""), (False, "timeout"), (False, "status 503")):
        await shared.record_check(CheckResult("pair", A, 1.0, ok, None, error, 0.02, "n"))
    for result in ("success", "timeout", "failure"):
        assert sample(metrics, "roam_health_checks_total", upstream=A, result=result) == 1
    assert sample(metrics, "roam_health_check_duration_seconds_count", upstream=A) == 3
