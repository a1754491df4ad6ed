"""CloudFormation stack updates on moto: change sets as CloudFormation makes them.

moto 5.2 defaults ChangeSetType to CREATE (so UsePreviousTemplate without it crashes), reports
"No updates are to be performed." where CloudFormation creates a FAILED change set, lists no
Modify for a parameter change (or every resource as Add), and executes a change set at once:
the stack reads UPDATE_COMPLETE, the service stays on a task definition it has just
deregistered, the new revision loses its container names, and nothing ever rolls back.
`install()` wraps moto's own methods so that, seen through moto's HTTP server:

- CreateChangeSet (ChangeSetType UPDATE by default) honours UsePreviousTemplate and
  UsePreviousValue. The change set is CREATE_PENDING until it is first described, then
  CREATE_COMPLETE with one Modify per resource the change reaches: the resources that name a
  changed parameter, and those that reference a resource being replaced (an ECS task
  definition is replaced by any change; a service is modified in place), each with its
  Replacement and Details (ParameterReference / ResourceReference, the causing entity).
  A change set that changes nothing is FAILED with "The submitted information didn't contain
  changes. Submit different information to create a change set."
- DescribeChangeSet of a change set that is not there (deleted) is ChangeSetNotFound.
- ExecuteChangeSet registers the new task definition revision (the old one stays ACTIVE until
  cleanup), moves the service to it through the ECS emulation (a new PRIMARY deployment) and
  leaves the stack UPDATE_IN_PROGRESS with the new parameter values. Every DescribeStacks or
  DescribeStackEvents steps the service's rollout; when it is COMPLETED the stack goes through
  UPDATE_COMPLETE_CLEANUP_IN_PROGRESS (the old revision is deregistered) to UPDATE_COMPLETE.
- When the rollout fails (ECS's circuit breaker: see the ECS emulation's `sandbox-fail` tag),
  or when the update was told to fail (`fail_next_stack_update`), the resource is
  UPDATE_FAILED with the reason, the stack goes UPDATE_ROLLBACK_IN_PROGRESS, the previous
  template, parameter values and task definition come back (the service is deployed back),
  and the stack ends UPDATE_ROLLBACK_COMPLETE. The stack's events carry every step and reason.

Stacks created with a DeploymentConfiguration on an AWS::ECS::Service get it (moto drops it), so
the circuit breaker acts on them as on a service created directly.
"""

from __future__ import annotations

from tierup.pipeline.sandbox.emulation.cfn_change_sets import ChangeSets
from tierup.pipeline.sandbox.emulation.cfn_stacks import StackUpdates
from tierup.pipeline.sandbox.emulation.ecs import Emulation

__all__ = ["CloudFormationEmulation", "install"]


class CloudFormationEmulation:
    """State and settings of the CloudFormation part of the emulation: its change sets
    (`cfn_change_sets`) and its stack updates (`cfn_stacks`)."""

    def __init__(self, ecs: Emulation) -> None:
        self.change_sets = ChangeSets(ecs)
        self.stacks = StackUpdates(ecs)

    def fail_next_stack_update(self, stack: str, reason: str) -> None:
        """The next executed change set of stack `stack` (a name) fails with `reason`."""
        self.stacks.fail_next_stack_update(stack, reason)

    def reset(self) -> None:
        self.change_sets.reset()
        self.stacks.reset()

    def install(self) -> None:
        self.change_sets.install()
        self.stacks.install()


def install(ecs: Emulation) -> CloudFormationEmulation:
    part = CloudFormationEmulation(ecs)
    part.install()
    return part
