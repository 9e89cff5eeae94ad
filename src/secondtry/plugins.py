"""Plugins: tasks, verifiers, conditions, backends, stopping policies and presets from outside the package.

A plugin is a module that registers its pieces when imported, with the registration function of each
extension point (each adds to that point's one registry dict and refuses a name already taken):

    from secondtry.tasks import register_task
    from secondtry.verifiers import register_verifier

    @register_task("my_task")
    def load(cfg, seed): ...

    @register_verifier("my_verifier")
    def verify(problem, completion, *, strict: bool = False): ...

Plugins are imported from two places, in every process that looks pieces up by name (the run, and
each verifier pool worker, which is a spawned process):

- the config's `plugins: [module, ...]` (modules importable there: installed, or on PYTHONPATH);
- the entry points of the group `secondtry.plugins` of every installed distribution, e.g. in its
  pyproject.toml `[project.entry-points."secondtry.plugins"] my_plugin = "my_package.plugin"`
  (an entry point naming a callable, `module:function`, is called once after import).

docs/plugins.md describes writing one.
"""

from __future__ import annotations

import importlib
import re
import sys
import traceback
from collections.abc import Sequence
from importlib import metadata
from typing import Any, TypeVar

from .config import ConfigError

GROUP = "secondtry.plugins"
MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")

T = TypeVar("T")

_entry_points_loaded: list[str] | None = None  # "name = value" of each entry point imported in this process
_modules_loaded: list[str] = []  # config plugins imported in this process, in order


class PluginError(ConfigError):
    """A plugin that cannot be imported or registers a name already taken. The message names the module, the
    config key or entry point, and the fix."""


def register(table: dict[str, T], kind: str, name: str, obj: T | None = None) -> Any:
    """Add `obj` to `table` as `name`: `register(T, kind, name, obj)`, or `@register(T, kind, name)` as a
    decorator. A name already in the table is refused (PluginError naming both owners)."""
    if not isinstance(name, str) or not name or name != name.strip() or any(c.isspace() for c in name):
        raise PluginError(f"{kind} name {name!r}: must be a non-empty string without spaces")

    def add(o: T) -> T:
        if name in table:
            raise PluginError(
                f"{kind} {name!r} is already registered (by {_owner(table[name])}); "
                f"{_owner(o)} must use another name"
            )
        table[name] = o
        return o

    return add if obj is None else add(obj)


def _owner(obj: Any) -> str:
    module, qual = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if module and qual:
        return f"{module}.{qual}"
    return module or type(obj).__name__


def load(modules: Sequence[str] = (), key: str = "plugins") -> list[str]:
    """Import the `secondtry.plugins` entry points (once per process) and then `modules` (the config's
    `plugins`, named by `key` in errors). Returns what this process has imported so far. Idempotent."""
    loaded = _load_entry_points()
    for i, module in enumerate(modules):
        where = f"{key}[{i}]"
        if not isinstance(module, str) or not MODULE.match(module):
            raise PluginError(
                f"{where}: {module!r} is not a module name (dotted Python identifiers, e.g. "
                f"my_package.plugin)"
            )
        if module in _modules_loaded:
            continue
        try:
            importlib.import_module(module)
        except PluginError as e:
            raise PluginError(f"{where}: plugin {module!r}: {e}") from None
        except ModuleNotFoundError as e:
            if e.name and (module == e.name or module.startswith(e.name + ".")):
                raise PluginError(
                    f"{where}: plugin module {module!r} not found; install it or put its "
                    f"folder on PYTHONPATH (it must import in every process of the run, "
                    f"verifier workers too)"
                ) from None
            raise PluginError(f"{where}: plugin {module!r} failed to import: {_cause(e)}") from None
        except Exception as e:
            raise PluginError(f"{where}: plugin {module!r} failed to import: {_cause(e)}") from None
        _modules_loaded.append(module)
    return loaded + list(_modules_loaded)


def _load_entry_points() -> list[str]:
    global _entry_points_loaded
    if _entry_points_loaded is not None:
        return list(_entry_points_loaded)
    done: list[str] = []
    for ep in sorted(metadata.entry_points(group=GROUP), key=lambda e: (e.name, e.value)):
        dist = getattr(ep, "dist", None)
        where = f"entry point {ep.name} = {ep.value} (group {GROUP}"
        where += f", distribution {dist.name})" if dist else ")"
        try:
            target = ep.load()
            if callable(target) and not isinstance(target, type(sys)):
                target()
        except PluginError as e:
            raise PluginError(f"{where}: {e}") from None
        except Exception as e:
            raise PluginError(
                f"{where} failed to import: {_cause(e)}; fix or uninstall "
                f"{dist.name if dist else 'its distribution'}"
            ) from None
        done.append(f"{ep.name} = {ep.value}")
    _entry_points_loaded = done
    return list(done)


def _cause(e: BaseException) -> str:
    """The error and the plugin's own line that raised it."""
    frames = [f for f in traceback.extract_tb(e.__traceback__) if "importlib" not in f.filename]
    at = f" ({frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return f"{type(e).__name__}: {e}{at}"
