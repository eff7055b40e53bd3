"""Config loading: valid files load; every problem is reported at once, with file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import load_config
from gateway.errors import ConfigError
from tests.support.gateway import REPO


def write(tmp_path: Path, main: str, clients: str = "", directory: bool = True) -> Path:
    (tmp_path / "roam.toml").write_text(main, encoding="utf-8")
    (tmp_path / "clients.toml").write_text(clients, encoding="utf-8")
    (tmp_path / "systems.toml").write_text("", encoding="utf-8")  # no systems, no items
    if directory:
        source = REPO / "config" / "directory.toml"
        (tmp_path / "directory.toml").write_text(source.read_text("utf-8"), "utf-8")
    return tmp_path / "roam.toml"


GOOD_CLIENT = """
[[client]]
client_id = "city-a"
client_name = "A 市"
client_secret_sha256 = "%s"
redirect_uris = ["https://a.example.gov.cn/cb"]
""" % ("0" * 64)


def test_shipped_config_loads() -> None:
    config = load_config(REPO / "config" / "roam.toml", env={})
    assert config.issuer == "http://127.0.0.1:8000"
    assert {c.client_id for c in config.clients} >= {"changsha-gov", "yueyang-gov"}
    assert config.settings.session.idle_timeout == 1800
    assert config.settings.session.absolute_timeout == 28800


def test_defaults_apply_to_an_almost_empty_file(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "", GOOD_CLIENT), env={})
    assert config.settings.store.backend == "memory"
    assert config.client("city-a") is not None
    assert config.client("nope") is None


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    main = """
[gateway]
issuer = "http://gov.example.cn"
port = 70000
[session]
idle_timeout = "soon"
colour = "red"
[store]
backend = "mongo"
timeout = 0
connect_timeout = 60
"""
    clients = """
[[client]]
client_id = "x"
client_name = "X"
redirect_uris = ["ftp://files.example/cb"]
scopes = ["profile", "everything"]

[[client]]
client_id = "pub-app"
client_name = "P"
public = true
client_secret_sha256 = "%s"
token_endpoint_auth_method = "client_secret_basic"
redirect_uris = ["https://p.example/cb#frag"]
""" % ("a" * 64)
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, main, clients), env={})
    text = "\n".join(caught.value.problems)
    main_path = str(tmp_path / "roam.toml")
    clients_path = str(tmp_path / "clients.toml")
    for expected in [
        f"{main_path}: gateway.issuer",
        f"{main_path}: gateway.port",
        f"{main_path}: session.idle_timeout",
        f"{main_path}: session.colour",
        f"{main_path}: store.backend",
        f"{main_path}: store.timeout",
        f"{main_path}: store.connect_timeout",
        f"{clients_path}: client[0].client_id",
        f"{clients_path}: client[0].redirect_uris",
        f"{clients_path}: client[0].scopes",
        f"{clients_path}: client[1].redirect_uris",
    ]:
        assert expected in text, f"missing {expected!r} in:\n{text}"


def test_client_consistency_rules(tmp_path: Path) -> None:
    clients = """
[[client]]
client_id = "pub-app"
client_name = "P"
public = true
client_secret_sha256 = "{}"
redirect_uris = ["https://p.example/cb"]

[[client]]
client_id = "conf-app"
client_name = "C"
redirect_uris = ["https://c.example/cb"]

[[client]]
client_id = "conf-app"
client_name = "C2"
client_secret_sha256 = "{}"
redirect_uris = ["https://c.example/cb"]

