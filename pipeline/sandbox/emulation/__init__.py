"""The sandbox's emulation of what moto lacks, installed as one. One module per emulated service,
each building on the ECS one, and the patching machinery they share:

- ``patching``: how moto's methods are wrapped, operations added, and put back;
- ECS: ``ecs`` (the root, `Emulation`: moto's ECS operations as ECS answers them),
  ``ecs_rollouts`` (deployments that progress, complete, fail and roll back),
  ``ecs_deployments`` (a service's deployments and their tasks), ``ecs_configuration``
  (deploymentConfiguration), ``ecs_history`` (ListServiceDeployments and friends),
  ``ecs_native`` (ECS-native blue/green, canary and linear deployments), ``ecs_run_task``
  (one-off tasks);
- ECR: ``ecr`` (what an image reference resolves to, who may pull it), ``image_marks`` (the
  sandbox-fail / sandbox-hang marks and what they make of a deployment's tasks);
- CloudFormation: ``cloudformation`` (the part as a whole), ``cfn_change_sets``,
  ``cfn_changes`` (what a parameter change reaches), ``cfn_stacks`` (stack updates and their
  rollback), ``cfn_updates`` (an update in progress and its stack events);
- CodeDeploy: ``codedeploy`` (its operations), ``codedeploy_lifecycle``, ``codedeploy_runs``
  (a deployment as the emulation runs it), ``codedeploy_appspec`` (reading the revision).

No module here imports this one; this one imports every service's module and installs them.
"""

from __future__ import annotations

import threading

from tierup.pipeline.sandbox.emulation import (
    cloudformation,
    codedeploy,
    ecs_history,
    ecs_native,
    ecs_run_task,
)
from tierup.pipeline.sandbox.emulation.ecs import Emulation

__all__ = ["current", "install", "reset", "uninstall"]

_installed: Emulation | None = None
_install_lock = threading.Lock()


def install() -> Emulation:
    """Wrap moto's ECS backend (once per process) and return the emulation's settings."""
    global _installed
    with _install_lock:
        if _installed is None:
            _installed = Emulation()
        if _installed._install():
            ecs_history.install(_installed)
            _installed.native = ecs_native.install(_installed)
            _installed.cloudformation = cloudformation.install(_installed)
            _installed.codedeploy = codedeploy.install(_installed)
            _installed.tasks = ecs_run_task.install(_installed)
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
