"""One error base for the whole tool: a message, a hint, and whether it is a refusal.

Stages raise these. A refusal (``refusal``) is found while reading or planning, before any
write: a wrong input, a source that does not resolve, a write that must not happen; nothing was
written. Anything else failed on the way. The pipeline decides what each means to its caller
(the CLI's exit codes: ``pipeline.exit_codes``). AWS and registry errors are translated with
``raise ... from e`` where they happen.
"""

from __future__ import annotations


class TierupError(Exception):
    """Base of every error a user may see."""

    # found before any write (a wrong input or configuration, a refused write): nothing written
    refusal: bool = False
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

    refusal = True
    default_hint = "fix the configuration and run `tierup validate`"


class InputError(TierupError):
    """A flag or argument is wrong, or a source does not resolve; nothing was written."""

    refusal = True


class AwsError(TierupError):
    """An AWS call failed for a reason tierup cannot fix by retrying."""

    refusal = False


class CredentialsError(AwsError):
    default_hint = (
        "set AWS credentials (AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
        "or a CI OIDC role) and try again"
    )


class RegistryError(TierupError):
    """A registry read or write failed."""

    refusal = False


class RepositoryMissing(InputError):
    """A repository named in envs.yaml does not exist; found before any write."""

    default_hint = "create it, or fix images.<name>.repository in envs.yaml"


class ConflictError(TierupError):
    """A write would overwrite something that must not move (immutable tag)."""

    refusal = True


class StampConflictError(ConflictError):
    """A stamped tag already names another digest: stamped tags never move (nothing written)."""

    refusal = False