[[client]]
client_id = "elsewhere"
client_name = "E"
client_secret_sha256 = "{}"
redirect_uris = ["https://e.example/cb"]
initiate_login_uri = "https://other.example/login"
""".format("a" * 64, "b" * 64, "c" * 64)
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, "", clients), env={})
    text = "\n".join(caught.value.problems)
    assert "public clients must use token_endpoint_auth_method" in text
    assert "public clients must not have client_secret_sha256" in text
    assert "confidential clients need client_secret_sha256" in text
    assert "duplicate 'conf-app'" in text
    assert ("elsewhere: initiate_login_uri: must be on the origin of one of the client's "
            "redirect_uris") in text


def test_environment_overrides_and_names_the_variable(tmp_path: Path) -> None:
    path = write(tmp_path, "", GOOD_CLIENT)
    env = {"ROAM_STORE_BACKEND": "redis", "ROAM_SESSION_IDLE_TIMEOUT": "600"}
    config = load_config(path, env=env)
    assert config.settings.store.backend == "redis"
    assert config.settings.session.idle_timeout == 600
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={"ROAM_STORE_BACKEND": "mongo", "ROAM_NOPE_X": "1",
                               "ROAM_STORE_COLOUR": "red"})
    text = "\n".join(caught.value.problems)
    assert "environment: ROAM_STORE_BACKEND (store.backend)" in text
    assert "environment: ROAM_NOPE_X" in text
    assert "environment: ROAM_STORE_COLOUR" in text


def test_variables_the_config_names_for_secrets_are_not_overrides(tmp_path: Path) -> None:
    """``ROAM_SECRET`` and the other ``*_env`` defaults start with ``ROAM_``; so may a
    name the file chooses. Setting them must not read as ``[secret]``, ``[verification]``…"""
    path = write(tmp_path, '[channels.wechat]\nappid = "wx0123456789abcdef"\n'
                           'secret_env = "ROAM_WECHAT_APP_SECRET"\n', GOOD_CLIENT)
    env = {"ROAM_SECRET": "s" * 40, "ROAM_VERIFICATION_CREDENTIAL": "c",
           "ROAM_WECHAT_APP_SECRET": "w", "ROAM_STORE_PREFIX": "roam-x:"}
    config = load_config(path, env=env)
    assert config.settings.store.prefix == "roam-x:"  # overrides still work beside them
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={"ROAM_WECHAT_OTHER": "1"})  # not a name the config uses
    assert "environment: ROAM_WECHAT_OTHER: no section [wechat]" in caught.value.problems


def test_missing_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "absent.toml", env={})
    assert any("absent.toml: file not found" in p for p in caught.value.problems)
    path = write(tmp_path, "[gateway\nissuer=", GOOD_CLIENT)
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert any("not valid TOML" in p for p in caught.value.problems)


def test_production_issuer_needs_a_key_directory(tmp_path: Path) -> None:
    path = write(tmp_path, '[gateway]\nissuer = "https://sso.example.gov.cn"\n', GOOD_CLIENT)
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert any("gateway.key_dir" in p for p in caught.value.problems)


def test_the_cookie_domain_must_cover_the_issuer(tmp_path: Path) -> None:
    main = ('[gateway]\nissuer = "https://sso.hunan.example"\nkey_dir = "keys"\n'
            '[login]\nsource = "toml-directory"\n[session]\ncookie_domain = "{domain}"\n')
    (tmp_path / "keys").mkdir()
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, main.format(domain="other.example"), GOOD_CLIENT), env={})
    assert any("does not cover the issuer's host 'sso.hunan.example'" in p
               for p in caught.value.problems), caught.value.problems
    for bad in ("Hunan.Example", ".hunan.example", "localhost"):
        with pytest.raises(ConfigError) as refused:
            load_config(write(tmp_path, main.format(domain=bad), GOOD_CLIENT), env={})
        assert any("session.cookie_domain" in p for p in refused.value.problems)
    config = load_config(write(tmp_path, main.format(domain="hunan.example"), GOOD_CLIENT),
                         env={})
    assert config.settings.session.cookie_domain == "hunan.example"


def test_a_production_issuer_names_its_identity_source(tmp_path: Path) -> None:
    """Only the loopback demo gets the TOML directory by default; a real issuer says which
    source people log in against, and an unknown one is refused by name."""
    (tmp_path / "keys").mkdir()
    main = '[gateway]\nissuer = "https://sso.hunan.example"\nkey_dir = "keys"\n'
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, main, GOOD_CLIENT), env={})
    assert [p for p in caught.value.problems if "login.source" in p] == [
        f"{tmp_path / 'roam.toml'}: login.source: name the identity source (e.g. "
        '"toml-directory"); only a plain-http loopback issuer (the demo) gets one by default']
    named = load_config(write(tmp_path, main + '[login]\nsource = "toml-directory"\n',
                              GOOD_CLIENT), env={})
    assert named.identity_source == "toml-directory"
    with pytest.raises(ConfigError) as unknown:
        load_config(write(tmp_path, main + '[login]\nsource = "ldap"\n', GOOD_CLIENT), env={})
    assert any("login.source" in p for p in unknown.value.problems)
    demo = load_config(write(tmp_path, "", GOOD_CLIENT), env={})
    assert (demo.settings.login.source, demo.identity_source) == (None, "toml-directory")


def test_the_systems_file_is_checked_with_the_rest(tmp_path: Path) -> None:
    """The loader reads systems.toml too, naming problems in the same report, so `roam
    config check` needs no app to find them."""
    path = write(tmp_path, "[gateway]\nport = 70000\n", GOOD_CLIENT)
    (tmp_path / "systems.toml").write_text(
        '[[system]]\nid = "bad-sys"\nname = "X"\nregion = "430000"\nlevel = "province"\n'
        'instances = ["https://x.example.cn"]\nconnector = "soap"\nitems = ["A-1"]\n', "utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    problems = caught.value.problems
    assert any(p.startswith(f"{path}: gateway.port") for p in problems)
    assert f"{tmp_path / 'systems.toml'}: system[0].connector: unknown connector type " \
        "'soap'; known types: cas, jwt-assertion, oidc, signed-header, ticket" in problems
    assert any("system[0].items.0: 'A-1' is not in the [[item]] catalogue" in p
               for p in problems)


def test_request_limits_are_checked(tmp_path: Path) -> None:
    """[gateway] max_header_* and [proxy] max_connections_per_instance: defaults as
    nginx's large_client_header_buffers 4 8k, bounds checked, and named when wrong."""
    config = load_config(write(tmp_path, "", GOOD_CLIENT), env={})
    gateway = config.settings.gateway
    assert (gateway.max_header_line, gateway.max_header_size, gateway.max_headers) == (
        8192, 32768, 100)
    assert config.settings.proxy.max_connections_per_instance == 64
    main = ("[gateway]\nmax_header_line = 16384\nmax_header_size = 8192\nmax_headers = 5\n"
            "[proxy]\nmax_connections_per_instance = 0\n")
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, main, GOOD_CLIENT), env={})
    text = "\n".join(caught.value.problems)
    for key in ("gateway.max_header_size", "gateway.max_headers",
                "proxy.max_connections_per_instance"):
        assert f"{tmp_path / 'roam.toml'}: {key}" in text, text
    assert "smaller than max_header_line (16384)" in text


