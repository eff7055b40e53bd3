"""``roam``: the commands operators run, as subprocesses (exit codes, no tracebacks)."""

from __future__ import annotations

import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cli import roam
from tests.support.gateway import REPO


def with_shipped_files(main: str) -> str:
    """A copy of roam.toml elsewhere still reads the shipped clients, directory, systems
    and operators."""
    for name, key in (("clients", "clients_file"), ("directory", "directory_file"),
                      ("systems", "systems_file"), ("operators", "operators_file")):
        main = main.replace(f'{key} = "{name}.toml"', f'{key} = "{REPO / "config" / name}.toml"')
    return main


def config_with_keys(tmp_path: Path, keys: Path) -> Path:
    """The shipped config, with a key directory instead of ephemeral keys."""
    main = (REPO / "config" / "roam.toml").read_text("utf-8")
    main = main.replace('key_dir = ""', f'key_dir = "{keys}"')
    main = with_shipped_files(main)
    path = tmp_path / "roam.toml"
    path.write_text(main, "utf-8")
    return path


def test_config_check_passes_on_shipped_config() -> None:
    result = roam("config", "check")
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


def test_bad_config_exits_2_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "roam.toml"
    bad.write_text('[gateway]\nport = "x"\n[store]\nbackend = "mongo"\n', encoding="utf-8")
    result = roam("--config", str(bad), "config", "check")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"{bad}: gateway.port" in result.stderr
    assert f"{bad}: store.backend" in result.stderr
    assert "clients.toml: file not found" in result.stderr


def test_a_proxied_system_without_a_host_of_its_own_needs_path_mode(tmp_path: Path) -> None:
    for name in ("roam.toml", "clients.toml", "directory.toml", "operators.toml"):
        shutil.copy(REPO / "config" / name, tmp_path / name)
    systems = (REPO / "config" / "systems.toml").read_text("utf-8")
    assert 'hosts = ["hunan-province.localhost"]\n' in systems
    (tmp_path / "systems.toml").write_text(
        systems.replace('hosts = ["hunan-province.localhost"]\n', ""), "utf-8")
    refused = roam("--config", str(tmp_path / "roam.toml"), "config", "check")
    assert refused.returncode == 2
    assert "Traceback" not in refused.stderr
    assert ("system 'hunan-province': hosts: a proxied system needs a host of its own"
            in refused.stderr)
    opted_in = roam("--config", str(tmp_path / "roam.toml"), "config", "check",
                    env={"ROAM_PROXY_PATH_MODE": "true"})
    assert opted_in.returncode == 0, opted_in.stderr


def test_env_override_error_exits_2() -> None:
    result = roam("config", "check", env={"ROAM_STORE_BACKEND": "mongo"})
    assert result.returncode == 2
    assert "ROAM_STORE_BACKEND" in result.stderr


@pytest.mark.parametrize(("env", "expected"), [
    ({"ROAM_STORE_REDIS_URL": "redis+cluster://:s3cret@10.0.0.1:7000"},
     ["store.redis_url", "scheme 'redis+cluster' is not redis://"]),
    ({"ROAM_STORE_REDIS_URL": "redis://10.0.0.1:7000/0?cluster=true"},
     ["store.redis_url", "a Cluster or Sentinel is not a URL option"]),
    ({"ROAM_STORE_CLUSTER_NODES": "redis://:s3cret@10.0.0.1,redis://10.0.0.2:7000/3"},
     ["store.cluster_nodes", "'10.0.0.1' is not redis://host:port"]),
    ({"ROAM_STORE_SENTINELS": "10.0.0.1:26379,10.0.0.2"},
     ["store.sentinels", "'10.0.0.2' is not host:port"]),
    ({"ROAM_STORE_SENTINELS": "10.0.0.1:26379"}, ["sentinels and sentinel_service go together"]),
    ({"ROAM_STORE_SENTINELS": "10.0.0.1:26379", "ROAM_STORE_SENTINEL_SERVICE": "roam",
      "ROAM_STORE_CLUSTER_NODES": "redis://10.0.0.1:7000"},
     ["cluster_nodes and sentinels both set"]),
])
def test_a_redis_topology_config_check_refuses_names_each_problem(
        env: dict[str, str], expected: list[str]) -> None:
    result = roam("config", "check", env={"ROAM_STORE_BACKEND": "redis", **env})
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "s3cret" not in result.stderr, "a password in a URL is never shown"
    lines = [line for line in result.stderr.splitlines() if "store" in line]
    assert lines, result.stderr
    for text in expected:
        assert any(text in line for line in lines), result.stderr


