"""What ``pip install .`` ships: every data file the packages read at run time (the store's Lua
scripts, the JSON schemas), not only the Python modules that an editable install hides it behind."""

from __future__ import annotations

import glob
import tomllib

import pytest

from tests.support.paths import ROOT

PACKAGES = ("schemas", "worker", "producers", "ops")
NOT_PACKAGE_DATA = ("ops/deploy/",)  # deployment files: copied by hand or by the Dockerfile, never imported


def package_data() -> dict[str, list[str]]:
    """pyproject.toml's ``[tool.setuptools.package-data]``."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return dict(pyproject["tool"]["setuptools"]["package-data"])


@pytest.mark.parametrize("package", PACKAGES)
def test_every_data_file_is_package_data(package: str) -> None:
    """Every file of a package that is not Python matches one of its package-data globs, as setuptools
    expands them, so a wheel built from the repository carries it."""
    base = ROOT / package
    shipped: set[str] = set()
    for pattern in package_data().get(package, []):
        shipped |= set(glob.glob(pattern, root_dir=base, recursive=True))
    data = {
        path.relative_to(base).as_posix()
        for path in base.rglob("*")
        if path.is_file()
        and path.suffix not in (".py", ".pyc")
        and "__pycache__" not in path.parts
        and not path.relative_to(ROOT).as_posix().startswith(NOT_PACKAGE_DATA)
    }
    assert data <= shipped, f"not in package-data of {package}: {sorted(data - shipped)}"


def test_the_store_scripts_are_covered() -> None:
    """The store's Lua scripts, read through importlib.resources, are package data of ``schemas``."""
    lua = sorted((ROOT / "schemas" / "store" / "lua").glob("*.lua"))
    assert lua
    shipped = {
        name
        for pattern in package_data()["schemas"]
        for name in glob.glob(pattern, root_dir=ROOT / "schemas")
    }
    assert {path.relative_to(ROOT / "schemas").as_posix() for path in lua} <= shipped
