"""What is wrong with a ``_target_`` that names nothing, in one line: which config key, which module
or class is missing, and the nearest name that exists there.

Hydra's own message names the whole node (``model``, not ``model.encoder``) and, for a missing
class, Python's import error ("No module named 'vae.data.shapes.Shape'; 'vae.data.shapes' is not
a package"). Hydra locates targets with its private ``_locate``; this walks the same dotted path
with importlib only after instantiation failed, so a good config pays nothing.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from typing import Iterator

from omegaconf import DictConfig, ListConfig


def targets(node, key: str) -> Iterator[tuple[str, str]]:
    """(config key, dotted path) of every ``_target_`` in a config node, outermost first."""
    if isinstance(node, DictConfig):
        target = node.get("_target_")
        if isinstance(target, str):
            yield f"{key}._target_", target
        for name, child in node.items_ex(resolve=False):
            if name != "_target_":
                yield from targets(child, f"{key}.{name}")
    elif isinstance(node, ListConfig):
        for i, child in enumerate(node):
            yield from targets(child, f"{key}[{i}]")


def target_problem(node, key: str) -> str | None:
    """One line for the first ``_target_`` in ``node`` that cannot be located, else None."""
    for where, path in targets(node, key):
        problem = locate_problem(path)
        if problem:
            return f"{where}={path}: {problem}"
    return None


def locate_problem(path: str) -> str | None:
    parts = path.split(".")
    obj, found = None, 0
    for i in range(len(parts), 0, -1):                  # the longest importable module prefix
        name = ".".join(parts[:i])
        try:
            obj, found = importlib.import_module(name), i
            break
        except ModuleNotFoundError as exc:
            if exc.name is not None and not (name == exc.name or name.startswith(exc.name + ".")):
                return f"importing {name} failed: {exc}"   # the module exists; something it imports does not
        except Exception as exc:  # noqa: BLE001 - any error while importing the user's module is the answer
            return f"importing {name} failed: {type(exc).__name__}: {exc}"
    if obj is None:
        return f"there is no module {parts[0]}"
    for i in range(found, len(parts)):
        if not hasattr(obj, parts[i]):
            where = ".".join(parts[:i])
            kind = "module or class" if hasattr(obj, "__path__") else "class or function"
            hint = nearest(parts[i], obj)
            suggestion = f" (did you mean {where}.{hint}?)" if hint else ""
            return f"{where} has no {kind} {parts[i]}{suggestion}"
        obj = getattr(obj, parts[i])
    return None


def nearest(name: str, module) -> str | None:
    """The closest public name in a module (its classes first), or submodule of a package."""
    names = [n for n in dir(module) if not n.startswith("_")]
    if hasattr(module, "__path__"):
        names += [m.name for m in pkgutil.iter_modules(module.__path__)]
    classes = [n for n in names if isinstance(getattr(module, n, None), type)]
    close = difflib.get_close_matches(name, classes, n=1) or difflib.get_close_matches(name, names, n=1)
    return close[0] if close else None