def test_clients_list() -> None:
    result = roam("clients", "list")
    assert result.returncode == 0
    assert "changsha-gov" in result.stdout
    assert "client_secret_basic" in result.stdout
    assert "public" in result.stdout


def test_clients_secret_prints_a_matching_digest() -> None:
    import hashlib

    result = roam("clients", "secret")
    lines = result.stdout.splitlines()
    secret = lines[0].rsplit(" ", 1)[1]
    digest = lines[1].split('"')[1]
    assert hashlib.sha256(secret.encode()).hexdigest() == digest


def test_keys_generate_writes_0600_keys_the_gateway_loads(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    for alg in ("RS256", "ES256"):
        result = roam("keys", "generate", "--alg", alg, "--dir", str(keys))
        assert result.returncode == 0, result.stderr
    files = sorted(keys.glob("*.pem"))
    assert len(files) == 2
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    config_with_keys(tmp_path, keys)
    result = roam("--config", str(tmp_path / "roam.toml"), "config", "check")
    assert result.returncode == 0, result.stderr


def test_missing_key_alg_is_a_config_error(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    roam("keys", "generate", "--alg", "RS256", "--dir", str(keys))
    config_with_keys(tmp_path, keys)
    result = roam("--config", str(tmp_path / "roam.toml"), "config", "check")
    assert result.returncode == 2
    assert "gateway.key_dir: no signing key for ES256 (run `roam keys generate --alg ES256`)" \
        in result.stderr
    assert "Traceback" not in result.stderr


def test_sessions_revoke_needs_the_shared_store() -> None:
    result = roam("sessions", "revoke", "--subject", "c-0001")
    assert result.returncode == 2
    assert "store.backend" in result.stderr
    assert "gateway.key_dir" in result.stderr


def test_sessions_revoke_logs_a_subject_out_everywhere(
        tmp_path: Path, redis_url: str, redis_prefix: str) -> None:
    import httpx

    from gateway.app import create_app
    from gateway.config import load_config
    from gateway.keys import generate_key_file
    from tests.support.gateway import log_in, query
    from tests.support.receiver import Receiver
    from tests.support.rp import authorize_url, rp_client
    from tests.support.servers import free_port, serve

    keys = tmp_path / "keys"
    for alg in ("RS256", "ES256"):  # RS256 ID tokens, ES256 access tokens
        generate_key_file(keys, alg)
    rp = Receiver()
    with serve(rp.app()) as rp_url:
        port = free_port()
        (tmp_path / "clients.toml").write_text(f"""
[[client]]
client_id = "changsha-gov"
client_name = "长沙市政务服务"
client_secret_sha256 = "4230c2a681805695f89dc3396f9db25ffe87086dfe56c4ea79b905127d5eac69"
redirect_uris = ["http://127.0.0.1:8001/callback"]
scopes = ["openid", "profile", "phone"]
backchannel_logout_uri = "{rp_url}/changsha"
""", "utf-8")
        (tmp_path / "roam.toml").write_text(f"""
[gateway]
issuer = "http://127.0.0.1:{port}"
port = {port}
key_dir = "keys"
[store]
backend = "redis"
redis_url = "{redis_url}"
prefix = "{redis_prefix}"
[login]
directory_file = "{REPO / 'config' / 'directory.toml'}"
[outbound]
allowed_networks = ["127.0.0.0/8"]
retry_for = 2
[routing]
systems_file = ""
""", "utf-8")
        config = load_config(tmp_path / "roam.toml", env={})
        with serve(create_app(config), port) as gw, httpx.Client(base_url=gw) as browser:
            url, _ = authorize_url(rp_client("changsha-gov", gw), gw, nonce="n")
            assert "code" in query(log_in(browser, url))
            result = roam("--config", str(tmp_path / "roam.toml"), "sessions", "revoke",
                          "--subject", "c-0001")
            assert result.returncode == 0, result.stderr
            assert "1 session(s) ended" in result.stdout
            assert "delivered 1" in result.stdout
            assert len(rp.wait_for("changsha")) == 1
            url, _ = authorize_url(rp_client("changsha-gov", gw), gw, prompt="none")
            assert query(browser.get(url).headers["location"])["error"] == "login_required"


def test_routes_check_prints_the_routing_table() -> None:
    result = roam("routes", "check")
    assert result.returncode == 0, result.stderr
    assert "430000-GJJ-001 住房公积金提取" in result.stdout
    assert "every division routed (136)" in result.stdout
    assert "instance health is not considered here" in result.stdout  # it claims no health


def test_routes_check_reports_a_bad_systems_file(tmp_path: Path) -> None:
    main = with_shipped_files((REPO / "config" / "roam.toml").read_text("utf-8"))
    main = main.replace(f'systems_file = "{REPO / "config" / "systems"}.toml"',
                        'systems_file = "systems.toml"')
    (tmp_path / "roam.toml").write_text(main, "utf-8")
    (tmp_path / "systems.toml").write_text(
        '[[system]]\nid = "bad-sys"\nname = "X"\nregion = "439999"\nlevel = "county"\n'
        'instances = ["http://127.0.0.1:9"]\nconnector = "soap"\nitems = ["nope"]\n', "utf-8")
    result = roam("--config", str(tmp_path / "roam.toml"), "routes", "check")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "system[0].region" in result.stderr
    assert "system[0].items" in result.stderr
    assert "system[0].connector: unknown connector type 'soap'" in result.stderr


def test_the_cli_leaves_warning_filters_alone_and_imports_no_demo() -> None:
    """No global warning filters in ``roam``; the demo is not part of the gateway, and
    nothing the gateway imports warns (``-W error`` turns any warning into a failure)."""
    probe = ("import sys, warnings; import gateway.cli, gateway.app; "
             "before = list(warnings.filters); "  # authlib's import adds one of its own
             "gateway.cli.main(['clients', 'secret']); "
             "assert warnings.filters == before, 'warning filters changed'; "
             "assert not [m for m in sys.modules if m == 'demo' or m.startswith('demo.')]")
    result = subprocess.run(  # noqa: S603 - our own code, fixed argv
        [sys.executable, "-W", "error", "-c", probe], cwd=REPO, capture_output=True,
        text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "client_secret_sha256" in result.stdout


def test_roam_has_no_demo_command() -> None:
    result = roam("demo")
    assert result.returncode == 2
    assert "invalid choice: 'demo'" in result.stderr


def test_simulated_step_up_on_a_public_issuer_exits_2(tmp_path: Path) -> None:
    """The shipped demo config turned public by the environment: refused at start-up."""
    keys = tmp_path / "keys"
    keys.mkdir()
    path = config_with_keys(tmp_path, keys)
    result = roam("--config", str(path), "config", "check",
                  env={"ROAM_GATEWAY_ISSUER": "https://sso.hunan.example"})
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"{path}: login.simulated_step_up" in result.stderr


def test_config_check_refuses_bad_metrics_settings(tmp_path: Path) -> None:
    result = roam("config", "check", env={"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "none"),
                                          "ROAM_METRICS_TOKEN_FILE": str(tmp_path / "none")})
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "PROMETHEUS_MULTIPROC_DIR" in result.stderr
    assert "metrics.token_file: cannot read" in result.stderr  # every problem at once
    short = roam("config", "check", env={"ROAM_METRICS_TOKEN": "short"})
    assert short.returncode == 2
    assert "ROAM_METRICS_TOKEN (metrics.token)" in short.stderr
    assert "short" not in short.stderr.replace("ROAM_METRICS_TOKEN", "")
    (tmp_path / "token").write_text("x" * 40 + "\n", "utf-8")
    good = roam("config", "check", env={"PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
                                        "ROAM_METRICS_TOKEN_FILE": str(tmp_path / "token")})
    assert good.returncode == 0, good.stderr


def test_routes_status_and_drain_need_the_shared_store() -> None:
    for args in (("routes", "status"), ("routes", "drain", "yuelu-bdc", "1")):
        result = roam(*args)
        assert result.returncode == 2
        assert "store.backend: a 'memory' store lives inside the gateway process" in \
            result.stderr
        assert "Traceback" not in result.stderr


def test_routes_drain_status_and_undrain_on_the_shared_store(redis_url: str,
                                                            redis_prefix: str) -> None:
    shared = {"ROAM_STORE_BACKEND": "redis", "ROAM_STORE_REDIS_URL": redis_url,
              "ROAM_STORE_PREFIX": redis_prefix}
    status = roam("routes", "status", env=shared)
    assert status.returncode == 0, status.stderr
    assert "hunan-province  http://127.0.0.1:8010  up" in status.stdout
    assert "no transitions yet" in status.stdout
    assert redis_url not in status.stdout  # a URL may carry a password: never printed
    drained = roam("routes", "drain", "yuelu-bdc", "http://127.0.0.1:8011", "--reason",
                   "upgrade", "--by", "li", env=shared)
    assert drained.returncode == 0, drained.stderr
    assert drained.stdout == "yuelu-bdc http://127.0.0.1:8011: out of rotation (health up)\n"
    assert '"logger":"roam.audit"' in drained.stderr  # the operator's action is audited
    table = roam("routes", "status", env=shared).stdout
    assert "yuelu-bdc       http://127.0.0.1:8011  drained  closed   out (by li)" in table
    assert "up → drained  upgrade (by li)" in table
    back = roam("routes", "undrain", "yuelu-bdc", "1", env=shared)
    assert back.stdout == "yuelu-bdc http://127.0.0.1:8011: in rotation (health up)\n"
    assert "drained → up  put back into rotation (by cli:" in \
        roam("routes", "status", env=shared).stdout


def test_routes_drain_of_an_unknown_instance_exits_2(redis_url: str,
                                                    redis_prefix: str) -> None:
    shared = {"ROAM_STORE_BACKEND": "redis", "ROAM_STORE_REDIS_URL": redis_url,
              "ROAM_STORE_PREFIX": redis_prefix}
    result = roam("routes", "drain", "yuelu-bdc", "3", env=shared)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "roam routes drain: system 'yuelu-bdc' has no instance '3' (its instances: "
        "http://127.0.0.1:8011)")


def test_routes_status_without_a_store_exits_1_without_traceback() -> None:
    dead = {"ROAM_STORE_BACKEND": "redis", "ROAM_STORE_REDIS_URL":
            "redis://:hunter2@127.0.0.1:1/0?socket_connect_timeout=0.5"}
    result = roam("routes", "status", env=dead)
    assert result.returncode == 1
    assert result.stderr.startswith("store problem: redis find failed")
    assert "hunter2" not in result.stderr
    assert "Traceback" not in result.stderr


def test_config_check_refuses_bad_health_rules_one_line_each(tmp_path: Path) -> None:
    main = with_shipped_files((REPO / "config" / "roam.toml").read_text("utf-8"))
    main = main.replace("\ninterval = 10 ", "\ninterval = 0 ").replace('\npath = "/" ',
                                                                     '\npath = "x" ')
    (tmp_path / "roam.toml").write_text(main, "utf-8")
    result = roam("--config", str(tmp_path / "roam.toml"), "config", "check")
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert lines[0] == "configuration problems:"
    assert any(line.endswith("health.interval: Input should be greater than or equal to 1")
               for line in lines)
    assert any("health.path: Value error, 'x' is not a path starting with '/'" in line
               for line in lines)
    assert "Traceback" not in result.stderr


def test_config_check_refuses_an_audit_trail_that_cannot_work(tmp_path: Path) -> None:
    (tmp_path / "in-the-way").write_text("a file, not a directory")
    bad_path = roam("config", "check", env={
        "ROAM_AUDIT_PATH": str(tmp_path / "in-the-way" / "audit.jsonl"),
        "ROAM_AUDIT_RETENTION_DAYS": "7"})
    assert bad_path.returncode == 2
    assert "Traceback" not in bad_path.stderr
    assert "ROAM_AUDIT_RETENTION_DAYS (audit.retention_days)" in bad_path.stderr
    bad_path = roam("config", "check", env={
        "ROAM_AUDIT_PATH": str(tmp_path / "in-the-way" / "audit.jsonl")})
    assert bad_path.returncode == 2
    [line] = [ln for ln in bad_path.stderr.splitlines() if "audit.path" in ln]
    assert "cannot be made" in line
    bad_dsn = roam("config", "check", env={
        "ROAM_AUDIT_SINK": "postgresql", "ROAM_AUDIT_DSN": "host=db password='s3cret"})
    assert bad_dsn.returncode == 2
    assert "audit.dsn: not a PostgreSQL connection string" in bad_dsn.stderr
    assert "s3cret" not in bad_dsn.stderr
    good = roam("config", "check", env={
        "ROAM_AUDIT_SINK": "postgresql", "ROAM_AUDIT_DSN": "postgresql://roam@db.example/roam"})
    assert good.returncode == 0, good.stderr  # the database itself is readiness's business
