"""Strategy `task-definition`: a new revision that differs from the running one only in images."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.support.ecs_checks import running_digests, stable_on
from tests.support.guarded import promote
from tests.support.world import REGISTRY, World, Writes, env_block, make_world
from tierup.stages.deploy import READ_ONLY_KEYS

pytestmark = pytest.mark.usefixtures("aws_env")

PROD_ACCOUNT = "555555555555"
HOST = f"{REGISTRY}.dkr.ecr.us-east-1.amazonaws.com"


def _world(tmp_path: Path, endpoint: str, **prod: str) -> World:
    envs = "\n".join(
        [
            env_block("dev", "dev", "111111111111", {"api": "{image: api}"}),
            env_block("staging", "staging", "333333333333", {"api": "{image: api}"}),
            env_block("prod", "prod", PROD_ACCOUNT, {"api": "{image: api}"}, **prod),
        ]
    )
    w = make_world(tmp_path, endpoint, envs)
    w.push_images(w.commit("second"))
    assert promote(w.config, w.clients(), tier="dev").exit_code == 0
    assert promote(w.config, w.clients(), tier="staging").exit_code == 0
    return w


def full_task_definition(family: str, image: str) -> dict[str, Any]:
    """A task definition with every family of fields RegisterTaskDefinition accepts."""
    return {
        "family": family,
        "taskRoleArn": f"arn:aws:iam::{PROD_ACCOUNT}:role/api-task",
        "executionRoleArn": f"arn:aws:iam::{PROD_ACCOUNT}:role/api-execution",
        "networkMode": "awsvpc",
        "containerDefinitions": [
            {
                "name": "api",
                "image": image,
                "cpu": 256,
                "memory": 512,
                "essential": True,
                "portMappings": [
                    {
                        "containerPort": 8080,
                        "protocol": "tcp",
                        "name": "http",
                        "appProtocol": "http",
                    }
                ],
                "environment": [{"name": "MODE", "value": "prod"}],
                "secrets": [
                    {
                        "name": "DB_PASSWORD",
                        "valueFrom": f"arn:aws:secretsmanager:us-east-1:{PROD_ACCOUNT}:secret:db",
                    }
                ],
                "mountPoints": [{"sourceVolume": "data", "containerPath": "/data"}],
                "logConfiguration": {
                    "logDriver": "awslogs",
                    "options": {"awslogs-group": "/ecs/api", "awslogs-region": "us-east-1"},
                },
                "healthCheck": {
                    "command": ["CMD-SHELL", "true"],
                    "interval": 30,
                    "timeout": 5,
                    "retries": 3,
                },
                "dependsOn": [{"containerName": "envoy", "condition": "HEALTHY"}],
                "ulimits": [{"name": "nofile", "softLimit": 4096, "hardLimit": 8192}],
                "linuxParameters": {"initProcessEnabled": True},
            },
            {
                "name": "envoy",
                "image": "public.ecr.aws/appmesh/aws-appmesh-envoy:v1.27.0.0-prod",
                "memory": 256,
                "essential": True,
                "user": "1337",
            },
        ],
        "volumes": [
            {"name": "data", "efsVolumeConfiguration": {"fileSystemId": "fs-12345678"}},
            {"name": "scratch", "host": {}},
        ],
        "placementConstraints": [
            {"type": "memberOf", "expression": "attribute:ecs.os-type == linux"}
        ],
        "requiresCompatibilities": ["EC2"],
        "cpu": "1024",
        "memory": "2048",
        "tags": [{"key": "team", "value": "payments"}, {"key": "cost-center", "value": "42"}],
        "pidMode": "task",
        "ipcMode": "task",
        "proxyConfiguration": {
            "type": "APPMESH",
            "containerName": "envoy",
            "properties": [
                {"name": "IgnoredUID", "value": "1337"},
                {"name": "ProxyIngressPort", "value": "15000"},
                {"name": "ProxyEgressPort", "value": "15001"},
                {"name": "AppPorts", "value": "8080"},
                {"name": "EgressIgnoredIPs", "value": "169.254.170.2,169.254.169.254"},
            ],
        },
        "inferenceAccelerators": [{"deviceName": "device1", "deviceType": "eia2.medium"}],
        "ephemeralStorage": {"sizeInGiB": 40},
        "runtimePlatform": {"cpuArchitecture": "ARM64", "operatingSystemFamily": "LINUX"},
        "enableFaultInjection": True,
    }


def _subnet(w: World) -> str:
    """A subnet in the prod account's VPC, for awsvpc tasks."""
    ecs = w.ecs(PROD_ACCOUNT)
    creds = ecs._request_signer._credentials  # the assumed role's, as World.ecs made them
    ec2 = boto3.client(
        "ec2",
        region_name="us-east-1",
        endpoint_url=w.endpoint,
        aws_access_key_id=creds.access_key,
        aws_secret_access_key=creds.secret_key,
        aws_session_token=creds.token,
    )
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    return str(ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"])


def _use_full_definition(w: World) -> dict[str, Any]:
    ecs = w.ecs(PROD_ACCOUNT)
    image = f"{HOST}/api:{w.repo.head.commit.parents[0].hexsha}"
    params = full_task_definition("prod-api", image)
    arn = ecs.register_task_definition(**params)["taskDefinition"]["taskDefinitionArn"]
    ecs.update_service(
        cluster="prod-cluster",
        service="api",
        taskDefinition=arn,
        networkConfiguration={"awsvpcConfiguration": {"subnets": [_subnet(w)]}},
    )
    stable_on(w, "prod", "api")
    return params


def _described(w: World, arn: str) -> dict[str, Any]:
    resp = w.ecs(PROD_ACCOUNT).describe_task_definition(taskDefinition=arn, include=["TAGS"])
    return {**resp["taskDefinition"], "tags": resp.get("tags", [])}


def _without(td: dict[str, Any], container: str) -> dict[str, Any]:
    out = {k: copy.deepcopy(v) for k, v in td.items() if k not in READ_ONLY_KEYS}
    for c in out["containerDefinitions"]:
        if c["name"] == container:
            c.pop("image")
    return out


@pytest.mark.parametrize("pin", ["tag", "digest"])
def test_new_revision_equals_the_old_but_for_the_image(
    tmp_path: Path, aws_env: str, pin: str
) -> None:
    w = _world(tmp_path, aws_env, pin=pin)
    params = _use_full_definition(w)
    old_arn = w.services("prod")["api"]["taskDefinition"]
    old = _described(w, old_arn)
    # every field we registered came back, so the comparison below covers all of them
    assert set(params) <= set(old)

    writes = Writes()
    result = promote(w.config, w.clients(writes), tier="prod")
    assert result.exit_code == 0, result.to_json()
    target = result.images[0]
    new_arn = result.environments[0].services[0].task_definition
    assert new_arn != old_arn
    new = _described(w, str(new_arn))

    assert _without(new, "api") == _without(old, "api")
    images = {c["name"]: c["image"] for c in new["containerDefinitions"]}
    expected = f"{HOST}/api@{target.digest}" if pin == "digest" else f"{HOST}/api:{target.tag}"
    assert images["api"] == expected
    assert images["envoy"] == params["containerDefinitions"][1]["image"]

    # what was sent: exactly the input shape's fields the old revision had
    registered = [p for n, p in writes.calls if n == "RegisterTaskDefinition"]
    assert len(registered) == 1
    shape = w.ecs(PROD_ACCOUNT).meta.service_model.operation_model("RegisterTaskDefinition")
    accepted = set(shape.input_shape.members)
    assert set(registered[0]) == {k for k in old if k in accepted}

    s = stable_on(w, "prod", "api")
    assert s["taskDefinition"] == new_arn
    assert running_digests(w, "prod", "api") == {target.digest, None}


def test_a_rerun_registers_nothing_and_the_dry_run_lists_the_registration(
    tmp_path: Path, aws_env: str
) -> None:
    w = _world(tmp_path, aws_env)
    writes = Writes()
    dry = promote(w.config, w.clients(writes), tier="prod", options=_dry())
    assert writes.calls == []
    assert [s["write"] for s in dry.plan] == [
        "registry:PutImage",
        "registry:PutImage",
        "ecs:RegisterTaskDefinition+UpdateService",
    ]
    assert promote(w.config, w.clients(writes), tier="prod").exit_code == 0
    assert writes.names() == ["PutImage", "PutImage", "RegisterTaskDefinition", "UpdateService"]
    again = Writes()
    result = promote(w.config, w.clients(again), tier="prod")
    assert result.exit_code == 0
    assert again.calls == []


def _dry() -> Any:
    from tierup.pipeline.promote import RunOptions

    return RunOptions(dry_run=True)
