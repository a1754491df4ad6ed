"""Faults moto cannot produce on its own, made by wrapping moto's backend methods.

Only moto's methods are wrapped, never tierup's or boto3's: the product sees a real
HTTP error from a real server.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import pytest
from moto.core.exceptions import AccessDeniedError, JsonRESTError
from moto.ecr.models import ECRBackend
from moto.sts.models import STSBackend


@pytest.fixture
def deny_assume_role(monkeypatch: pytest.MonkeyPatch) -> Iterator[set[str]]:
    """Role ARNs added to the set cannot be assumed (AccessDenied from STS)."""
    denied: set[str] = set()
    original = STSBackend.assume_role

    @functools.wraps(original)
    def assume_role(self: STSBackend, *args: Any, **kwargs: Any) -> Any:
        role_arn = kwargs.get("role_arn", args[2] if len(args) > 2 else None)
        if role_arn in denied:
            raise AccessDeniedError(
                user_arn="arn:aws:iam::012345678922:user/ci",
                action=f"sts:AssumeRole on resource: {role_arn}",
            )
        return original(self, *args, **kwargs)

    monkeypatch.setattr(STSBackend, "assume_role", assume_role)
    yield denied


@pytest.fixture
def throttle(monkeypatch: pytest.MonkeyPatch) -> Iterator[set[str]]:
    """ECR operations added to the set always answer ThrottlingException."""
    throttled: set[str] = set()
    original = ECRBackend.batch_get_image

    @functools.wraps(original)
    def batch_get_image(self: ECRBackend, *args: Any, **kwargs: Any) -> Any:
        if "BatchGetImage" in throttled:
            raise JsonRESTError("ThrottlingException", "Rate exceeded")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ECRBackend, "batch_get_image", batch_get_image)
    yield throttled
