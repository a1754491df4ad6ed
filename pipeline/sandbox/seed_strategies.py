"""Seeding environments whose strategy owns their services: a stack, or CodeDeploy.

An environment with `strategy: cloudformation` gets a stack named by `cloudformation.stack`
whose parameter `cloudformation.image_parameter` is the image every container of its services
runs; the stack holds one task definition (family `<environment>-<service>`) and one service
(rolling, circuit breaker with rollback) per service of the environment. Its services must
all run one image, as the strategy requires.

An environment with `strategy: codedeploy` has one service, created with the CODE_DEPLOY
deployment controller, its container mapping `codedeploy.container_port` (default 80), and a
CodeDeploy application (compute platform ECS) with a blue/green deployment group that deploys
it, rolls back automatically on failure and uses `codedeploy.deployment_config` (default
CodeDeployDefault.ECSAllAtOnce).

What exists is left as it is.
"""

from __future__ import annotations

import json
import re
from typing import Any

from botocore.exceptions import ClientError

from tierup.pipeline.config import Environment
from tierup.pipeline.config_strategy import CodeDeployConfig
from tierup.stages.adapters.aws import is_client_error
from tierup.stages.errors import ConfigError

DEFAULT_PORT = 80
DEFAULT_CONFIG = "CodeDeployDefault.ECSAllAtOnce"
CONTAINER_MEMORY_MIB = 128
SANDBOX_CODEDEPLOY_ROLE = "tierup-sandbox-codedeploy"
_CIRCUIT_BREAKER = {
    "DeploymentCircuitBreaker": {"Enable": True, "Rollback": True},
    "MaximumPercent": 200,
    "MinimumHealthyPercent": 100,
}


