"""`tierup sandbox fail|hang|heal`: mark an image bad or hanging in the sandbox, and only there.

The mark is the documented ECR tag on the image's digest (`sandbox-fail`, `sandbox-hang`, or
`sandbox-fail.<cluster>` for one cluster), written to the sandbox's own endpoint: the one
`tierup sandbox up` started here, else ``AWS_ENDPOINT_URL`` when it is a loopback address. A
command that could reach real AWS is refused.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from tierup.pipeline.config import Config, EcrRegistry
from tierup.pipeline.results import CommandResult
from tierup.pipeline.sandbox.control import REGION, SANDBOX_SECRET, STATE_DIR, caller_credentials
from tierup.stages import resolve
from tierup.stages.adapters.ecr import EcrRegistry as Ecr
from tierup.stages.errors import InputError

KINDS = {"fail": "sandbox-fail", "hang": "sandbox-hang"}


def sandbox_endpoint(repo_path: Path, environ: dict[str, str] | None = None) -> str:
    """The sandbox's endpoint; never an address that could be AWS."""
    from tierup.pipeline.sandbox import server

    state = server.read_state(repo_path / STATE_DIR)
    if state is not None:
        return state.endpoint_url
    env = os.environ if environ is None else environ
    url = env.get("AWS_ENDPOINT_URL", "")
    host = urlsplit(url).hostname or ""
    if host in ("127.0.0.1", "localhost", "::1") or host.startswith("127."):
        return url
    raise InputError(
        "no sandbox is running here, and AWS_ENDPOINT_URL is not a loopback address: refusing "
        "to mark images anywhere else",
        hint='start one: eval "$(tierup sandbox up)"',
    )


def _registry(config: Config, endpoint: str) -> Ecr:
    import boto3

    reg = config.registry
    if not isinstance(reg, EcrRegistry):
        raise InputError(
            "the sandbox emulates ECR; this envs.yaml uses an OCI registry",
            hint="use an envs.yaml whose registry is ECR (account_id, region)",
        )
    client = boto3.client(
        "ecr",
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id=caller_credentials(endpoint, reg.account_id),
        aws_secret_access_key=SANDBOX_SECRET,
    )
    return Ecr(client, account_id=reg.account_id, region=REGION)


def mark(
    config: Config,
    *,
    kind: str,
    image: str,
    tier: str | None,
    digest: str | None,
    cluster: str | None,
    repo_path: Path,
) -> CommandResult:
    """Mark ``image`` (a tier's digest, or ``digest``) bad (``fail``) or hanging (``hang``), or
    remove its marks (``heal``)."""
    if (tier is None) == (digest is None):
        raise InputError("pass one of --tier and --digest", hint="e.g. --tier dev")
    repository = config.image(image).repository
    registry = _registry(config, sandbox_endpoint(repo_path))
    if digest is not None:
        found = resolve.resolve_digest(registry, image, repository, digest)
    else:
        assert tier is not None
        t = config.tier(tier)
        found = resolve.resolve_tier(registry, image, repository, tier=t.name, template=t.tag)
    target = found.manifest.digest
    result = CommandResult(command=f"sandbox {kind}")
    result.data = {"image": image, "repository": repository, "digest": target}
    if kind == "heal":
        marks = [
            t
            for info in registry.list_images(repository)
            if info.digest == target
            for t in info.tags
            if t.startswith(tuple(KINDS.values()))
        ]
        if marks:
            registry.client.batch_delete_image(
                registryId=registry.account_id,
                repositoryName=repository,
                imageIds=[{"imageTag": t} for t in marks],
            )
        result.data["removed"] = marks
        result.notes.append(f"{image} {target}: marks removed ({', '.join(marks) or 'none'})")
        return result
    tag = KINDS[kind] + (f".{cluster}" if cluster else "")
    registry.put_tag(repository, tag, found.manifest)
    result.data["tag"] = tag
    where = f" in cluster {cluster}" if cluster else ""
    what = "fails its rollouts" if kind == "fail" else "never finishes a rollout"
    result.notes.append(f"{image} {target} {what}{where} (tag {tag})")
    return result
