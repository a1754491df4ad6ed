"""``tierup build``: parse, wire the clients, call ``pipeline.build``, render."""

from __future__ import annotations

from typing import Annotated

import typer

from tierup.pipeline.cli.common import (
    DryRunOpt,
    FileOpt,
    ImagesOpt,
    JsonOpt,
    load_config,
    make_clients,
    run,
)
from tierup.pipeline.results import CommandResult

PushOpt = Annotated[
    bool, typer.Option("--push/--no-push", help="push to the registry (default) or build only")
]
AllowDirtyOpt = Annotated[
    bool,
    typer.Option(
        "--allow-dirty",
        help="build a dirty working tree as <sha>-dirty (never promoted)",
    ),
]


def build(
    image: ImagesOpt = None,
    push: PushOpt = True,
    allow_dirty: AllowDirtyOpt = False,
    dry_run: DryRunOpt = False,
    file: FileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Build each image at HEAD, tag it with the commit SHA and push it."""

    def body() -> CommandResult:
        from tierup.pipeline.build import build, registry_login
        from tierup.pipeline.progress import LineProgress
        from tierup.stages.adapters.docker_client import DockerEngine

        cfg = load_config(file)
        clients = make_clients(cfg)
        return build(
            cfg,
            repo=clients.git_repo(),
            engine=None if dry_run else DockerEngine.from_env(),
            registry=clients.registry,
            registry_login=registry_login(clients),
            images=image,
            push=push,
            allow_dirty=allow_dirty,
            dry_run=dry_run,
            progress=LineProgress(),
        )

    run(as_json, body)


def register(app: typer.Typer) -> None:
    app.command("build")(build)
