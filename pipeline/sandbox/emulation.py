"""The sandbox's emulation of what moto lacks, installed as one: ECS rollouts (the patching
machinery and ECS, ``emulation_core``), CloudFormation's effect on ECS (``emulation_cfn``),
CodeDeploy (``emulation_codedeploy``), ECS's deployment history (``emulation_history``),
ECS-native blue/green, canary and linear deployments (``emulation_ecs_native``) and one-off tasks
(``emulation_tasks``). Each service's module imports only the core; this module
imports them all.
"""

from __future__ import annotations

import threading

from tierup.pipeline.sandbox import (
    emulation_cfn,
    emulation_codedeploy,
    emulation_ecs_native,
    emulation_history,
    emulation_tasks,
)
from tierup.pipeline.sandbox.emulation_core import (
    DEFAULT_POLLS_TO_COMPLETE,
    FAIL_TAG_PREFIX,
    HANG_TAG_PREFIX,
    Emulation,
    RolloutView,
    policy_allows_pull,
)

__all__ = [
    "DEFAULT_POLLS_TO_COMPLETE",
    "FAIL_TAG_PREFIX",
    "HANG_TAG_PREFIX",
    "Emulation",
    "RolloutView",
    "current",
    "install",
    "policy_allows_pull",
    "reset",
    "uninstall",
]

_installed: Emulation | None = None
_install_lock = threading.Lock()


def install() -> Emulation:
    """Wrap moto's ECS backend (once per process) and return the emulation's settings."""
    global _installed
    with _install_lock:
        if _installed is None:
            _installed = Emulation()
        if _installed._install():
            emulation_history.install(_installed)
            _installed.native = emulation_ecs_native.install(_installed)
            _installed.cloudformation = emulation_cfn.install(_installed)
            _installed.codedeploy = emulation_codedeploy.install(_installed)
            _installed.tasks = emulation_tasks.install(_installed)
        return _installed


def current() -> Emulation | None:
    """The installed emulation, if any."""
    return _installed if _installed is not None and _installed.installed else None


def uninstall() -> None:
    """Restore moto's own methods; the emulation's state is dropped."""
    global _installed
    with _install_lock:
        if _installed is not None:
            _installed.uninstall()
            _installed.reset()
            _installed = None


def reset() -> None:
    """Clear the installed emulation's state and marks (after moto's own reset)."""
    if _installed is not None:
        _installed.reset()
