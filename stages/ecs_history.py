"""What a service ran before its current deployment, from ECS's own deployment history.

ECS keeps the truth of every service deployment, whoever made it (tierup, the console, a
pipeline, the circuit breaker): ListServiceDeployments lists them, DescribeServiceDeployments
gives each one's source revisions (what ran when it started) and DescribeServiceRevisions what a
revision ran, task definition and image digests. The revision number before the current one
says nothing of the kind: a service that ran ``:2`` and was moved to ``:5`` never ran ``:4``.

``what_ran_before`` answers from the current deployment's source revisions, else from the last
SUCCESSFUL deployment before it; None when ECS does not offer the history or it does not know.
"""

from __future__ import annotations

from tierup.stages import rollback as rb
from tierup.stages.adapters.ecs import Ecs
from tierup.stages.types import ServiceRevision, ServiceState, TaskImage

# the deployment whose rollout put the service where it is now
CURRENT = ("SUCCESSFUL", "IN_PROGRESS", "PENDING")


def what_ran_before(
    ecs: Ecs, cluster: str, state: ServiceState, running: list[TaskImage]
) -> rb.RollbackTarget | None:
    history = ecs.service_deployments(cluster, state.name)
    if not history:
        return None
    current = next((d for d in history if d.status in CURRENT), None)
    if current is not None:
        sources = ecs.deployment_sources(current.arn) or []
        revisions = ecs.service_revisions(sources) if sources else {}
        now = rb.agreed_digests(running, state)
        for arn in sources:
            target = _differs(revisions.get(arn), state, now, f"service deployment {current.arn}")
            if target is not None:
                return target
    # no source recorded (the first deployment of a service, an endpoint that leaves it out):
    # the last deployment that succeeded before the current one
    return rb.from_ecs_history(ecs, cluster, state, running)


def _differs(
    revision: ServiceRevision | None, state: ServiceState, now: dict[str, str], detail: str
) -> rb.RollbackTarget | None:
    """A target from ``revision`` unless it is what runs now."""
    if revision is None or not revision.task_definition:
        return None
    digests = tuple((i.container, i.digest) for i in revision.images if i.digest)
    same_digests = all(now.get(c) in (None, d) for c, d in digests)
    if revision.task_definition == state.task_definition and same_digests:
        return None
    return rb.RollbackTarget(
        task_definition=revision.task_definition,
        digests=digests,
        source=rb.ECS_HISTORY,
        detail=f"what ran before {detail}",
    )
