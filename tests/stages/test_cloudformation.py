"""Strategy cloudformation: a real stack (tests/support/templates/ecs-service.yaml) promoted
through a change set of its image parameter, on moto's server with the sandbox's emulation."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from moto.cloudformation.exceptions import ValidationError
from moto.cloudformation.models import CloudFormationBackend

from tests.support.guarded import promote
from tests.support.strategy_worlds import (
    HOST,
    STACK,
    STACK_ACCOUNT,
    STACK_ENVS,
    create_stack,
)
from tests.support.world import (
    World,
    Writes,
    assumed_client,
    env_block,
    make_world,
)
from tierup.pipeline import strategies
from tierup.pipeline.promote import RunOptions, Source
from tierup.pipeline.sandbox import emulation
from tierup.stages import cloudformation as cfn_stage
from tierup.stages import wait as wait_stage
from tierup.stages.adapters.ecs import Ecs
from tierup.stages.deploy import Applied, DeployError, ImageTarget
from tierup.stages.strategy import Context, RestoreTarget, ServiceTarget, StackSettings, Target
from tierup.stages.types import ServiceState, TaskDefinition

pytestmark = pytest.mark.usefixtures("aws_env")

ACCOUNT = STACK_ACCOUNT
ENVS = STACK_ENVS


def stack(world: World) -> dict[str, Any]:
    cfn = assumed_client(world.endpoint, "cloudformation", ACCOUNT)
    doc: dict[str, Any] = cfn.describe_stacks(StackName=STACK)["Stacks"][0]
    return doc


def parameters(world: World) -> dict[str, str]:
    return {p["ParameterKey"]: p["ParameterValue"] for p in stack(world)["Parameters"]}


def running(world: World) -> set[str | None]:
    images = Ecs(world.ecs(ACCOUNT)).running_images("stack-cluster", "api")
    return {t.digest for t in images.get("api", [])}


def image_of(world: World, task_definition: str) -> str:
    td = world.ecs(ACCOUNT).describe_task_definition(taskDefinition=task_definition)
    return str(td["taskDefinition"]["containerDefinitions"][0]["image"])


@pytest.fixture
def world(tmp_path: Path, aws_env: str) -> World:
    """The stack made from the template on the tier's tag; a second commit promoted to dev."""
    create_stack(aws_env, f"{HOST}/api:staging")
    w = make_world(tmp_path, aws_env, ENVS)
    w.push_images(w.commit("second"))
    assert promote(w.config, w.clients(), tier="dev").exit_code == 0
    return w


# -- promotion ---------------------------------------------------------------------------------


def test_promotion_changes_only_the_image_parameter_through_a_change_set(world: World) -> None:
    writes = Writes()
    result = promote(world.config, world.clients(writes), tier="staging")
    assert result.exit_code == 0, result.to_json()
    digest = world.tag_digest("api", "staging")
    new_ref = f"{HOST}/api@{digest}"

    names = writes.names()
    assert "UpdateService" not in names and "RegisterTaskDefinition" not in names
    assert names.count("CreateChangeSet") == 1 and names.count("ExecuteChangeSet") == 1
    request = next(p for n, p in writes.calls if n == "CreateChangeSet")
    assert request["StackName"] == STACK
    assert request["ChangeSetType"] == "UPDATE"
    assert request["UsePreviousTemplate"] is True
    assert "TemplateBody" not in request and "TemplateURL" not in request
    sent = {p["ParameterKey"]: p for p in request["Parameters"]}
    assert sent["ImageUrl"] == {"ParameterKey": "ImageUrl", "ParameterValue": new_ref}
    for key in ("ClusterName", "DesiredCount", "LogLevel"):
        assert sent[key] == {"ParameterKey": key, "UsePreviousValue": True}

    doc = stack(world)
    assert doc["StackStatus"] == "UPDATE_COMPLETE"
    assert parameters(world) == {
        "ImageUrl": new_ref,
        "ClusterName": "stack-cluster",
        "DesiredCount": "2",
        "LogLevel": "info",
    }
    service = world.services("stack")["api"]
    assert image_of(world, service["taskDefinition"]) == new_ref
    assert running(world) == {digest}

    env = result.to_json()["environments"]["stack"]
    outcome = env["services"]["api"]
    assert outcome["status"] == "completed"
    assert outcome["task_definition"] == service["taskDefinition"]
    assert outcome["previous_task_definition"] != service["taskDefinition"]
    step = next(s for s in result.plan if s["write"] == "cloudformation:ExecuteChangeSet")
    change_set = step["change_set"]
    assert change_set["parameter"] == {
        "name": "ImageUrl",
        "from": f"{HOST}/api:staging",
        "to": new_ref,
    }
    changes = {c["resource"]: c for c in change_set["changes"]}
    assert changes["TaskDefinition"]["action"] == "Modify"
    assert changes["TaskDefinition"]["replacement"] == "True"
    assert changes["TaskDefinition"]["details"] == [
        "ContainerDefinitions <- parameter ImageUrl (replaces it)"
    ]
    assert changes["Service"]["action"] == "Modify"
    assert changes["Service"]["replacement"] == "False"
    assert changes["Service"]["details"] == ["TaskDefinition <- resource TaskDefinition"]
    assert set(changes) == {"TaskDefinition", "Service"}


