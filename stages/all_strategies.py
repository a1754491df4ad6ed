"""The strategy registry: every built-in strategy, and those a library user registers.

The implementations import only ``stages.strategy`` (the protocol); this module imports them
all, so that nothing imports back into it. A built-in strategy's module is imported the first
time its name is asked for: a command that deploys one strategy does not load the others.

    from tierup.stages import all_strategies
    all_strategies.register(MyStrategy())      # then `strategy: my-strategy` in envs.yaml
    all_strategies.get("codedeploy").plan(ctx, target)
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from tierup.stages.deploy import FORCE_NEW_DEPLOYMENT, TASK_DEFINITION, DeployError
from tierup.stages.strategy import Strategy


def _force_new_deployment() -> Strategy:
    from tierup.stages.rolling import Rolling

    return Rolling(FORCE_NEW_DEPLOYMENT)


def _task_definition() -> Strategy:
    from tierup.stages.rolling import Rolling

    return Rolling(TASK_DEFINITION)


def _cloudformation() -> Strategy:
    from tierup.stages.cloudformation import CloudFormationStrategy

    return CloudFormationStrategy()


def _codedeploy() -> Strategy:
    from tierup.stages.codedeploy import CodeDeployStrategy

    return CodeDeployStrategy()


def _ecs() -> Strategy:
    from tierup.stages.ecs_native import EcsNativeStrategy

    return EcsNativeStrategy()


# each built-in strategy's name, and how to make it (its module imported then)
_BUILTIN: dict[str, Callable[[], Strategy]] = {
    FORCE_NEW_DEPLOYMENT: _force_new_deployment,
    TASK_DEFINITION: _task_definition,
    "cloudformation": _cloudformation,
    "codedeploy": _codedeploy,
    "ecs": _ecs,
}
BUILTIN = frozenset(_BUILTIN)

_LOCK = threading.Lock()
_REGISTRY: dict[str, Strategy] = {}  # built-ins once made, and registered strategies


def register(strategy: Strategy) -> None:
    """Make ``strategy`` available under its name, to ``get`` and to envs.yaml's ``strategy``."""
    if strategy.name in BUILTIN:
        raise DeployError(
            f"strategy {strategy.name!r} is built in and cannot be replaced",
            hint="register your strategy under a name of its own",
        )
    with _LOCK:
        _REGISTRY[strategy.name] = strategy


def unregister(name: str) -> None:
    """Forget a strategy a library user registered (built-ins stay)."""
    if name not in BUILTIN:
        with _LOCK:
            _REGISTRY.pop(name, None)


def get(name: str) -> Strategy:
    found = _REGISTRY.get(name)
    if found is not None:
        return found
    make = _BUILTIN.get(name)
    if make is None:
        raise DeployError(
            f"unknown deploy strategy {name!r}",
            hint=f"strategies: {', '.join(names())}",
        )
    made = make()  # outside the lock: it may import the strategy's module
    with _LOCK:
        return _REGISTRY.setdefault(name, made)


def names() -> list[str]:
    """Every strategy's name (built-in or registered), without loading any."""
    return sorted(BUILTIN.union(_REGISTRY))
