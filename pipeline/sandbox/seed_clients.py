"""The seeding's AWS clients: at the sandbox's endpoint, in each account through its role.

Every account is reached by assuming its role (`role_arn`, or
`arn:aws:iam::<account>:role/tierup-sandbox`). Credentials come from the environment (any value
works against moto; dummy ones are used when there are none).
"""

from __future__ import annotations

from typing import Any

import boto3

from tierup.pipeline.config import Environment

__all__ = ["DEFAULT_ROLE_NAME", "Clients", "env_client", "role_arn_for"]

DEFAULT_ROLE_NAME = "tierup-sandbox"
SESSION_NAME = "tierup-sandbox-seed"
_DUMMY_CREDENTIALS = {"aws_access_key_id": "sandbox", "aws_secret_access_key": "sandbox"}


def role_arn_for(account_id: str, role_arn: str | None) -> str:
    return role_arn or f"arn:aws:iam::{account_id}:role/{DEFAULT_ROLE_NAME}"


class Clients:
    """boto3 clients at the sandbox endpoint, per assumed role and region."""

    def __init__(self, endpoint_url: str) -> None:
        self._endpoint_url = endpoint_url
        session = boto3.session.Session()
        credentials = session.get_credentials()
        if credentials is None:
            self._base: dict[str, Any] = dict(_DUMMY_CREDENTIALS)
        else:
            frozen = credentials.get_frozen_credentials()
            self._base = {
                "aws_access_key_id": frozen.access_key,
                "aws_secret_access_key": frozen.secret_key,
                "aws_session_token": frozen.token,
            }
        self._assumed: dict[tuple[str, str | None], dict[str, Any]] = {}

    def _credentials(self, role_arn: str, external_id: str | None, region: str) -> dict[str, Any]:
        key = (role_arn, external_id)
        if key not in self._assumed:
            sts = boto3.client(
                "sts", endpoint_url=self._endpoint_url, region_name=region, **self._base
            )
            params: dict[str, Any] = {"RoleArn": role_arn, "RoleSessionName": SESSION_NAME}
            if external_id:
                params["ExternalId"] = external_id
            creds = sts.assume_role(**params)["Credentials"]
            self._assumed[key] = {
                "aws_access_key_id": creds["AccessKeyId"],
                "aws_secret_access_key": creds["SecretAccessKey"],
                "aws_session_token": creds["SessionToken"],
            }
        return self._assumed[key]

    def client(self, service: str, *, role_arn: str, external_id: str | None, region: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self._endpoint_url,
            region_name=region,
            **self._credentials(role_arn, external_id, region),
        )


def env_client(clients: Clients, service: str, env: Environment) -> Any:
    return clients.client(
        service,
        role_arn=role_arn_for(env.account_id, env.role_arn),
        external_id=env.external_id,
        region=env.region,
    )
