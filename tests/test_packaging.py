"""What the gateway's wheel ships: the gateway and the connectors, never the demo."""

from __future__ import annotations

import fnmatch
import tomllib

from tests.support.gateway import REPO


def packages() -> set[str]:
    """Every package of the checkout (a folder with ``__init__.py``), dotted."""
    return {".".join(init.parent.relative_to(REPO).parts) for init in REPO.rglob("__init__.py")
            if ".venv" not in init.parts and "node_modules" not in init.parts}


def test_the_wheel_ships_the_gateway_and_connectors_but_not_the_demo() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))
    include = project["tool"]["setuptools"]["packages"]["find"]["include"]
    # setuptools' find: a package is shipped when a pattern matches its dotted name
    shipped = {p for p in packages() if any(fnmatch.fnmatchcase(p, i) for i in include)}
    assert {"gateway", "gateway.proxy", "gateway.legacy", "gateway.config", "connectors"} \
        <= shipped
    assert not {p for p in shipped if p.split(".")[0] in ("demo", "tests", "bench")}


def test_the_demo_s_own_dependency_is_an_extra() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))["project"]
    assert not [d for d in project["dependencies"] if d.startswith("itsdangerous")]
    assert [d for d in project["optional-dependencies"]["demo"] if d.startswith("itsdangerous")]