@pytest.mark.parametrize(("issuer", "allowed"), [
    ("https://sso.hunan.example", False),
    ("https://127.0.0.1.example", False),
    ("https://localhost.example", False),
    ("http://127.0.0.1:8000", True),
    ("http://127.9.9.9:8000", True),
    ("http://[::1]:8000", True),
    ("https://localhost:8443", True),
    ("https://sso.localhost", True),
])
def test_simulated_step_up_only_on_a_loopback_issuer(tmp_path: Path, issuer: str,
                                                     allowed: bool) -> None:
    """The demo factors prove nothing (the code is on the page, the face check a button)."""
    (tmp_path / "keys").mkdir()
    main = (f'[gateway]\nissuer = "{issuer}"\nkey_dir = "keys"\n'
            '[login]\nsource = "toml-directory"\nsimulated_step_up = true\n')
    path = write(tmp_path, main, GOOD_CLIENT)
    if allowed:
        assert load_config(path, env={}).settings.login.simulated_step_up
        return
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert [p for p in caught.value.problems if "simulated_step_up" in p] == [
        f"{path}: login.simulated_step_up: the demo's factors (an SMS code shown on the page, "
        "a face check that is a button) prove nothing; only a loopback issuer (127.0.0.0/8, "
        "::1, localhost, *.localhost) may use them"]
    off = write(tmp_path, main.replace("true", "false"), GOOD_CLIENT)
    assert not load_config(off, env={}).settings.login.simulated_step_up


@pytest.mark.parametrize(("issuer", "allowed"), [
    ("https://sso.hunan.example", False),
    ("http://127.0.0.1:8000", True),
    ("https://sso.localhost", True),
])
def test_the_demo_verifier_only_on_a_loopback_issuer(tmp_path: Path, issuer: str,
                                                     allowed: bool) -> None:
    """The demo verifier passes every face check it starts: it proves nothing."""
    (tmp_path / "keys").mkdir()
    main = (f'[gateway]\nissuer = "{issuer}"\nkey_dir = "keys"\n'
            '[login]\nsource = "toml-directory"\n[binding]\nverifier = "demo"\n')
    path = write(tmp_path, main, GOOD_CLIENT)
    if allowed:
        assert load_config(path, env={}).settings.binding.verifier == "demo"
        return
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert [p for p in caught.value.problems if "binding.verifier" in p] == [
        f"{path}: binding.verifier: the demo verifier (the directory's people, face checks "
        "that always pass) proves nothing; only a loopback issuer may use it"]


