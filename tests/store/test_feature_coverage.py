"""Which of MLflow's tracking-store methods this store does not offer, counted, not claimed.

Every public method of MLflow's SqlAlchemyStore (tracking) is classified: offered when a class
of this project implements it (and does not just refuse it) or when MLflow's own default body
works by calling methods that are offered; not offered otherwise. The methods not offered must
be exactly those of `store/tracking/not_offered.py`, and store/README.md must show that table as
rendered from it, so a new MLflow method, a feature implemented here, or a stale README row
fails this test.
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from pathlib import Path

import mlflow  # noqa: F401 - MLflow fully imported before the store (its plugin registry)
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

from store.tracking import DynamoTrackingStore
from store.tracking.not_offered import TRACKING_NOT_OFFERED, readme_rows

README = Path(__file__).resolve().parents[2] / "store" / "README.md"


def public_methods(cls: type) -> list[str]:
    names = []
    for name in sorted(dir(cls)):
        attribute = inspect.getattr_static(cls, name)
        if isinstance(attribute, staticmethod | classmethod):
            attribute = attribute.__func__
        if not name.startswith("_") and inspect.isfunction(attribute):
            names.append(name)
    return names


def _first_statement(function) -> str:
    tree = ast.parse(textwrap.dedent(inspect.getsource(inspect.unwrap(function))))
    body = tree.body[0].body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the docstring
    return ast.unparse(body[0]) if body else ""


def offered(name: str) -> bool:
    """Implemented here, or an MLflow default that works through implemented methods."""
    for klass in DynamoTrackingStore.__mro__:
        function = vars(klass).get(name)
        if function is None:
            continue
        if getattr(function, "__name__", "") == "refuse":
            return False  # an abstract or empty MLflow default, refused by the decorator
        first = _first_statement(function)
        if klass.__module__.split(".")[0] != "mlflow":
            if getattr(function, "__wrapped__", None) is not None and klass is DynamoTrackingStore:
                continue  # the decorator's wrapper around an MLflow default: look at that
            return "not_implemented_error(" not in first  # ours, unless it only refuses
        return not re.match(r"raise (Mlflow)?NotImplemented", first)
    return False  # not on MLflow's store interface at all


def test_the_methods_not_offered_are_exactly_the_documented_ones():
    lacking = {n for n in public_methods(SqlAlchemyStore) if not offered(n)}
    listed = {m for methods in TRACKING_NOT_OFFERED.values() for m in methods}
    assert not lacking - listed, f"not offered but not listed: {sorted(lacking - listed)}"
    assert not listed - lacking, f"listed but offered now: {sorted(listed - lacking)}"


def test_every_listed_method_answers_not_implemented_naming_itself():
    store = DynamoTrackingStore.__new__(DynamoTrackingStore)  # no table: nothing is read
    for methods in TRACKING_NOT_OFFERED.values():
        for name in methods:
            if not hasattr(store, name):
                continue  # MLflow's SQL store only: never called through its store interface
            try:
                getattr(store, name)(**_nones(getattr(SqlAlchemyStore, name)))
            except Exception as exc:  # noqa: BLE001 - what each refusal is, checked below
                assert getattr(exc, "error_code", None) == "NOT_IMPLEMENTED", (name, exc)
                assert name in str(exc), (name, str(exc))
            else:
                raise AssertionError(f"{name} answered")


def _nones(function) -> dict:
    """None for each required argument: a refusal comes before any argument is used."""
    wanted = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    parameters = list(inspect.signature(function).parameters.values())[1:]
    return {p.name: None for p in parameters if p.default is p.empty and p.kind in wanted}


def test_the_readme_shows_the_table():
    text = README.read_text()
    expected = "\n".join(readme_rows())
    assert expected in text, f"store/README.md should hold this table:\n{expected}"
