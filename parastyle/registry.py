"""Name -> class registries, so configs choose components by name."""
from __future__ import annotations

from typing import Callable, Dict, Type


class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        self._items: Dict[str, Type] = {}

    def register(self, name: str) -> Callable[[Type], Type]:
        def deco(cls: Type) -> Type:
            if name in self._items and self._items[name] is not cls:
                raise KeyError(f"{self.kind} {name!r} registered twice")
            self._items[name] = cls
            return cls
        return deco

    def get(self, name: str) -> Type:
        if name not in self._items:
            raise KeyError(f"unknown {self.kind} {name!r}; available: {sorted(self._items)}")
        return self._items[name]

    def names(self):
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        return name in self._items