def test_the_http_verifier_needs_a_base_url(tmp_path: Path) -> None:
    path = write(tmp_path, '[binding]\nverifier = "http"\n', GOOD_CLIENT)
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert any("binding.base_url is required" in p for p in caught.value.problems)


def test_bad_audit_settings_are_each_named(tmp_path: Path) -> None:
    main = """
[audit]
sink = "mysql"
retention_days = 30
queue_size = 10
batch_size = 0
batch_interval = 0
schema_name = "Robert'); DROP TABLE"
"""
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, main, GOOD_CLIENT), env={})
    problems = [p for p in caught.value.problems if ": audit." in p]
    keys = sorted(p.split(": audit.")[1].split(":")[0] for p in problems)
    assert keys == ["batch_interval", "batch_size", "queue_size", "retention_days",
                    "schema_name", "sink"]
    assert any("six months" in p for p in problems)


def test_the_audit_database_needs_a_connection_string_kept_secret(tmp_path: Path) -> None:
    path = write(tmp_path, '[audit]\nsink = "postgresql"\n', GOOD_CLIENT)
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert any("needs a connection string: ROAM_AUDIT_DSN" in p for p in caught.value.problems)
    dsn = "postgresql://roam:s3cret@db.example/roam"
    config = load_config(path, env={"ROAM_AUDIT_DSN": dsn})
    assert config.settings.audit.dsn.get_secret_value() == dsn
    assert "s3cret" not in repr(config) + str(config.settings)
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, '[audit]\nbatch_size = 500\nqueue_size = 200\n',
                          GOOD_CLIENT), env={})
    assert any("batch_size (500) is larger than audit.queue_size (200)" in p
               for p in caught.value.problems)
    assert load_config(write(tmp_path, "[audit]\nretention_days = 0\n", GOOD_CLIENT),
                       env={}).settings.audit.retention_days == 0  # keep every event


def test_process_settings_are_checked(tmp_path: Path) -> None:
    """[gateway] workers, [tokens] refresh_reuse_interval, [outbound] lease: defaults,
    bounds, and a lease that must outlast an attempt."""
    config = load_config(write(tmp_path, "", GOOD_CLIENT), env={})
    settings = config.settings
    assert (settings.gateway.workers, settings.tokens.refresh_reuse_interval,
            settings.outbound.lease) == (1, 30, 15.0)
    main = ("[gateway]\nworkers = 0\n[tokens]\nrefresh_reuse_interval = 301\n"
            "[outbound]\ntimeout = 5\nlease = 4\n")
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, main, GOOD_CLIENT), env={})
    text = "\n".join(caught.value.problems)
    for key in ("gateway.workers", "tokens.refresh_reuse_interval", "outbound"):
        assert f"{tmp_path / 'roam.toml'}: {key}" in text, text
    assert "lease (4.0 s) must be longer than timeout (5.0 s)" in text


def test_the_key_rotation_schedule_is_checked(tmp_path: Path) -> None:
    """[keys]: a new key reaches every process before it signs, an old one outlives its
    tokens; the JWKS may be cached for what is left of the head start."""
    keys = load_config(write(tmp_path, "", GOOD_CLIENT), env={}).settings.keys
    assert (keys.publish_ahead, keys.retire_after, keys.reload_interval) == (3600, 3600, 10)
    assert keys.jwks_max_age == 300
    short = load_config(write(tmp_path, "[keys]\npublish_ahead = 40\n", GOOD_CLIENT),
                        env={}).settings.keys
    assert short.jwks_max_age == 30
    for main, expected in (
            ("[keys]\npublish_ahead = 10\nreload_interval = 10\n",
             "keys.publish_ahead (10 s) must be longer than keys.reload_interval (10 s)"),
            ("[keys]\nretire_after = 60\n[tokens]\nid_token_ttl = 600\n",
             "keys.retire_after (60 s) is shorter than the longest token lifetime (600 s")):
        with pytest.raises(ConfigError) as caught:
            load_config(write(tmp_path, main, GOOD_CLIENT), env={})
        assert expected in "\n".join(caught.value.problems)
