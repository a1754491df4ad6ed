"""The sandbox survives awsvpc and FARGATE services: their tasks get an ENI with a private IP
and DNS name, as on ECS, and their rollouts complete (moto alone answers HTTP 500 for ever)."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from tests.support.world import assumed_client

pytestmark = pytest.mark.usefixtures("aws_env")

ACCOUNT = "123412341234"


def _details(task: dict[str, Any]) -> dict[str, str]:
    eni = next(a for a in task["attachments"] if a["type"] == "ElasticNetworkInterface")
    return {d["name"]: d["value"] for d in eni["details"]}


def test_a_fargate_service_in_a_vpc_without_dns_hostnames_rolls_out(aws_env: str) -> None:
    ec2 = assumed_client(aws_env, "ec2", ACCOUNT)
    ecs = assumed_client(aws_env, "ecs", ACCOUNT)
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]  # DNS hostnames off
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.20.1.0/24")["Subnet"]["SubnetId"]
    ecs.create_cluster(clusterName="fargate")
    td = ecs.register_task_definition(
        family="api",
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="256",
        memory="512",
        containerDefinitions=[{"name": "api", "image": "public.example/api:1"}],
    )["taskDefinition"]["taskDefinitionArn"]
    ecs.create_service(
        cluster="fargate",
        serviceName="api",
        taskDefinition=td,
        desiredCount=2,
        launchType="FARGATE",
        # no security groups: ECS uses the VPC's default one
        networkConfiguration={"awsvpcConfiguration": {"subnets": [subnet]}},
    )
    arns = ecs.list_tasks(cluster="fargate", serviceName="api")["taskArns"]
    tasks = ecs.describe_tasks(cluster="fargate", tasks=arns)["tasks"]
    assert [t["lastStatus"] for t in tasks] == ["RUNNING", "RUNNING"]
    for task in tasks:
        details = _details(task)
        ip = details["privateIPv4Address"]
        assert ipaddress.ip_address(ip).is_private
        assert details["privateDnsName"] == f"ip-{ip.replace('.', '-')}.ec2.internal"
    deployment = ecs.update_service(cluster="fargate", service="api", forceNewDeployment=True)[
        "service"
    ]["deployments"][0]["id"]
    for _ in range(6):
        service = ecs.describe_services(cluster="fargate", services=["api"])["services"][0]
    assert [(d["id"], d["status"], d["rolloutState"]) for d in service["deployments"]] == [
        (deployment, "PRIMARY", "COMPLETED")
    ]
    assert service["runningCount"] == 2
