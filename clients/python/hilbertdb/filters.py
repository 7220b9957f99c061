"""Attribute filters for searches, ``count`` and ``scroll``.

A filter is built from :class:`Attr` conditions combined with ``&`` (all), ``|`` (any) and
``~`` (not)::

    from hilbertdb import Attr

    cheap_shoes = (Attr("category") == "shoes") & (Attr("price") < 50) & ~Attr("sold_out").exists()
    db.search("products-hnsw", q, k=10, filter=cheap_shoes)

Conditions: ``==`` and ``!=`` (string, int, bool, bytes, datetime / Timestamp), ``one_of``,
``<``, ``<=``, ``>``, ``>=`` and ``between`` (int, float, datetime / Timestamp), ``exists``
and ``missing``. A point that lacks the attribute fails every condition but ``missing()``.
Conditions may name permanent or payload attributes; the server checks a condition on a
permanent attribute against its declared type.

Python's ``and`` / ``or`` / ``not`` and chained comparisons (``10 < Attr("x") < 20``) cannot
be overloaded: use ``&``, ``|``, ``~`` and ``between``.
"""
from __future__ import annotations

from typing import Any, Iterable, List, Optional


def _T():
    from hilbert.v1 import types_pb2
    return types_pb2


def _value(v: Any):
    from . import _convert as cv
    return cv.attr_in(v)


class Filter:
    """A filter tree node; combine with ``&``, ``|`` and ``~``. ``to_proto()`` gives the
    ``hilbert.v1.Filter`` message."""

    def __init__(self, kind: str, parts: Any) -> None:
        self._kind = kind    # "all", "any", "not", "cond"
        self._parts = parts  # list of Filter, a Filter, or (name, test, value)

    def __and__(self, other: "Filter") -> "Filter":
        return Filter("all", _flatten("all", self, _check(other)))

    def __or__(self, other: "Filter") -> "Filter":
        return Filter("any", _flatten("any", self, _check(other)))

    def __invert__(self) -> "Filter":
        return self._parts if self._kind == "not" else Filter("not", self)

    def __bool__(self) -> bool:
        raise TypeError("a filter has no truth value: combine filters with &, | and ~, not "
                        "with and, or, not (or a chained comparison; use Attr(...).between)")

    def to_proto(self):
        T = _T()
        if self._kind in ("all", "any"):
            lst = T.FilterList(filters=[p.to_proto() for p in self._parts])
            return T.Filter(**{self._kind: lst})
        if self._kind == "not":
            return T.Filter(negate=self._parts.to_proto())
        name, test, value = self._parts
        c = T.Condition(attribute=name)
        if test == "equals":
            c.equals.CopyFrom(_value(value))
        elif test == "one_of":
            c.one_of.values.extend(_value(v) for v in value)
        elif test == "range":
            for end, v in value.items():
                getattr(c.range, end).CopyFrom(_value(v))
        else:
            c.exists = bool(value)
        return T.Filter(condition=c)

    def __repr__(self) -> str:
        if self._kind in ("all", "any"):
            op = " & " if self._kind == "all" else " | "
            return "(" + op.join(repr(p) for p in self._parts) + ")"
        if self._kind == "not":
            return f"~{self._parts!r}"
        name, test, value = self._parts
        return f"Attr({name!r}).{test}({value!r})"


def _check(f: Any) -> Filter:
    if not isinstance(f, Filter):
        raise TypeError(f"a filter combines with another filter, not {type(f).__name__}")
    return f


def _flatten(kind: str, a: Filter, b: Filter) -> List[Filter]:
    out: List[Filter] = []
    for f in (a, b):
        out.extend(f._parts if f._kind == kind else [f])
    return out


class Attr:
    """An attribute to test, by name: ``Attr("price") < 50``."""

    __hash__ = None  # type: ignore[assignment]  (== builds a filter)

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError("Attr: the attribute name must be a non-empty string")
        self.name = name

    def _cond(self, test: str, value: Any) -> Filter:
        return Filter("cond", (self.name, test, value))

    def __eq__(self, value: Any) -> Filter:  # type: ignore[override]
        return self._cond("equals", value)

    def __ne__(self, value: Any) -> Filter:  # type: ignore[override]
        return ~self._cond("equals", value)

    def one_of(self, values: Iterable[Any]) -> Filter:
        values = list(values)
        if not values:
            raise ValueError(f"Attr({self.name!r}).one_of: needs at least one value")
        return self._cond("one_of", values)

    def __lt__(self, v: Any) -> Filter:
        return self._cond("range", {"lt": v})

    def __le__(self, v: Any) -> Filter:
        return self._cond("range", {"lte": v})

    def __gt__(self, v: Any) -> Filter:
        return self._cond("range", {"gt": v})

    def __ge__(self, v: Any) -> Filter:
        return self._cond("range", {"gte": v})

    def between(self, low: Any = None, high: Any = None, *, include_low: bool = True,
                include_high: bool = True) -> Filter:
        """low <= value <= high (ends included unless told otherwise; None: open)."""
        r = {}
        if low is not None:
            r["gte" if include_low else "gt"] = low
        if high is not None:
            r["lte" if include_high else "lt"] = high
        if not r:
            raise ValueError(f"Attr({self.name!r}).between: give low, high or both")
        return self._cond("range", r)

    def exists(self) -> Filter:
        return self._cond("exists", True)

    def missing(self) -> Filter:
        return self._cond("exists", False)


def filter_in(f: Optional[Filter]):
    """The message for a filter argument (None: none)."""
    if f is None:
        return None
    if not isinstance(f, Filter):
        raise TypeError("filter: build one with hilbertdb.Attr, e.g. Attr('price') < 50")
    return f.to_proto()