def test_dry_run_shows_the_change_set_and_changes_nothing(world: World) -> None:
    before = parameters(world)
    writes = Writes()
    dry = promote(
        world.config, world.clients(writes), tier="staging", options=RunOptions(dry_run=True)
    )
    assert dry.exit_code == 0
    # CloudFormation alone can say what a change does: the preview is a change set, deleted
    assert writes.names() == ["CreateChangeSet"]
    assert parameters(world) == before
    cfn = assumed_client(world.endpoint, "cloudformation", ACCOUNT)
    assert cfn.list_change_sets(StackName=STACK)["Summaries"] == []
    step = next(s for s in dry.plan if s.get("stack") == STACK)
    assert step["change_set"]["parameter"]["from"] == before["ImageUrl"]
    assert {c["resource"] for c in step["change_set"]["changes"]} == {"TaskDefinition", "Service"}

    r = world.cli("promote", "--tier", "staging", "--dry-run")
    assert r.exit_code == 0, r.output
    assert f"ImageUrl {before['ImageUrl']} -> {HOST}/api@" in r.stdout
    assert "Modify TaskDefinition (AWS::ECS::TaskDefinition), replacement: True" in r.stdout
    assert "Modify Service (AWS::ECS::Service), replacement: False" in r.stdout
    assert parameters(world) == before


def test_rerun_is_unchanged_without_a_change_set(world: World) -> None:
    assert promote(world.config, world.clients(), tier="staging").exit_code == 0
    writes = Writes()
    again = promote(world.config, world.clients(writes), tier="staging")
    assert again.exit_code == 0
    assert writes.calls == []
    outcome = again.environments[0].services[0]
    assert outcome.status == "skipped"
    assert outcome.reason is not None and outcome.reason.startswith("unchanged")


