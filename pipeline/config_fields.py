"""The building blocks of envs.yaml's model: its base model and the field types it repeats."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

AccountId = Annotated[str, Field(pattern=r"^\d{12}$", description="12-digit AWS account id")]
RoleArn = Annotated[
    str,
    Field(
        pattern=r"^arn:aws[a-zA-Z-]*:iam::\d{12}:role/[A-Za-z0-9_+=,.@/-]+$",
        description="IAM role ARN, arn:aws:iam::<account>:role/<name>",
    ),
]
Region = Annotated[str, Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d$", description="AWS region")]
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=255)]
Pin = Literal["tag", "digest"]


def no_items() -> list[Any]:
    """An empty list (a default factory whose signature pydantic reads cheaply, unlike ``list``)."""
    return []


class LocatedError(ValueError):
    """A cross-reference error that knows its key path (``config_load`` reports it there)."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message


class ConfigModel(BaseModel):
    """A block of envs.yaml: unknown keys are errors, and the validated values are read-only."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
