"""``tierup build``: build each image at HEAD, tag it with the commit SHA, push it.

Plan, then run: the plan lists, image by image, the builds and pushes a real run makes
(an image whose commit tag is already in the registry is neither built nor pushed);
``--dry-run`` returns that plan without touching Docker or the registry's contents.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tierup.pipeline.config import Config, ImageConfig
from tierup.pipeline.results import CommandResult, ImageOutcome
from tierup.stages.adapters.docker_client import (
    BuildRequest,
    DockerEngine,
    EngineError,
    RegistryAuth,
    ecr_login,
)
from tierup.stages.adapters.registry import Registry
from tierup.stages.build import Revision, commit_tag, context_path, image_labels, read_revision
from tierup.stages.errors import ConfigError, TierupError

if TYPE_CHECKING:
    import git

    from tierup.pipeline.clients import Clients

Progress = Callable[[str], None]
Login = Callable[[], RegistryAuth | None]


@dataclass(frozen=True)
class BuildStep:
    """Build one image and tag it locally with its registry reference."""

    image: str
    reference: str
    request: BuildRequest

    def describe(self) -> dict[str, Any]:
        r = self.request
        return {
            "action": "build",
            "image": self.image,
            "reference": self.reference,
            "context": str(r.context),
            "dockerfile": r.dockerfile,
            "target": r.target,
            "platform": r.platform,
            "build_args": dict(r.build_args),
            "labels": dict(r.labels),
            "summary": f"build {self.image} as {self.reference}",
        }


@dataclass(frozen=True)
class PushStep:
    """Push the reference a BuildStep tagged."""

    image: str
    reference: str

    def describe(self) -> dict[str, Any]:
        return {
            "action": "push",
            "write": "registry:push",
            "image": self.image,
            "reference": self.reference,
            "summary": f"push {self.reference}",
        }


@dataclass(frozen=True)
class ImagePlan:
    """What happens to one image: already there (``existing`` digest), or build [and push]."""

    image: str
    repository: str
    tag: str
    reference: str
    existing: str | None = None
    build: BuildStep | None = None
    push: PushStep | None = None

    @property
    def steps(self) -> list[BuildStep | PushStep]:
        return [s for s in (self.build, self.push) if s is not None]


def select_images(config: Config, names: Sequence[str] | None) -> list[str]:
    """The images to build, in envs.yaml order; an unknown name is a config error (exit 2)."""
    if not names:
        return list(config.images)
    for name in names:
        config.image(name)
    return [n for n in config.images if n in set(names)]


def _build_request(
    name: str, image: ImageConfig, root: Path, reference: str, labels: dict[str, str]
) -> BuildRequest:
    context = context_path(root, image.context)
    if not context.is_dir():
        raise ConfigError(
            f"images.{name}.context: {context} is not a directory",
            hint="contexts are relative to the repository's root",
        )
    dockerfile = Path(image.dockerfile)
    if not (dockerfile if dockerfile.is_absolute() else context / dockerfile).is_file():
        raise ConfigError(
            f"images.{name}.dockerfile: no {image.dockerfile} in {context}",
            hint="dockerfile is relative to the image's context",
        )
    return BuildRequest(
        context=context,
        dockerfile=image.dockerfile,
        tag=reference,
        target=image.target,
        build_args=dict(image.build_args),
        platform=image.platform,
        labels=labels,
    )


def plan_build(
    config: Config,
    *,
    revision: Revision,
    tag: str,
    registry: Registry,
    root: Path,
    images: Sequence[str] | None = None,
    push: bool = True,
) -> list[ImagePlan]:
    """Image by image, the builds and pushes a run makes. Reads the registry, writes nothing.

    A clean commit's tag that the registry already has is left alone (``existing``). With
    ``push=False`` the registry is not consulted: the image is built locally. A ``-dirty``
    tag is always rebuilt and pushed over, since the tree it came from is gone.
    """
    plans: list[ImagePlan] = []
    for name in select_images(config, images):
        image = config.image(name)
        own = image.tag(tag)  # `api-<sha>` when images share a repository
        reference = registry.image_uri(image.repository, own)
        request = _build_request(name, image, root, reference, image_labels(revision, image.labels))
        if push and not revision.dirty:
            # an image built from a clean commit never changes: the tag already there is it
            manifest = registry.get_manifest(image.repository, own)
            if manifest is not None:
                plans.append(
                    ImagePlan(name, image.repository, own, reference, existing=manifest.digest)
                )
                continue
        plans.append(
            ImagePlan(
                name,
                image.repository,
                own,
                reference,
                build=BuildStep(name, reference, request),
                push=PushStep(name, reference) if push else None,
            )
        )
    return plans


def run_plan(
    plans: Sequence[ImagePlan],
    *,
    engine: DockerEngine | None,
    auth: RegistryAuth | None,
    progress: Progress,
    commit: str,
) -> list[ImageOutcome]:
    """Build and push, image by image; one image's failure does not stop the others."""
    if engine is None and any(p.steps for p in plans):
        raise EngineError("no Docker engine to build with")
    outcomes: list[ImageOutcome] = []
    for plan in plans:
        say = _prefixed(progress, plan.image)
        if plan.existing is not None:
            outcomes.append(_planned(plan, commit))
            say(f"{plan.reference} already exists ({plan.existing}): nothing to do")
            continue
        outcome = ImageOutcome(
            image=plan.image,
            repository=plan.repository,
            status="planned",
            tag=plan.tag,
            commit=commit,
        )
        outcomes.append(outcome)
        try:
            if plan.build is not None:
                assert engine is not None
                say(f"building {plan.reference}")
                image_id = engine.build(plan.build.request, name=plan.image, progress=say)
                outcome.status = "built"
                outcome.note = f"image id {image_id}"
            if plan.push is not None:
                assert engine is not None
                say(f"pushing {plan.reference}")
                outcome.digest = engine.push(plan.reference, auth=auth, progress=say)
                outcome.status = "pushed"
                outcome.note = None
        except EngineError:
            raise
        except TierupError as e:
            outcome.status = "failed"
            outcome.error = e.message
            outcome.hint = e.hint
    return outcomes