def family_name(env_name: str, service_name: str) -> str:
    """The task definition family seed() registers for a service of an environment."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", f"{env_name}-{service_name}")[:255]


def _logical(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "", name.title()) or "Service"


def stack_template(
    env_name: str,
    env: Environment,
    containers: dict[str, list[str]],
    *,
    parameter: str,
    desired_count: int,
) -> dict[str, Any]:
    """One task definition and one service per service (`containers`: service -> containers),
    every container running the image parameter."""
    resources: dict[str, Any] = {}
    for service, names in containers.items():
        name = _logical(service)
        resources[f"{name}TaskDefinition"] = {
            "Type": "AWS::ECS::TaskDefinition",
            "Properties": {
                "Family": family_name(env_name, service),
                "ContainerDefinitions": [
                    {
                        "Name": container,
                        "Image": {"Ref": parameter},
                        "Memory": CONTAINER_MEMORY_MIB,
                        "Essential": True,
                    }
                    for container in names
                ],
            },
        }
        resources[f"{name}Service"] = {
            "Type": "AWS::ECS::Service",
            "Properties": {
                "ServiceName": service,
                "Cluster": env.cluster,
                "TaskDefinition": {"Ref": f"{name}TaskDefinition"},
                "DesiredCount": desired_count,
                "LaunchType": "EC2",
                "DeploymentConfiguration": _CIRCUIT_BREAKER,
            },
        }
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": f"tierup sandbox: the services of environment {env_name}",
        "Parameters": {
            parameter: {"Type": "String", "Description": "the image the services run"},
        },
        "Resources": resources,
    }


def ensure_stack(
    cfn: Any,
    env_name: str,
    env: Environment,
    *,
    containers: dict[str, dict[str, str]],
    desired_count: int,
) -> None:
    """The environment's stack, created with the image parameter on the services' image.

    `containers`: service -> container -> reference.
    """
    assert env.cloudformation is not None
    settings = env.cloudformation
    names = {image for service in env.services.values() for image in service.images().values()}
    if len(names) != 1:
        raise ConfigError(
            f"environment {env_name!r}: strategy cloudformation sets one image parameter, but "
            f"its services run images {', '.join(sorted(names))}",
            hint="give each image its own environment, or use another strategy",
        )
    try:
        cfn.describe_stacks(StackName=settings.stack)
        return
    except ClientError as e:
        if not is_client_error(e, "ValidationError"):
            raise
    reference = next(ref for images in containers.values() for ref in images.values())
    template = stack_template(
        env_name,
        env,
        {s: list(images) for s, images in containers.items()},
        parameter=settings.image_parameter,
        desired_count=desired_count,
    )
    cfn.create_stack(
        StackName=settings.stack,
        TemplateBody=json.dumps(template, indent=2),
        Parameters=[{"ParameterKey": settings.image_parameter, "ParameterValue": reference}],
    )


def _ensure_task_definition(
    ecs: Any, family: str, env_name: str, containers: dict[str, str], port: int
) -> str:
    try:
        current = ecs.describe_task_definition(taskDefinition=family)["taskDefinition"]
        if current.get("status") == "ACTIVE":
            return str(current["taskDefinitionArn"])
    except ClientError as e:
        if not is_client_error(e, "ClientException"):
            raise
    registered = ecs.register_task_definition(
        family=family,
        containerDefinitions=[
            {
                "name": name,
                "image": image,
                "essential": True,
                "memory": CONTAINER_MEMORY_MIB,
                "portMappings": [{"containerPort": port, "protocol": "tcp"}],
            }
            for name, image in containers.items()
        ],
        tags=[{"key": "tierup:environment", "value": env_name}],
    )
    return str(registered["taskDefinition"]["taskDefinitionArn"])


def ensure_codedeploy(
    ecs: Any,
    codedeploy: Any,
    env_name: str,
    env: Environment,
    *,
    containers: dict[str, dict[str, str]],
    desired_count: int,
) -> None:
    """The CODE_DEPLOY service, its application and its blue/green deployment group."""
    assert env.codedeploy is not None
    cfg: CodeDeployConfig = env.codedeploy
    if len(containers) != 1:
        raise ConfigError(
            f"environment {env_name!r}: a CodeDeploy deployment group deploys one service, but "
            f"it names {len(containers)}",
            hint="give each service its own environment",
        )
    service, images = next(iter(containers.items()))
    port = cfg.container_port or DEFAULT_PORT
    task_definition = _ensure_task_definition(
        ecs, family_name(env_name, service), env_name, images, port
    )
    found = ecs.describe_services(cluster=env.cluster, services=[service]).get("services", [])
    if not any(s.get("status") == "ACTIVE" for s in found):
        ecs.create_service(
            cluster=env.cluster,
            serviceName=service,
            taskDefinition=task_definition,
            desiredCount=desired_count,
            launchType="EC2",
            deploymentController={"type": "CODE_DEPLOY"},
        )
    try:
        codedeploy.create_application(applicationName=cfg.application, computePlatform="ECS")
    except ClientError as e:
        if not is_client_error(e, "ApplicationAlreadyExistsException"):
            raise
    try:
        codedeploy.create_deployment_group(
            applicationName=cfg.application,
            deploymentGroupName=cfg.deployment_group,
            deploymentConfigName=cfg.deployment_config or DEFAULT_CONFIG,
            serviceRoleArn=f"arn:aws:iam::{env.account_id}:role/{SANDBOX_CODEDEPLOY_ROLE}",
            ecsServices=[{"serviceName": service, "clusterName": env.cluster}],
            deploymentStyle={
                "deploymentType": "BLUE_GREEN",
                "deploymentOption": "WITH_TRAFFIC_CONTROL",
            },
            blueGreenDeploymentConfiguration={
                "terminateBlueInstancesOnDeploymentSuccess": {
                    "action": "TERMINATE",
                    "terminationWaitTimeInMinutes": 5,
                },
                "deploymentReadyOption": {"actionOnTimeout": "CONTINUE_DEPLOYMENT"},
            },
            loadBalancerInfo={
                "targetGroupPairInfoList": [
                    {
                        "targetGroups": [{"name": f"{service}-blue"}, {"name": f"{service}-green"}],
                        "prodTrafficRoute": {
                            "listenerArns": [
                                f"arn:aws:elasticloadbalancing:{env.region}:"
                                f"{env.account_id}:listener/app/{service}/prod"
                            ]
                        },
                        "testTrafficRoute": {
                            "listenerArns": [
                                f"arn:aws:elasticloadbalancing:{env.region}:"
                                f"{env.account_id}:listener/app/{service}/test"
                            ]
                        },
                    }
                ]
            },
            autoRollbackConfiguration={"enabled": True, "events": ["DEPLOYMENT_FAILURE"]},
        )
    except ClientError as e:
        if not is_client_error(e, "DeploymentGroupAlreadyExistsException"):
            raise
