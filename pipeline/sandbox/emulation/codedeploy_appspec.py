"""A CodeDeploy revision as the emulation reads it: AppSpec content naming one ECS service.

The AppSpec (JSON or YAML, revision type AppSpecContent or String) must name exactly one
AWS::ECS::Service with its task definition, container name and port; its hooks name known
lifecycle events. What does not hold makes the deployment fail with INVALID_REVISION.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from tierup.pipeline.sandbox.emulation.codedeploy_runs import Run

__all__ = ["HOOK_EVENTS", "read_revision"]

HOOK_EVENTS = frozenset(
    {
        "BeforeInstall",
        "AfterInstall",
        "AfterAllowTestTraffic",
        "BeforeAllowTraffic",
        "AfterAllowTraffic",
    }
)


def read_revision(run: Run, revision: dict[str, Any]) -> None:
    """What `revision` deploys, into `run`; `run.invalid` says why it cannot be deployed."""
    kind = revision.get("revisionType")
    if kind not in ("AppSpecContent", "String"):
        run.invalid = f"revision type {kind} cannot be read by the sandbox; use AppSpecContent"
        return
    holder = revision.get("appSpecContent") or revision.get("string") or {}
    text = holder.get("content") if isinstance(holder, dict) else None
    try:
        spec = (
            json.loads(text)
            if text and text.lstrip().startswith("{")
            else yaml.safe_load(text or "")
        )
    except (ValueError, yaml.YAMLError) as e:
        run.invalid = f"The AppSpec file cannot be parsed: {e}"
        return
    resources = spec.get("Resources") if isinstance(spec, dict) else None
    targets = [
        next(iter(r.values()))
        for r in resources or []
        if isinstance(r, dict) and len(r) == 1 and isinstance(next(iter(r.values())), dict)
    ]
    if len(targets) != 1 or targets[0].get("Type") != "AWS::ECS::Service":
        run.invalid = "The AppSpec file must name exactly one resource of type AWS::ECS::Service"
        return
    props = targets[0].get("Properties") or {}
    lb = props.get("LoadBalancerInfo") or {}
    run.task_definition = props.get("TaskDefinition")
    run.container = lb.get("ContainerName")
    port = lb.get("ContainerPort")
    run.port = int(port) if isinstance(port, int | str) and str(port).isdigit() else None
    if not run.task_definition or not run.container or run.port is None:
        run.invalid = (
            "The AppSpec file's AWS::ECS::Service needs Properties.TaskDefinition and "
            "LoadBalancerInfo.ContainerName and ContainerPort"
        )
        return
    for hook in spec.get("Hooks") or []:
        if isinstance(hook, dict):
            for event, function in hook.items():
                if event not in HOOK_EVENTS:
                    run.invalid = f"The AppSpec file names an unknown lifecycle hook {event}"
                    return
                run.hooks[str(event)] = str(function)
