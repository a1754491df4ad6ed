"""One error base for the whole tool: a message, a hint and an exit code.

Stages raise these; the CLI renders them as one line and exits with the code.
AWS and registry errors are translated with ``raise ... from e`` where they happen.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1
    BAD_INPUT = 2
    PARTIAL = 3
    TIMED_OUT = 4


class TierupError(Exception):
    """Base of every error a user may see."""

    exit_code: ExitCode = ExitCode.FAILED
    default_hint: str = ""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint

    def diagnostics(self) -> str:
        return self.hint

    def __str__(self) -> str:
        return self.message


class ConfigError(TierupError):
    """envs.yaml (or a flag) is wrong; found before any write."""

    exit_code = ExitCode.BAD_INPUT
    default_hint = "fix the configuration and run `tierup validate`"


class InputError(TierupError):
    """A flag or argument is wrong, or a source does not resolve; nothing was written."""

    exit_code = ExitCode.BAD_INPUT


class AwsError(TierupError):
    """An AWS call failed for a reason tierup cannot fix by retrying."""

    exit_code = ExitCode.FAILED


class CredentialsError(AwsError):
    default_hint = (
        "set AWS credentials (AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
        "or a CI OIDC role) and try again"
    )


class RegistryError(TierupError):
    """A registry read or write failed."""

    exit_code = ExitCode.FAILED


class RepositoryMissing(InputError):
    """A repository named in envs.yaml does not exist; found before any write."""

    default_hint = "create it, or fix images.<name>.repository in envs.yaml"


class ConflictError(TierupError):
    """A write would overwrite something that must not move (immutable tag)."""

    exit_code = ExitCode.BAD_INPUT


class StampConflictError(ConflictError):
    """A stamped tag already names another digest: stamped tags never move (nothing written)."""

    exit_code = ExitCode.FAILED
