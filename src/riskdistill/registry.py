"""One registry mechanism for every kind of plug-in: heads, view transforms, target builders, teachers,
VLM backends, data importers, scenarios.

    HEADS = Registry("head")

    @HEADS.register                 # name from the object's ``name`` attribute
    class PlanningHead(Head): name = "planning"

    @TEACHERS.register("oracle")    # or given explicitly (functions, classes without ``name``)
    def build_oracle_teacher(config): ...

    HEADS.get("planning")           # unknown name -> error listing the valid ones
    HEADS.names()                   # sorted names, for CLIs and registry-wide contract tests

A plug-in is added by writing its module next to its neighbours and importing that module in the package's
``__init__`` (which is what makes the built-in plug-ins available); see ``docs/howto.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar, overload

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> plug-in. ``kind`` names the plug-in kind in errors; ``error`` is the exception raised for an
    unknown or doubly registered name (``ValueError`` by default)."""

    def __init__(self, kind: str, error: type[Exception] = ValueError):
        self.kind = kind
        self.error = error
        self._items: dict[str, T] = {}

    @overload
    def register(self, obj: T) -> T: ...
    @overload
    def register(self, obj: str) -> Callable[[T], T]: ...

    def register(self, obj: Any) -> Any:
        """Decorator: ``@reg.register`` (name = ``obj.name``) or ``@reg.register("name")``."""
        if isinstance(obj, str):
            return lambda target: self.add(obj, target)
        name = getattr(obj, "name", None)
        if not isinstance(name, str) or not name:
            raise TypeError(
                f"{self.kind} {obj!r} has no 'name' attribute: use @register('<name>') to give one"
            )
        return self.add(name, obj)

    def add(self, name: str, obj: T) -> T:
        """Register ``obj`` as ``name``; registering another object under a taken name is an error."""
        if name in self._items and self._items[name] is not obj:
            raise self.error(f"{self.kind} {name!r} is already registered ({self._items[name]!r})")
        self._items[name] = obj
        return obj

    def get(self, name: str, *default: Any) -> T:
        """The plug-in called ``name``; an unknown name is an error that lists the valid ones (or ``default``
        when one is given, as for a mapping)."""
        try:
            return self._items[name]
        except (KeyError, TypeError):
            if default:
                return default[0]
            raise self.error(f"unknown {self.kind} {name!r}; valid {self.kind}s: {self.names()}") from None

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __setitem__(self, name: str, obj: T) -> None:
        """Replace or add a plug-in (tests swap one in temporarily; plug-ins use :meth:`register`)."""
        self._items[name] = obj

    def __delitem__(self, name: str) -> None:
        del self._items[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def items(self) -> list[tuple[str, T]]:
        return sorted(self._items.items())

    def values(self) -> list[T]:
        return [v for _, v in self.items()]

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"
