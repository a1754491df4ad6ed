"""The step registry: every built-in step, the ``tierup.steps`` plug-ins, and registered ones.

The implementations import only ``stages.step`` (the protocol); this module imports them all.
A plug-in is a distribution with an entry point in the group ``tierup.steps`` whose object is a
step (or a class that makes one with no arguments):

    [project.entry-points."tierup.steps"]
    flush-cache = "mycompany_steps:FlushCache"

Entry points are read only when a name is not built in (reading them scans every installed
distribution), so a configuration of built-in steps never pays for it.

    from tierup.stages import all_steps
    all_steps.register(MyStep())          # then `uses: my-step` in envs.yaml
    all_steps.get("http").run(config, ctx)
"""

from __future__ import annotations

import threading
from typing import Any

from tierup.stages.errors import ConfigError
from tierup.stages.step import Step
from tierup.stages.steps import alarm, deploy, http, notify, retag, run_task, wait

GROUP = "tierup.steps"

_LOCK = threading.Lock()
_REGISTRY: dict[str, Step] = {
    s.name: s
    for s in (
        retag.STEP,
        deploy.STEP,
        wait.STEP,
        run_task.STEP,
        http.STEP,
        alarm.STEP,
        notify.STEP,
    )
}
BUILTIN = frozenset(_REGISTRY)
_PLUGINS: dict[str, Step] = {}
_plugin_errors: dict[str, str] = {}


def register(step: Step) -> None:
    """Make ``step`` available under its name, to ``get`` and to envs.yaml's ``uses``."""
    if step.name in BUILTIN:
        raise ConfigError(
            f"step {step.name!r} is built in and cannot be replaced",
            hint="register your step under a name of its own",
        )
    with _LOCK:
        _REGISTRY[step.name] = step


def unregister(name: str) -> None:
    """Forget a step a library user registered (built-ins stay)."""
    if name not in BUILTIN:
        with _LOCK:
            _REGISTRY.pop(name, None)


def _as_step(obj: Any) -> Step:
    step = obj() if isinstance(obj, type) else obj
    for attr in ("name", "config", "describe", "run"):
        if not hasattr(step, attr):
            raise TypeError(f"it has no `{attr}` (see stages.step.Step)")
    return step  # type: ignore[no-any-return]


def load_plugins() -> dict[str, Step]:
    """Read the ``tierup.steps`` entry points again (a plug-in installed since is found)."""
    from importlib import metadata  # scanning distributions: only when a name is not built in

    found: dict[str, Step] = {}
    errors: dict[str, str] = {}
    for ep in metadata.entry_points(group=GROUP):
        if ep.name in BUILTIN:
            continue
        try:
            step = _as_step(ep.load())
        except Exception as e:  # a broken plug-in is reported where it is named
            errors[ep.name] = f"{type(e).__name__}: {e}"
            continue
        found[str(step.name)] = step
    with _LOCK:
        _PLUGINS.clear()
        _PLUGINS.update(found)
        _plugin_errors.clear()
        _plugin_errors.update(errors)
    return dict(found)


def find(name: str) -> Step | None:
    """The step called ``name``: built in, registered, or a plug-in (entry points read)."""
    step = _REGISTRY.get(name) or _PLUGINS.get(name)
    if step is None:
        load_plugins()
        step = _PLUGINS.get(name)
    return step


def get(name: str) -> Step:
    step = find(name)
    if step is None:
        broken = _plugin_errors.get(name)
        if broken is not None:
            raise ConfigError(
                f"step plug-in {name!r} ({GROUP}) could not be loaded: {broken}",
                hint="fix or reinstall the package that provides it",
            )
        raise ConfigError(f"unknown step {name!r}", hint=f"steps: {', '.join(names())}")
    return step


def names() -> list[str]:
    """Every step's name (entry points read)."""
    load_plugins()
    return sorted({*_REGISTRY, *_PLUGINS})
