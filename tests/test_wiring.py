"""gateway/wiring/ (build.py, parts.py): one function builds every part from the config,
and the settings that used to be constants reach the parts that use them."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.base import PresentsIdentity, RedirectsLogin
from connectors.cas import Cas
from connectors.oidc import OidcRelyingParty
from gateway.config import Config
from gateway.errors import ConfigError
from gateway.keys import generate_key_file
from gateway.store.memory import MemoryStore
from gateway.wiring import build_gateway
from gateway.wiring.parts import open_digests, open_operators
from tests.support.gateway import config_on_port


def test_the_configured_limits_reach_their_parts() -> None:
    base = config_on_port(8000)
    settings = base.settings.model_copy(update={
        "proxy": base.settings.proxy.model_copy(update={"max_body": 4096}),
        "health": base.settings.health.model_copy(update={"passive_failures": 7,
                                                          "passive_cooldown": 12.5}),
    })
    gateway = build_gateway(base.revised(settings=settings), store=MemoryStore())
    assert gateway.proxy.max_body == 4096
    rules = gateway.health.rules["hunan-province"]
    assert (rules.passive_failures, rules.passive_cooldown) == (7, 12.5)
    # routing, the proxy and CAS/ticket logins share one view of the shared state
    assert gateway.resolver.health is gateway.health
    assert gateway.proxy.health is gateway.health.outliers
    assert gateway.proxy.health.view is gateway.health.view
    assert gateway.failover.health is gateway.health
    # the proxy's systems are judged by their traffic too
    assert {key[0] for key in gateway.health.view.passive} == {"hunan-province"}


def test_every_system_gets_its_connector_opened_once() -> None:
    gateway = build_gateway(config_on_port(8000), store=MemoryStore())
    systems = {system.id for system in gateway.config.systems}
    assert set(gateway.connectors) == systems
    assert isinstance(gateway.connectors["xiangtan-gjj"], OidcRelyingParty)
    assert isinstance(gateway.connectors["yuelu-bdc"], Cas)
    assert isinstance(gateway.connectors["xiangtan-gjj"], RedirectsLogin)
    assert set(gateway.proxy.connectors) == {
        sid for sid, c in gateway.connectors.items() if isinstance(c, PresentsIdentity)}
    assert set(gateway.proxy.connectors) == {"hunan-province"}


async def test_running_closes_what_it_made_and_leaves_what_it_was_given() -> None:
    given = MemoryStore()
    await given.upsert("t", "kept", {"a": 1}, 60)
    gateway = build_gateway(config_on_port(8000), store=given)
    async with gateway.running():
        assert gateway.background.group is not None
    assert gateway.http.is_closed  # made here: closed
    assert await given.find("t", "kept") == {"a": 1}  # given: still usable
    assert not gateway.owns_store


def test_hosts_for_a_system_the_proxy_does_not_serve_are_refused(tmp_path: Path) -> None:
    """Only the proxy answers on a system's own hosts, so a CAS system with hosts would
    answer every request there with 404: refused when the connectors open."""
    (tmp_path / "systems.toml").write_text("""
[[item]]
code = "A-1"
name = "甲"

[[system]]
id = "cas-sys"
name = "旧系统"
region = "430000"
level = "province"
instances = ["http://127.0.0.1:9"]
connector = "cas"
connector_settings = { services = ["http://127.0.0.1:9/"] }
items = ["A-1"]
hosts = ["cas.roam.test"]
""", "utf-8")
    for alg in ("RS256", "ES256"):  # an https issuer keeps its keys in a directory
        generate_key_file(tmp_path / "keys", alg)
    base = config_on_port(8000)
    settings = base.settings.model_copy(update={
        "gateway": base.settings.gateway.model_copy(update={
            "issuer": "https://sso.roam.test", "key_dir": str(tmp_path / "keys")}),
        "login": base.settings.login.model_copy(update={"simulated_step_up": False}),
        "routing": base.settings.routing.model_copy(
            update={"systems_file": str(tmp_path / "systems.toml")})})
    config = base.revised(settings=settings)  # the loader cannot tell: it opens nothing
    with pytest.raises(ConfigError) as refused:
        build_gateway(config, store=MemoryStore())
    assert refused.value.problems == [
        "systems file: system 'cas-sys': hosts: only for systems the proxy serves "
        "(connector 'cas' does not present identity)"]


def _production_binding(tmp_path: Path, **gateway: str) -> Config:
    base = config_on_port(8000)
    for alg in ("RS256", "ES256"):
        generate_key_file(tmp_path / "keys", alg)
    settings = base.settings.model_copy(update={
        "gateway": base.settings.gateway.model_copy(update={
            "issuer": "https://sso.roam.test", "key_dir": str(tmp_path / "keys"),
            "secret_env": "ROAM_TEST_NO_SUCH_SECRET", **gateway}),
        "login": base.settings.login.model_copy(update={"simulated_step_up": False}),
        "binding": base.settings.binding.model_copy(update={
            "verifier": "http", "base_url": "https://verify.roam.test"})})
    return base.revised(settings=settings)


def test_real_name_binding_in_production_needs_the_gateways_secret(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        open_digests(_production_binding(tmp_path))
    assert "ROAM_TEST_NO_SUCH_SECRET" in refused.value.problems[0]
    (tmp_path / "short").write_text("too short\n")
    with pytest.raises(ConfigError) as short:
        open_digests(_production_binding(tmp_path, secret_file=str(tmp_path / "short")))
    assert "at least 32 bytes" in short.value.problems[0]


def test_pairwise_subjects_in_production_need_the_gateways_secret(tmp_path: Path) -> None:
    """A pairwise sub keyed by a secret of one process would change with every restart."""
    base = _production_binding(tmp_path)
    settings = base.settings.model_copy(update={
        "binding": base.settings.binding.model_copy(update={"verifier": None})})
    plain = base.revised(settings=settings)
    open_digests(plain)  # no binding, no pairwise client: nothing keyed is kept
    pairwise = plain.revised(clients=tuple(
        c.model_copy(update={"subject_type": "pairwise"}) if c.client_id == "changsha-gov"
        else c for c in plain.clients))
    with pytest.raises(ConfigError) as refused:
        open_digests(pairwise)
    assert refused.value.problems == [
        f"{pairwise.source}: gateway: pairwise subjects needs the gateway's secret "
        "($ROAM_TEST_NO_SUCH_SECRET or gateway.secret_file), the same in every process"]


def test_every_process_with_one_secret_file_makes_the_same_digests(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("s" * 48 + "\n")
    config = _production_binding(tmp_path, secret_file=str(tmp_path / "secret"))
    first, second = open_digests(config), open_digests(config)
    assert first.of("bind-id", "430102199001010016") == second.of(
        "bind-id", "430102199001010016")
    # without a secret a loopback demo gets one of its own, never shared
    demo = config_on_port(8000)
    assert open_digests(demo).of("x", "1") != open_digests(demo).of("x", "1")


def test_the_demos_operators_are_refused_on_a_real_issuer(tmp_path: Path) -> None:
    config = _production_binding(tmp_path)
    assert config.settings.ops.operators_file == "operators.toml"  # the shipped demo's
    with pytest.raises(ConfigError) as refused:
        open_operators(config)
    assert "loopback issuer only" in refused.value.problems[0]
    assert set(open_operators(config_on_port(8000))) == {"ops-demo", "ops-viewer"}
