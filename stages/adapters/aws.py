"""Translate botocore failures into tierup errors, in one place."""

from __future__ import annotations

import os
from typing import Any, NoReturn

from tierup.stages.errors import AwsError, CredentialsError, TierupError

THROTTLING = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "RequestThrottled",
        "SlowDown",
    }
)
ACCESS_DENIED = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnauthorizedOperation",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "ExpiredToken",
        "ExpiredTokenException",
        "SignatureDoesNotMatch",
    }
)


def error_code(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        return str(code) if code is not None else None
    return None


def error_message(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        msg = response.get("Error", {}).get("Message")
        if msg:
            return str(msg)
    return str(exc)


def translate(exc: BaseException, action: str, *, hint: str | None = None) -> TierupError:
    """A user-facing error for a failed AWS call (``action`` says what was being done)."""
    if isinstance(exc, TierupError):
        return exc
    name = type(exc).__name__
    token = _web_identity_token_problem(exc)
    if token is not None:
        return CredentialsError(f"{action}: {token}", hint=WEB_IDENTITY_HINT)
    if name in ("NoCredentialsError", "PartialCredentialsError", "NoRegionError"):
        if name == "NoRegionError":
            return AwsError(
                f"{action}: no AWS region is set", hint="set AWS_REGION or region in envs.yaml"
            )
        return CredentialsError(f"{action}: no AWS credentials found")
    if name in ("ProfileNotFound",):
        return CredentialsError(f"{action}: {exc}", hint="check AWS_PROFILE and ~/.aws/config")
    if name in (
        "EndpointConnectionError",
        "ConnectTimeoutError",
        "ReadTimeoutError",
        "ConnectionClosedError",
    ):
        return AwsError(
            f"{action}: cannot reach AWS ({name})",
            hint="check the network, AWS_ENDPOINT_URL, or start the sandbox: tierup sandbox up",
        )
    code = error_code(exc)
    message = error_message(exc)
    if code in THROTTLING:
        return AwsError(
            f"{action}: throttled by AWS and still throttled after retries ({code})",
            hint=hint or "retry later; the run is safe to repeat",
        )
    if code in ACCESS_DENIED:
        return AwsError(
            f"{action}: access denied ({code}): {message}",
            hint=hint or "check the IAM permissions of the caller or the assumed role",
        )
    if not hint and _server_side(exc):
        hint = "AWS failed on its side (a 5xx); retry later: the run is safe to repeat"
    if code is not None:
        return AwsError(f"{action}: {code}: {message}", hint=hint or GENERIC_HINT)
    return AwsError(f"{action}: {name}: {message}", hint=hint or GENERIC_HINT)


GENERIC_HINT = "re-run with --verbose for the details; the run is safe to repeat"
WEB_IDENTITY_HINT = (
    "the CI job's OIDC token did not reach it: GitHub Actions needs `permissions: id-token: "
    "write` on the job; GitLab CI an `id_tokens:` entry written to that file; or unset "
    "AWS_WEB_IDENTITY_TOKEN_FILE to use other credentials"
)


def _web_identity_token_problem(exc: BaseException) -> str | None:
    """What is wrong with the web identity token the credential chain read (an empty CI OIDC
    token gives botocore's bare "Invalid length for parameter WebIdentityToken"), or None."""
    path = os.environ.get("AWS_WEB_IDENTITY_TOKEN_FILE") or None
    where = f"{path} (AWS_WEB_IDENTITY_TOKEN_FILE)" if path else "(web_identity_token_file)"
    if type(exc).__name__ == "ParamValidationError" and "WebIdentityToken" in str(exc):
        return f"the web identity token file {where} is empty"
    if isinstance(exc, FileNotFoundError) and path and exc.filename == path:
        return f"the web identity token file {where} does not exist"
    return None


def _server_side(exc: BaseException) -> bool:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return False
    status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
    return isinstance(status, int) and status >= 500


def raise_translated(exc: BaseException, action: str, *, hint: str | None = None) -> NoReturn:
    raise translate(exc, action, hint=hint) from exc


def is_client_error(exc: BaseException, *codes: str) -> bool:
    return error_code(exc) in codes


Client = Any  # a boto3 client; typed loosely on purpose (boto3 ships no annotations)
