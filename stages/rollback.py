"""Put a service back on a task definition it ran before.

Used by a promotion that rolls back on failure and by `tierup rollback`. The write follows
ECS's rules: a service cannot be updated to an INACTIVE revision (deregistered by a cleanup or
by CloudFormation), so such a revision is registered again as a copy and the copy is used.
"""

from __future__ import annotations

from stages.adapters.ecs import Ecs
from stages.adapters.registry import Registry, TagWrite
from stages.deploy import Applied, registration_input
from stages.errors import RegistryError
from stages.types import ServiceState


def rollback_service(
    ecs: Ecs,
    cluster: str,
    service: str,
    to_task_definition: str,
    *,
    state: ServiceState | None = None,
) -> Applied:
    """Deploy ``to_task_definition`` to ``service``; return the deployment to follow.

    When the service's PRIMARY deployment already runs that revision and has not failed
    (ECS's circuit breaker is rolling it back already), nothing is written and that
    deployment is the one to follow. Repeating the call is harmless.
    """
    current = state or ecs.describe_services(cluster, [service])[service]
    primary = current.primary
    target = ecs.describe_task_definition(to_task_definition)
    arn, registered = target.arn, False
    extra: dict[str, object] = {}
    if target.status != "ACTIVE":
        copy = ecs.register_task_definition(registration_input(ecs, target))
        arn, registered = copy.arn, True
        extra["registered_from"] = target.arn
    if (
        not registered
        and primary is not None
        and primary.task_definition == arn
        and primary.rollout_state != "FAILED"
    ):
        return Applied(
            service=service,
            deployment_id=primary.id,
            task_definition=arn,
            previous_task_definition=current.task_definition,
            extra={"written": False},
        )
    # the same revision as a failed PRIMARY needs a forced deployment to start again
    force = primary is not None and primary.task_definition == arn
    updated = ecs.update_service(cluster, service, task_definition=arn, force=force)
    now = updated.primary
    return Applied(
        service=service,
        deployment_id=now.id if now else None,
        task_definition=arn,
        previous_task_definition=current.task_definition,
        registered=registered,
        extra={**extra, "written": True},
    )


def rollback_tag(registry: Registry, repository: str, tag: str, to_digest: str) -> TagWrite:
    """Point ``tag`` back at ``to_digest`` (the manifest as the registry keeps it)."""
    manifest = registry.get_manifest(repository, to_digest)
    if manifest is None:
        raise RegistryError(
            f"{repository}@{to_digest} is gone (a lifecycle policy may have expired it): "
            f"{repository}:{tag} cannot go back to it",
            hint="push or restore that image, or promote a known-good digest with --digest",
        )
    return registry.put_tag(repository, tag, manifest)
