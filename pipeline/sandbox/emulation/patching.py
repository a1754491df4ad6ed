"""The patching machinery: how the emulation changes moto, and how it puts moto back.

Every emulated service changes moto's own classes (never boto3's, never tierup's) in three
ways: it wraps a method (`wrap`, `wrap_classmethod`), gives a class an operation it lacks
(`add_method`) or an attribute it lacks (`add_attribute`). Every wrapped or added call runs under
one lock, which the emulated services share; `uninstall` restores what was there before.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["Patcher"]


class Patcher:
    """The changes made to moto's classes, and the lock every changed call runs under."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._originals: dict[tuple[type, str], Any] = {}
        self._added: list[tuple[type, str]] = []

    @property
    def installed(self) -> bool:
        return bool(self._originals)

    @property
    def lock(self) -> threading.RLock:
        """Held around every wrapped call; the other emulations share it."""
        return self._lock

    def uninstall(self) -> None:
        """Put moto's own methods back."""
        with self._lock:
            for (cls, name), original in self._originals.items():
                setattr(cls, name, original)
            self._originals.clear()
            for cls, name in self._added:
                if name in cls.__dict__:
                    delattr(cls, name)
            self._added.clear()

    def wrap(self, cls: type, name: str, handler: Callable[..., Any]) -> None:
        """Replace moto's `cls.name` by `handler(original, obj, arguments)`, under the lock."""
        original = cls.__dict__[name]
        self._originals[(cls, name)] = original
        signature = inspect.signature(original)

        def wrapper(obj: Any, *args: Any, **kwargs: Any) -> Any:
            bound = signature.bind(obj, *args, **kwargs)
            bound.apply_defaults()
            with self._lock:
                return handler(original, obj, bound.arguments)

        wrapper.__name__ = name
        wrapper.__qualname__ = f"{cls.__name__}.{name}"
        wrapper.__doc__ = original.__doc__
        setattr(cls, name, wrapper)

    def wrap_classmethod(self, cls: type, name: str, handler: Callable[..., Any]) -> None:
        """As `wrap`, for a classmethod: `handler(original, cls, arguments)`."""
        original = cls.__dict__[name]
        self._originals[(cls, name)] = original
        function = original.__func__
        signature = inspect.signature(function)

        def wrapper(klass: Any, *args: Any, **kwargs: Any) -> Any:
            bound = signature.bind(klass, *args, **kwargs)
            bound.apply_defaults()
            arguments = dict(bound.arguments)
            arguments.pop(next(iter(signature.parameters)))
            with self._lock:
                return handler(lambda **kw: function(klass, **kw), klass, arguments)

        wrapper.__name__ = name
        setattr(cls, name, classmethod(wrapper))

    def add_method(self, cls: type, name: str, method: Callable[..., Any]) -> None:
        """Give moto's `cls` an operation it lacks (removed again by `uninstall`)."""
        existing = cls.__dict__.get(name)
        if existing is not None and not getattr(existing, "_tierup_added", False):
            raise ValueError(f"{cls.__name__}.{name} exists; wrap it instead")
        lock = self._lock

        def locked(obj: Any, *args: Any, **kwargs: Any) -> Any:
            with lock:
                return method(obj, *args, **kwargs)

        locked.__name__ = name
        locked._tierup_added = True  # type: ignore[attr-defined]
        if (cls, name) in self._originals or (cls, name) in self._added:
            pass  # this emulation's own, layered (ecs_native over history): the first one stays
        elif existing is not None:  # another emulation's: it comes back on uninstall
            self._originals[(cls, name)] = existing
        else:
            self._added.append((cls, name))
        setattr(cls, name, locked)

    def add_attribute(self, cls: type, name: str, value: Any) -> None:
        """Give moto's `cls` an attribute it lacks (removed again by `uninstall`); one it has
        already is left as it is."""
        if name not in cls.__dict__:
            setattr(cls, name, value)
            self._added.append((cls, name))
