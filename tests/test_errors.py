"""One exception tree, one error body shape, the HTTP status on the class."""

from __future__ import annotations

import inspect

import pytest

import vigil.errors as errors


def _classes() -> list[type[errors.VigilError]]:
    return [c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, errors.VigilError)]


@pytest.mark.parametrize("cls", _classes(), ids=lambda c: c.__name__)
def test_every_error_renders_the_one_shape(cls: type[errors.VigilError]) -> None:
    """{"error": {"type", "message", "details"?}} for every class, with a 4xx/5xx status."""
    exc = cls("it went wrong", retry_after=3) if issubclass(cls, errors.RateLimited) else cls("it went wrong")
    body = exc.body()
    assert set(body) == {"error"}
    assert body["error"] == {"type": cls.code, "message": "it went wrong"}
    assert 400 <= cls.status < 600


def test_the_tree_in_the_docstring_matches_the_code() -> None:
    """The module docstring names every class with its status."""
    doc = errors.__doc__ or ""
    for cls in _classes():
        line = next((ln for ln in doc.splitlines() if f" {cls.__name__} " in ln), "")
        assert str(cls.status) in line, cls.__name__


def test_details_are_included_when_given() -> None:
    """Details ride along in the body."""
    body = errors.ValidationFailed("bad", details=[{"index": 0}]).body()
    assert body["error"]["details"] == [{"index": 0}]
