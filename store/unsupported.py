"""Make the MLflow store methods a concrete store does not implement fail loudly.

MLflow's store base classes do not enforce their abstract methods, and several of their default
bodies are a bare docstring that silently returns None, raise a plain NotImplementedError (a 500
with a traceback through the server) or raise NOT_IMPLEMENTED without a message.
`raise_not_implemented` turns every such inherited method into MLflow's NOT_IMPLEMENTED error
(HTTP 501) that names the store and the method.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import TypeVar

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import NOT_IMPLEMENTED, ErrorCode

StoreClass = TypeVar("StoreClass", bound=type)


def _empty_body(self):
    """A docstring-only body: the shape of MLflow's silent defaults."""


_EMPTY_CODE = _empty_body.__code__.co_code


def not_implemented_error(store: str, method: str) -> MlflowException:
    """The error a store raises for a call it does not offer."""
    return MlflowException(f"{store} does not support '{method}'.", error_code=NOT_IMPLEMENTED)


def raise_not_implemented(cls: StoreClass) -> StoreClass:
    """Class decorator: inherited MLflow methods that are abstract, empty or raise
    NotImplementedError raise MLflow's NOT_IMPLEMENTED instead."""
    for name in dir(cls):
        if name.startswith("__"):
            continue
        owner, attribute = _resolve(cls, name)
        if owner is None or not _is_mlflow_class(owner) or not inspect.isfunction(attribute):
            continue
        if inspect.iscoroutinefunction(attribute):
            continue  # async defaults delegate to their sync counterparts
        if getattr(attribute, "__isabstractmethod__", False) or _is_empty(attribute):
            setattr(cls, name, _refusing(cls.__name__, name, attribute))
        else:
            setattr(cls, name, _translating(cls.__name__, name, attribute))
    return cls


def _resolve(cls: type, name: str) -> tuple[type | None, object]:
    for klass in cls.__mro__:
        if name in vars(klass):
            return klass, vars(klass)[name]
    return None, None


def _is_mlflow_class(klass: type) -> bool:
    return klass.__module__.split(".")[0] == "mlflow"


def _is_empty(function: Callable) -> bool:
    return function.__code__.co_code == _EMPTY_CODE


def _refusing(store: str, name: str, original: Callable) -> Callable:
    @functools.wraps(original)
    def refuse(self, *args, **kwargs):
        raise not_implemented_error(store, name)

    refuse.__isabstractmethod__ = False
    return refuse


def _translating(store: str, name: str, original: Callable) -> Callable:
    @functools.wraps(original)
    def call(self, *args, **kwargs):
        try:
            return original(self, *args, **kwargs)
        except NotImplementedError as exc:
            raise not_implemented_error(store, name) from exc
        except MlflowException as exc:  # MLflow's bare NOT_IMPLEMENTED says nothing: name it
            if exc.error_code != ErrorCode.Name(NOT_IMPLEMENTED) or exc.message:
                raise
            raise not_implemented_error(store, name) from exc

    return call
