"""Borrowed signatures: a wrapper that forwards what it is given takes the parameters of what it
wraps, for type checkers and ``help()``, so the wrapped callable is the one source of truth."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

__all__ = ["takes_method_parameters_of", "takes_parameters_of"]

P = ParamSpec("P")
S = TypeVar("S")
R = TypeVar("R")


def _borrow(
    source: Callable[..., object], wrapper: Any, extra: Iterable[inspect.Parameter]
) -> None:
    """Give ``wrapper`` the signature of ``source`` (with ``extra`` keyword-only parameters
    before its ``**kwargs``), its own return annotation, and the source's docstring if it has
    none."""
    signature = inspect.signature(source)
    parameters = list(signature.parameters.values())
    at = next((i for i, p in enumerate(parameters) if p.kind is p.VAR_KEYWORD), len(parameters))
    parameters[at:at] = extra
    wrapper.__signature__ = signature.replace(
        parameters=parameters, return_annotation=inspect.signature(wrapper).return_annotation
    )
    wrapper.__doc__ = wrapper.__doc__ or source.__doc__


def takes_parameters_of(
    source: Callable[P, object], *extra: inspect.Parameter
) -> Callable[[Callable[..., R]], Callable[P, R]]:
    """Give a forwarding function the parameters of ``source`` (a function or a class), plus
    ``extra`` keyword-only ones that ``source``'s ``**kwargs`` lets type checkers accept."""

    def decorate(function: Callable[..., R]) -> Callable[P, R]:
        _borrow(source, function, extra)
        return cast(Callable[P, R], function)

    return decorate


def takes_method_parameters_of(
    source: Callable[Concatenate[Any, P], object],
) -> Callable[[Callable[Concatenate[S, ...], R]], Callable[Concatenate[S, P], R]]:
    """Give a forwarding method the parameters of another class's method ``source``."""

    def decorate(method: Callable[Concatenate[S, ...], R]) -> Callable[Concatenate[S, P], R]:
        _borrow(source, method, ())
        return cast(Callable[Concatenate[S, P], R], method)

    return decorate