@pytest.fixture
def no_changes(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Make CloudFormation answer "nothing to do" in the form the test names."""
    form: list[str] = []
    create = CloudFormationBackend.create_change_set
    describe = CloudFormationBackend.describe_change_set

    @functools.wraps(create)
    def create_change_set(self: CloudFormationBackend, *args: Any, **kwargs: Any) -> Any:
        if "no-updates" in form:
            raise ValidationError(message="No updates are to be performed.")
        return create(self, *args, **kwargs)

    @functools.wraps(describe)
    def describe_change_set(self: CloudFormationBackend, *args: Any, **kwargs: Any) -> Any:
        change_set = describe(self, *args, **kwargs)
        if "failed-change-set" in form:
            change_set.status = "FAILED"
            change_set.execution_status = "UNAVAILABLE"
            change_set.status_reason = emulation_cfn_no_changes()
        return change_set

    monkeypatch.setattr(CloudFormationBackend, "create_change_set", create_change_set)
    monkeypatch.setattr(CloudFormationBackend, "describe_change_set", describe_change_set)
    yield form


def emulation_cfn_no_changes() -> str:
    from tierup.pipeline.sandbox.emulation.cfn_change_sets import NO_CHANGES

    return NO_CHANGES


@pytest.mark.parametrize("form", ["failed-change-set", "no-updates"])
def test_both_forms_of_nothing_to_do_are_unchanged(
    world: World, no_changes: list[str], form: str
) -> None:
    no_changes.append(form)
    before = parameters(world)
    writes = Writes()
    result = promote(world.config, world.clients(writes), tier="staging")
    assert result.exit_code == 0, result.to_json()
    assert "ExecuteChangeSet" not in writes.names()
    outcome = result.environments[0].services[0]
    assert outcome.status == "skipped"
    assert outcome.reason is not None and outcome.reason.startswith("unchanged")
    assert parameters(world) == before
    cfn = assumed_client(world.endpoint, "cloudformation", ACCOUNT)
    assert cfn.list_change_sets(StackName=STACK)["Summaries"] == []


def test_commit_source_passes_the_commit_tag_and_where_is_in_sync(world: World) -> None:
    sha = world.head
    code, doc = world.cli_json("promote", "--tier", "staging", "--commit", sha)
    assert code == 0, doc
    assert parameters(world)["ImageUrl"] == f"{HOST}/api:{sha}"
    code, where = world.cli_json("where", "--env", "stack")
    assert code == 0, where
    svc = where["environments"]["stack"]["services"]["api"]
    assert svc["running_digests"] == [world.tag_digest("api", sha)]
    assert svc["drift"] is False, svc["drift_reasons"]


# -- failures ----------------------------------------------------------------------------------


def test_failed_stack_update_is_reported_with_the_reason_of_its_events(world: World) -> None:
    before = parameters(world)
    before_td = world.services("stack")["api"]["taskDefinition"]
    reason = 'Resource handler returned message: "Service api did not stabilize"'
    emulation.install().fail_next_stack_update(STACK, reason)
    code, doc = world.cli_json("promote", "--tier", "staging")
    assert code == 1, doc
    env = doc["environments"]["stack"]
    assert env["status"] == "failed"
    error = env["services"]["api"]["error"]
    assert "UPDATE_ROLLBACK_COMPLETE" in error
    assert f"Service: {reason}" in error
    assert stack(world)["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE"
    assert parameters(world) == before
    assert world.services("stack")["api"]["taskDefinition"] == before_td

    r = world.cli("promote", "--tier", "staging")
    assert r.exit_code == 0, r.output  # the stack can take the next update


def test_image_that_fails_rolls_the_stack_back_through_ecs(world: World) -> None:
    before = parameters(world)
    bad = world.commit("bad")
    world.push_images(bad, tags=("sandbox-fail",))
    result = promote(
        world.config,
        world.clients(),
        tier="staging",
        source=Source(kind="commit", value=bad),
    )
    assert result.exit_code == 1
    outcome = result.environments[0].services[0]
    assert outcome.status == "failed"
    assert outcome.error is not None
    assert "CloudFormation rolled the stack back (UPDATE_ROLLBACK_COMPLETE)" in outcome.error
    assert "ECS Deployment Circuit Breaker was triggered" in outcome.error
    assert "marked bad" in outcome.error
    assert parameters(world) == before


def test_a_stack_without_the_parameter_is_refused_before_any_write(world: World) -> None:
    text = world.config_path.read_text().replace(
        "image_parameter: ImageUrl", "image_parameter: Img"
    )
    world.config_path.write_text(text)
    writes = Writes()
    code, doc = world.cli_json("promote", "--tier", "staging", "--no-wait")
    assert code == 1, doc
    error = doc["environments"]["stack"]["services"]["api"]
    assert "has no parameter 'Img'" in error["error"]
    assert "image_parameter" in error["hint"]
    result = promote(world.config, world.clients(writes), tier="staging")
    assert "CreateChangeSet" not in writes.names()
    assert result.exit_code == 1


def test_one_image_parameter_cannot_carry_two_images() -> None:
    def target(image: str) -> ImageTarget:
        return ImageTarget(
            image, image, "staging", "sha256:" + "0" * 64, f"{image}:t", f"{image}@d"
        )

    td = TaskDefinition("arn:td/x:1", "x", 1, "ACTIVE", ())
    state = ServiceState("s", "arn", "c", "ACTIVE", td.arn, 1, 1, ())
    planned = cfn_stage.CloudFormationStrategy().plan(
        Context("env", "c", Ecs(None), client=lambda _s: None),
        Target(
            environment="env",
            cluster="c",
            strategy="cloudformation",
            pin="tag",
            services=(
                ServiceTarget("api", {None: target("api")}, state, td),
                ServiceTarget("worker", {None: target("worker")}, state, td),
            ),
            cloudformation=StackSettings("s", "ImageUrl"),
        ),
    )
    assert planned.services == []
    assert set(planned.errors) == {"api", "worker"}
    assert "images api, worker" in planned.errors["api"].message
    assert isinstance(planned.errors["api"], DeployError)


# -- rollback ----------------------------------------------------------------------------------


def test_rollback_is_a_change_set_back_to_the_previous_value(world: World) -> None:
    first = promote(world.config, world.clients(), tier="staging")
    assert first.exit_code == 0
    old_digest = world.tag_digest("api", "staging")
    old_value = parameters(world)["ImageUrl"]
    world.push_images(world.commit("third"))
    assert promote(world.config, world.clients(), tier="dev").exit_code == 0
    second = promote(world.config, world.clients(), tier="staging")
    assert second.exit_code == 0
    assert parameters(world)["ImageUrl"] != old_value

    # what the promotion applied, as its result tells it
    step = next(s for s in second.plan if s.get("stack") == STACK)
    outcome = second.environments[0].services[0]
    applied = Applied(
        "api",
        outcome.deployment_id,
        str(outcome.task_definition),
        str(outcome.previous_task_definition),
        extra={
            "stack": STACK,
            "parameter": step["change_set"]["parameter"]["name"],
            "previous_value": step["change_set"]["parameter"]["from"],
        },
    )
    config = world.config
    clients = world.clients(writes := Writes())
    ctx = strategies.context(clients, "stack", config.environment("stack"))
    strategy = cfn_stage.CloudFormationStrategy()
    back = strategy.rollback(ctx, {"api": applied})
    assert back["api"].deployment_id is not None
    request = next(p for n, p in writes.calls if n == "CreateChangeSet")
    assert request["UsePreviousTemplate"] is True
    assert {"ParameterKey": "ImageUrl", "ParameterValue": old_value} in request["Parameters"]
    states = strategy.wait(ctx, back, timeout=60)
    assert states["api"].state == wait_stage.COMPLETED, states
    assert parameters(world)["ImageUrl"] == old_value
    assert running(world) == {old_digest}
    assert image_of(world, str(states["api"].task_definition)) == old_value

    # again: the stack already has the value, nothing is written
    writes.calls.clear()
    again = strategy.rollback(ctx, {"api": applied})
    assert again["api"].deployment_id is None
    assert "ExecuteChangeSet" not in writes.names()


# -- the emulation, seen through boto3 ----------------------------------------------------------


@pytest.fixture
def cfn(aws_env: str) -> Any:
    create_stack(aws_env, "registry.invalid/api:one", cluster="emulated")
    return assumed_client(aws_env, "cloudformation", ACCOUNT)


def _change_set(cfn: Any, image: str) -> dict[str, Any]:
    created = cfn.create_change_set(
        StackName=STACK,
        ChangeSetName=f"cs-{abs(hash(image))}",
        UsePreviousTemplate=True,
        Parameters=[
            {"ParameterKey": "ImageUrl", "ParameterValue": image},
            {"ParameterKey": "ClusterName", "UsePreviousValue": True},
            {"ParameterKey": "DesiredCount", "UsePreviousValue": True},
            {"ParameterKey": "LogLevel", "UsePreviousValue": True},
        ],
    )
    described: dict[str, Any] = cfn.describe_change_set(ChangeSetName=created["Id"])
    return described


def _until(cfn: Any, *statuses: str) -> str:
    for _ in range(20):
        status = str(cfn.describe_stacks(StackName=STACK)["Stacks"][0]["StackStatus"])
        if status in statuses:
            return status
    raise AssertionError(f"stack never reached {statuses}")


def test_emulated_change_set_keeps_the_previous_template_and_values(cfn: Any) -> None:
    described = _change_set(cfn, "registry.invalid/api:two")
    assert described["Status"] == "CREATE_COMPLETE"
    assert described["ExecutionStatus"] == "AVAILABLE"
    assert {p["ParameterKey"]: p["ParameterValue"] for p in described["Parameters"]} == {
        "ImageUrl": "registry.invalid/api:two",
        "ClusterName": "emulated",
        "DesiredCount": "2",
        "LogLevel": "info",
    }
    changes = [c["ResourceChange"] for c in described["Changes"]]
    assert [c["LogicalResourceId"] for c in changes] == ["TaskDefinition", "Service"]
    assert [c["Action"] for c in changes] == ["Modify", "Modify"]
    assert [c["Replacement"] for c in changes] == ["True", "False"]
    assert changes[0]["Details"][0]["ChangeSource"] == "ParameterReference"
    assert changes[0]["Details"][0]["CausingEntity"] == "ImageUrl"
    assert changes[1]["Details"][0]["CausingEntity"] == "TaskDefinition"


def test_emulated_execution_moves_the_service_then_completes(cfn: Any, aws_env: str) -> None:
    ecs = assumed_client(aws_env, "ecs", ACCOUNT)
    old = ecs.describe_services(cluster="emulated", services=["api"])["services"][0]
    cfn.execute_change_set(
        ChangeSetName=_change_set(cfn, "registry.invalid/api:two")["ChangeSetId"]
    )
    assert cfn.describe_stacks(StackName=STACK)["Stacks"][0]["StackStatus"] == "UPDATE_IN_PROGRESS"
    assert _until(cfn, "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE") == "UPDATE_COMPLETE"
    now = ecs.describe_services(cluster="emulated", services=["api"])["services"][0]
    assert now["taskDefinition"] != old["taskDefinition"]
    td = ecs.describe_task_definition(taskDefinition=now["taskDefinition"])["taskDefinition"]
    container = td["containerDefinitions"][0]
    assert (container["name"], container["image"]) == ("api", "registry.invalid/api:two")
    assert container["portMappings"][0]["containerPort"] == 8080
    retired = ecs.describe_task_definition(taskDefinition=old["taskDefinition"])["taskDefinition"]
    assert retired["status"] == "INACTIVE"
    statuses = [
        e["ResourceStatus"] for e in cfn.describe_stack_events(StackName=STACK)["StackEvents"]
    ]
    assert statuses.index("UPDATE_COMPLETE") < statuses.index("UPDATE_COMPLETE_CLEANUP_IN_PROGRESS")


def test_emulated_change_set_without_changes_is_failed(cfn: Any) -> None:
    described = _change_set(cfn, "registry.invalid/api:one")
    assert described["Status"] == "FAILED"
    assert "didn't contain changes" in described["StatusReason"]
    with pytest.raises(cfn.exceptions.InvalidChangeSetStatusException):
        cfn.execute_change_set(ChangeSetName=described["ChangeSetId"])


def test_emulated_failure_rolls_back_with_the_reason(cfn: Any, aws_env: str) -> None:
    ecs = assumed_client(aws_env, "ecs", ACCOUNT)
    old = ecs.describe_services(cluster="emulated", services=["api"])["services"][0]
    emulation.install().fail_next_stack_update(STACK, "told to fail")
    cfn.execute_change_set(
        ChangeSetName=_change_set(cfn, "registry.invalid/api:two")["ChangeSetId"]
    )
    assert _until(cfn, "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE") == "UPDATE_ROLLBACK_COMPLETE"
    params = cfn.describe_stacks(StackName=STACK)["Stacks"][0]["Parameters"]
    assert {"ParameterKey": "ImageUrl", "ParameterValue": "registry.invalid/api:one"} in params
    now = ecs.describe_services(cluster="emulated", services=["api"])["services"][0]
    assert now["taskDefinition"] == old["taskDefinition"]
    events = cfn.describe_stack_events(StackName=STACK)["StackEvents"]
    failed = [e for e in events if e["ResourceStatus"] == "UPDATE_FAILED"]
    assert [(e["LogicalResourceId"], e["ResourceStatusReason"]) for e in failed] == [
        ("Service", "told to fail")
    ]
    assert json.dumps(events, default=str).count("UPDATE_ROLLBACK_IN_PROGRESS") == 1


def test_restore_sets_the_parameter_to_what_a_revision_runs(world: World) -> None:
    first = promote(world.config, world.clients(), tier="staging")
    assert first.exit_code == 0
    revision = str(first.environments[0].services[0].task_definition)
    old_digest = world.tag_digest("api", "staging")
    world.push_images(world.commit("third"))
    assert promote(world.config, world.clients(), tier="dev").exit_code == 0
    assert promote(world.config, world.clients(), tier="staging").exit_code == 0
    assert running(world) != {old_digest}

    ctx = strategies.context(world.clients(), "stack", world.config.environment("stack"))
    strategy = cfn_stage.CloudFormationStrategy()
    back = strategy.restore(ctx, {"api": RestoreTarget(revision)})
    states = strategy.wait(ctx, back, timeout=60)
    assert states["api"].state == wait_stage.COMPLETED, states
    assert parameters(world)["ImageUrl"] == image_of(world, revision)
    assert running(world) == {old_digest}


def test_a_stamp_passes_the_stamp_to_a_seeded_stack(tmp_path: Path, aws_env: str) -> None:
    envs = "\n".join(
        [
            env_block("dev", "dev", "111111111111", {"api": "{image: api}"}),
            env_block("staging", "staging", "333333333333", {"api": "{image: api}"}),
            env_block(
                "prod",
                "prod",
                ACCOUNT,
                {"api": "{image: api}", "api-jobs": "{image: api}"},
                strategy="cloudformation",
                cloudformation="{stack: api-prod, image_parameter: Image}",
            ),
        ]
    )
    world = make_world(tmp_path, aws_env, envs)  # the sandbox's seeding makes the stack
    cfn = assumed_client(aws_env, "cloudformation", ACCOUNT)
    resources = cfn.list_stack_resources(StackName="api-prod")["StackResourceSummaries"]
    assert sorted(r["ResourceType"] for r in resources) == [
        "AWS::ECS::Service",
        "AWS::ECS::Service",
        "AWS::ECS::TaskDefinition",
        "AWS::ECS::TaskDefinition",
    ]
    result = promote(world.config, world.clients(), tier="prod", command="stamp")
    assert result.exit_code == 0, result.to_json()
    stamp = result.images[0].tag
    assert stamp is not None and stamp.startswith("prod-")
    doc = cfn.describe_stacks(StackName="api-prod")["Stacks"][0]
    assert doc["StackStatus"] == "UPDATE_COMPLETE"
    assert doc["Parameters"] == [{"ParameterKey": "Image", "ParameterValue": f"{HOST}/api:{stamp}"}]
    digest = world.tag_digest("api", stamp)
    images = Ecs(world.ecs(ACCOUNT)).running_images("prod-cluster")
    assert {t.digest for ts in images.values() for t in ts} == {digest}
    assert {s.status for s in result.environments[0].services} == {"completed"}


def test_rollback_on_failure_writes_nothing_to_a_stack_cloudformation_rolled_back(
    world: World,
) -> None:
    """The stack's parameter names a tag: CloudFormation's rollback put that tag back, and a
    change set pinning it to a digest would be a second write nobody asked for."""
    before = parameters(world)
    assert before["ImageUrl"].endswith(":staging")
    # the service's tasks run (and report) what the tag names: a rollback knows the digest
    ecs = world.ecs(ACCOUNT)
    ecs.update_service(cluster="stack-cluster", service="api", forceNewDeployment=True)
    for _ in range(8):
        world.services("stack")
    ran = world.tag_digest("api", "staging")
    assert running(world) == {ran}
    mark = world.tag_digest("api", "dev")
    world.push_images(world.commit("bad"), tags=("sandbox-fail.stack-cluster",))
    assert promote(world.config, world.clients(), tier="dev").exit_code == 0
    assert world.tag_digest("api", "dev") != mark
    writes = Writes()

    result = promote(
        world.config,
        world.clients(writes),
        tier="staging",
        options=RunOptions(rollback_on_failure=True),
    )

    assert result.exit_code == 1, result.to_json()
    outcome = result.environments[0].services[0]
    assert outcome.status == "failed"
    assert "UPDATE_ROLLBACK_COMPLETE" in str(outcome.error)
    assert outcome.rollback is not None
    assert outcome.rollback.deployment_id is None, outcome.rollback
    assert writes.names().count("CreateChangeSet") == 1, writes.names()
    assert writes.names().count("ExecuteChangeSet") == 1, writes.names()
    assert parameters(world) == before
    for _ in range(8):
        world.services("stack")
    assert running(world) == {ran}
