"""The strategy registry: every built-in strategy, and those a library user registers.

The implementations import only ``stages.strategy`` (the protocol); this module imports them
all, so that nothing imports back into it.

    from tierup.stages import all_strategies
    all_strategies.register(MyStrategy())      # then `strategy: my-strategy` in envs.yaml
    all_strategies.get("codedeploy").plan(ctx, target)
"""

from __future__ import annotations

import threading

from tierup.stages.cloudformation import CloudFormationStrategy
from tierup.stages.codedeploy import CodeDeployStrategy
from tierup.stages.deploy import FORCE_NEW_DEPLOYMENT, TASK_DEFINITION, DeployError
from tierup.stages.ecs_native import EcsNativeStrategy
from tierup.stages.rolling import Rolling
from tierup.stages.strategy import Strategy

_LOCK = threading.Lock()
_REGISTRY: dict[str, Strategy] = {
    s.name: s
    for s in (
        Rolling(FORCE_NEW_DEPLOYMENT),
        Rolling(TASK_DEFINITION),
        CloudFormationStrategy(),
        CodeDeployStrategy(),
        EcsNativeStrategy(),
    )
}
BUILTIN = frozenset(_REGISTRY)


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
    try:
        return _REGISTRY[name]
    except KeyError:
        raise DeployError(
            f"unknown deploy strategy {name!r}",
            hint=f"strategies: {', '.join(names())}",
        ) from None


def names() -> list[str]:
    return sorted(_REGISTRY)
