"""``roam``: the commands operators run, as subprocesses (exit codes, no tracebacks)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from tests.support.gateway import REPO


def roam(*args: str, cwd: Path = REPO, env: dict[str, str] | None = None
         ) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("ROAM_")}
    full_env.update(env or {})
    return subprocess.run(  # noqa: S603 - our own CLI, fixed argv
        [sys.executable, "-m", "gateway.cli", *args], cwd=cwd, env=full_env,
        capture_output=True, text=True, timeout=60, check=False)


def config_with_keys(tmp_path: Path, keys: Path) -> Path:
    """The shipped config, with a key directory instead of ephemeral keys."""
    main = (REPO / "config" / "roam.toml").read_text("utf-8")
    main = main.replace('key_dir = ""', f'key_dir = "{keys}"')
    for name in ("clients", "directory"):
        key = "clients_file" if name == "clients" else "directory_file"
        main = main.replace(f'{key} = "{name}.toml"', f'{key} = "{REPO / "config" / name}.toml"')
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


def test_env_override_error_exits_2() -> None:
    result = roam("config", "check", env={"ROAM_STORE_BACKEND": "mongo"})
    assert result.returncode == 2
    assert "ROAM_STORE_BACKEND" in result.stderr


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
    assert "no signing key for ['ES256']" in result.stderr
    assert "Traceback" not in result.stderr
