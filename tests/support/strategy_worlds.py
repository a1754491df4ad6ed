"""The worlds of the strategies that own their services: a CloudFormation stack (from
templates/ecs-service.yaml) and a CodeDeploy blue/green service, as their tests and the fault
suite use them."""

from __future__ import annotations

from pathlib import Path

from tests.support.world import REGION, REGISTRY, assumed_client, env_block

TEMPLATE = Path(__file__).resolve().parent / "templates" / "ecs-service.yaml"
STACK_ACCOUNT = "666666666666"
STACK = "api-stack"
HOST = f"{REGISTRY}.dkr.ecr.{REGION}.amazonaws.com"
STACK_ENVS = "\n".join(
    [
        env_block("dev", "dev", "111111111111", {"api": "{image: api}"}),
        env_block(
            "stack",
            "staging",
            STACK_ACCOUNT,
            {"api": "{image: api}"},
            strategy="cloudformation",
            cloudformation=f"{{stack: {STACK}, image_parameter: ImageUrl}}",
        ),
    ]
)


def create_stack(
    endpoint: str, image: str, name: str = STACK, cluster: str = "stack-cluster"
) -> None:
    assumed_client(endpoint, "cloudformation", STACK_ACCOUNT).create_stack(
        StackName=name,
        TemplateBody=TEMPLATE.read_text(),
        Parameters=[
            {"ParameterKey": "ImageUrl", "ParameterValue": image},
            {"ParameterKey": "ClusterName", "ParameterValue": cluster},
        ],
    )


BLUEGREEN_ACCOUNT = "777777777777"
BLUEGREEN_CLUSTER = "bluegreen-cluster"
CODEDEPLOY = (
    "{application: api, deployment_group: api-bg, "
    "deployment_config: CodeDeployDefault.ECSLinear10PercentEvery1Minutes, "
    "container_port: 8080, hooks: {AfterAllowTestTraffic: smoke-test, BeforeInstall: prepare}}"
)
BLUEGREEN_ENVS = "\n".join(
    [
        env_block("dev", "dev", "111111111111", {"api": "{image: api}"}),
        env_block(
            "bluegreen",
            "staging",
            BLUEGREEN_ACCOUNT,
            {"api": "{image: api}"},
            strategy="codedeploy",
            codedeploy=CODEDEPLOY,
        ),
    ]
)
