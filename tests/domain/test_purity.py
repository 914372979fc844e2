"""The domain is pure: no I/O framework, no other LTS layer (SYS-013 integrity of layering).

Every module under ``lts/domain`` is parsed with :mod:`ast` (not imported) and each import is
checked, wherever it is written: top level, inside functions, under ``if TYPE_CHECKING:`` or
``try:``. Allowed: the standard library (minus ``asyncio``), ``msgspec``, ``numpy`` (vectorised
statistics), and ``lts.domain``. The checker is itself tested on sources that must fail, so this
test can fail.
"""

import ast
import sys
from pathlib import Path

import pytest

DOMAIN_DIR = Path(__file__).resolve().parents[2] / "lts" / "domain"
DOMAIN_PACKAGE = "lts.domain"
ALLOWED_THIRD_PARTY = frozenset({"msgspec", "numpy"})
#: Forbidden even though some are in the standard library.
FORBIDDEN_TOP_LEVEL = frozenset({"asyncio", "sqlalchemy", "fastapi", "anyio"})
DYNAMIC_IMPORTERS = frozenset({"__import__", "import_module"})


def module_name(path: Path) -> str:
    rel = path.relative_to(DOMAIN_DIR).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return ".".join([DOMAIN_PACKAGE, *parts])


def _in_domain(name: str) -> bool:
    return name == DOMAIN_PACKAGE or name.startswith(DOMAIN_PACKAGE + ".")


def why_forbidden(name: str) -> str | None:
    """Why importing absolute module ``name`` breaks purity, or ``None`` if it is allowed."""
    top = name.split(".")[0]
    if _in_domain(name):
        return None
    if top == "lts":
        return "an LTS module outside lts.domain"
    if top in FORBIDDEN_TOP_LEVEL:
        return f"{top} is forbidden in the domain"
    if top in ALLOWED_THIRD_PARTY or top in sys.stdlib_module_names:
        return None
    return "not the standard library or msgspec"


def imported_names(tree: ast.AST, module: str, is_package: bool) -> list[tuple[int, str]]:
    """Every absolute module name ``tree`` imports (relative imports resolved), with its line.

    ``from X import a`` yields ``X``, or ``X.a`` when ``X`` is an ancestor package of the
    domain (``lts``), so ``from lts import engine`` is caught and ``from lts import domain``
    is not.
    """
    package = module.split(".") if is_package else module.split(".")[:-1]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                up = node.level - 1
                if up >= len(package):
                    found.append((node.lineno, "<relative import beyond the top package>"))
                    continue
                base = ".".join(package[: len(package) - up])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            if DOMAIN_PACKAGE.startswith(target + "."):
                # ``from lts import x``: what counts is which submodule ``x`` is.
                found.extend((node.lineno, f"{target}.{alias.name}") for alias in node.names)
            else:
                found.append((node.lineno, target))
        elif isinstance(node, ast.Call):
            func = node.func
            called = func.id if isinstance(func, ast.Name) else (
                func.attr if isinstance(func, ast.Attribute) else None)
            if called in DYNAMIC_IMPORTERS:
                found.append((node.lineno, f"<dynamic import via {called}()>"))
    return found


def violations(source: str, module: str = "lts.domain.sample",
               is_package: bool = False) -> list[str]:
    out = []
    for line, name in imported_names(ast.parse(source), module, is_package):
        reason = why_forbidden(name) if not name.startswith("<") else "not statically checkable"
        if reason:
            out.append(f"{module}:{line}: imports {name}: {reason}")
    return out


def domain_files() -> list[Path]:
    return sorted(DOMAIN_DIR.rglob("*.py"))


# --- the real domain -----------------------------------------------------------------------

def test_the_walk_sees_the_domain() -> None:
    """Guard against a vacuous pass: the files and their known imports are found."""
    names = {p.name for p in domain_files()}
    assert {"__init__.py", "values.py", "market.py", "signals.py", "orders.py",
            "position.py"} <= names
    seen = set()
    for path in domain_files():
        is_pkg = path.name == "__init__.py"
        seen |= {n for _, n in imported_names(ast.parse(path.read_text()), module_name(path),
                                              is_pkg)}
    assert {"msgspec", "decimal", "lts.domain.values", "lts.domain.orders"} <= seen


@pytest.mark.parametrize("path", domain_files(), ids=lambda p: p.name)
def test_domain_module_is_pure(path: Path) -> None:
    """SYS-013: lts.domain imports only the standard library, msgspec and itself."""
    found = violations(path.read_text(), module_name(path), path.name == "__init__.py")
    assert not found, "\n".join(found)


# --- the checker can fail ------------------------------------------------------------------

@pytest.mark.parametrize(
    "source",
    [
        "import asyncio",
        "import asyncio.events",
        "from asyncio import Queue",
        "import asyncio as aio",
        "import sqlalchemy",
        "from sqlalchemy.ext.asyncio import AsyncSession",
        "import fastapi",
        "from fastapi import FastAPI",
        "import anyio",
        "from anyio import sleep",
        "import lts",
        "import lts.engine",
        "import lts.errors",
        "from lts.persistence import tables",
        "from lts import errors",
        "from lts import *",
        "from .. import errors",
        "from ..bus import Bus",
        "from ...outside import x",
        "import pandas",
        "from pydantic import BaseModel",
        "import os, pandas",
        "def f():\n    import asyncio\n",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import sqlalchemy\n",
        "try:\n    import anyio\nexcept ImportError:\n    pass\n",
        "class C:\n    def m(self):\n        from lts.engine import x\n",
        "import importlib\nm = importlib.import_module('asyncio')\n",
        "m = __import__('fastapi')",
    ],
)
def test_forbidden_imports_are_detected(source: str) -> None:
    assert violations(source), f"not detected: {source!r}"


def test_relative_import_out_of_the_domain_from_the_package_init() -> None:
    assert violations("from .. import errors", "lts.domain", is_package=True)
    assert violations("from ..engine import x", "lts.domain", is_package=True)
    assert not violations("from . import values", "lts.domain", is_package=True)
    assert not violations("from .orders import Side", "lts.domain", is_package=True)


@pytest.mark.parametrize(
    "source",
    [
        "import msgspec",
        "import msgspec.json",
        "from decimal import ROUND_DOWN, Decimal",
        "import enum, typing",
        "from __future__ import annotations",
        "from collections.abc import Iterator",
        "from lts.domain.values import ZERO",
        "import lts.domain.orders",
        "from lts.domain import values",
        "from lts import domain",
        "from .values import ZERO",
        "from . import values",
        "from .sub.mod import x",
    ],
)
def test_allowed_imports_pass(source: str) -> None:
    assert violations(source) == []