def build(
    config: Config,
    *,
    repo: git.Repo,
    engine: DockerEngine | None,
    registry: Registry,
    registry_login: Login | None = None,
    images: Sequence[str] | None = None,
    push: bool = True,
    allow_dirty: bool = False,
    dry_run: bool = False,
    progress: Progress = lambda _line: None,
    root: Path | None = None,
) -> CommandResult:
    """Build (and push) every selected image at HEAD; the result lists tag, digest, status.

    ``root`` is where image contexts are relative to (default: the repository's work tree).
    ``registry_login`` gives the push credentials (ECR: get_authorization_token); None lets
    the Docker engine use its own configuration.
    """
    revision = read_revision(repo)
    tag = commit_tag(revision, allow_dirty=allow_dirty)
    base = root if root is not None else Path(str(repo.working_tree_dir))
    plans = plan_build(
        config, revision=revision, tag=tag, registry=registry, root=base, images=images, push=push
    )
    result = CommandResult(
        command="build",
        dry_run=dry_run,
        data={"commit": revision.commit, "tag": tag},
    )
    if revision.dirty:
        result.notes.append(
            f"built from a dirty working tree: {tag} is never promoted "
            f"({len(revision.changes)} changed path(s))"
        )
    if dry_run:
        result.plan = [step.describe() for p in plans for step in p.steps]
        result.images = [_planned(p, revision.commit) for p in plans]
        result.settle()
        return result
    auth = None
    if registry_login is not None and any(p.push is not None for p in plans):
        auth = registry_login()
    result.images = run_plan(
        plans,
        engine=engine,
        auth=auth,
        progress=progress,
        commit=revision.commit,
    )
    failed = [i for i in result.images if i.status == "failed"]
    if failed:
        first = failed[0]
        others = f" (and {len(failed) - 1} more image(s) failed)" if len(failed) > 1 else ""
        result.error = f"{first.error}{others}"
        result.hint = first.hint
    result.settle()
    return result


def _planned(plan: ImagePlan, commit: str) -> ImageOutcome:
    if plan.existing is not None:
        return ImageOutcome(
            image=plan.image,
            repository=plan.repository,
            status="exists",
            tag=plan.tag,
            digest=plan.existing,
            commit=commit,
            note="already in the registry: not built, not pushed",
        )
    what = "build and push" if plan.push is not None else "build (no push)"
    return ImageOutcome(
        image=plan.image,
        repository=plan.repository,
        status="planned",
        tag=plan.tag,
        commit=commit,
        note=what,
    )


def _prefixed(progress: Progress, image: str) -> Progress:
    def say(line: str) -> None:
        progress(f"{image}: {line}")

    return say


def registry_login(clients: Clients) -> Login:
    """Push credentials for the configured registry, fetched when the first push needs them.

    ECR: a token from get_authorization_token in the registry's account. Another registry:
    what Docker's config holds for it (None: the engine uses its own configuration).
    """

    def login() -> RegistryAuth | None:
        from tierup.stages.adapters.ecr import EcrRegistry
        from tierup.stages.adapters.oci.registry import OciRegistry

        registry = clients.registry
        if isinstance(registry, EcrRegistry):
            return ecr_login(registry.client, registry.host)
        if not isinstance(registry, OciRegistry):
            return None
        creds = registry.credentials()
        if creds is None or creds.identity_token:
            return None
        return RegistryAuth(username=creds.username, password=creds.password, server=registry.host)

    return login
