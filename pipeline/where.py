"""`tierup where`: which tag points where, and what each environment really runs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tierup.pipeline import releases
from tierup.pipeline.clients import Clients
from tierup.pipeline.config import Config
from tierup.pipeline.ledger.base import Ledger
from tierup.pipeline.results import CommandResult, Status
from tierup.stages import all_strategies, resolve
from tierup.stages.deploy import DeployError, names_reference, pick_container
from tierup.stages.errors import AwsError, TierupError
from tierup.stages.parallel import each
from tierup.stages.strategy import SERVICE_DEPLOYMENTS, capabilities
from tierup.stages.types import ImageInfo, ImageRef, is_commit_sha

MAX_WORKERS = 16


@dataclass(frozen=True)
class TierTag:
    tag: str | None
    digest: str | None
    commits: tuple[str, ...]
    pushed_at: str | None


def tier_tags(
    config: Config,
    image: str,
    listing: list[ImageInfo],
    events: Mapping[str, list[dict[str, Any]]],
) -> dict[str, TierTag]:
    """Each tier's current release of ``image`` (``events``: each tier's ledger events); only
    that image's own tags count when images share a repository."""
    prefix = config.image(image).tag_prefix
    out: dict[str, TierTag] = {}
    for tier in config.tiers:
        found = releases.current_release(
            tier,
            image,
            events=list(events.get(tier.name, [])),
            listing=listing,
            template=config.tier_tag(image, tier),
        )
        if found is None or found.info is None:
            out[tier.name] = TierTag(None, None, (), None)
            continue
        tag, info = found.tag, found.info
        out[tier.name] = TierTag(
            tag=tag,
            digest=info.digest,
            commits=tuple(resolve.commits_on(info, prefix)),
            pushed_at=info.pushed_at.isoformat() if info.pushed_at else None,
        )
    return out


def where(
    config: Config,
    clients: Clients,
    *,
    image: str | None = None,
    tier: str | None = None,
    env: str | None = None,
    ledger: Ledger | None = None,
) -> CommandResult:
    """Tags, releases and what runs; ``ledger`` tells a stamped tier's release (see releases)."""
    if image is not None:
        config.image(image)
    if tier is not None:
        config.tier(tier)
    if env is not None:
        config.environment(env)
    names = [image] if image else list(config.images)
    registry = clients.registry
    listings: dict[str, list[ImageInfo]] = {}
    # a stamped tier's release depends on its ledger events: read once per tier
    events = {
        t.name: releases.tier_events(ledger, t.name)
        for t in config.tiers
        if t.immutable and (tier is None or t.name == tier)
    }
    images_doc: dict[str, Any] = {}
    errors: list[str] = []
    for name in names:
        repo = config.image(name).repository
        try:
            listing = registry.list_images(repo)
        except TierupError as e:
            images_doc[name] = {"repository": repo, "error": e.message, "hint": e.hint}
            errors.append(e.message)
            continue
        listings[name] = listing
        tiers = tier_tags(config, name, listing, events)
        images_doc[name] = {
            "repository": repo,
            "tiers": {
                t: {
                    "tag": v.tag,
                    "digest": v.digest,
                    "commits": list(v.commits),
                    "pushed_at": v.pushed_at,
                }
                for t, v in tiers.items()
                if tier is None or t == tier
            },
        }
    env_names = [
        n
        for n, e in config.environments.items()
        if (env is None or n == env) and (tier is None or e.tier == tier)
    ]
    digest_by_ref: dict[str, str] = {}
    for name, listing in listings.items():
        repo = config.image(name).repository
        for info in listing:
            for t in info.tags:
                digest_by_ref[registry.image_uri(repo, t)] = info.digest
            digest_by_ref[registry.image_uri(repo, info.digest)] = info.digest

    def one(env_name: str) -> tuple[str, dict[str, Any]]:
        return env_name, _environment(config, clients, env_name, images_doc, digest_by_ref, names)

    envs_doc = dict(each(one, env_names, MAX_WORKERS))
    result = CommandResult(command="where", tier=tier)
    result.data = {"images": images_doc, "environments": envs_doc}
    failed_envs = [n for n, d in envs_doc.items() if "error" in d]
    _one_cause(images_doc, envs_doc)
    if errors or failed_envs:
        ok_parts = len(images_doc) - len(errors) + len(envs_doc) - len(failed_envs)
        result.status = Status.PARTIAL if ok_parts else Status.FAILED
    return result


def _one_cause(images_doc: dict[str, Any], envs_doc: dict[str, Any]) -> None:
    """Every read failed, and for one reason (no credentials, no network): say it once."""
    failures = [d for d in (*images_doc.values(), *envs_doc.values()) if "error" in d]
    if not failures or len(failures) < len(images_doc) + len(envs_doc):
        return
    # "listing images of api: no AWS credentials found": the cause is after the last colon
    causes = {str(d["error"]).rsplit(": ", 1)[-1] for d in failures}
    if len(causes) == 1:
        (cause,) = causes
        raise AwsError(
            f"every read failed ({len(failures)} of {len(failures)}): {cause}",
            hint=failures[0].get("hint") or "check AWS access and run again",
        )


def _environment(
    config: Config,
    clients: Clients,
    env_name: str,
    images_doc: dict[str, Any],
    digest_by_ref: dict[str, str],
    names: list[str],
) -> dict[str, Any]:
    env = config.environment(env_name)
    doc: dict[str, Any] = {
        "tier": env.tier,
        "account_id": env.account_id,
        "region": env.region,
        "cluster": env.cluster,
        "services": {},
    }
    try:
        ecs = clients.ecs(env)
        states = ecs.describe_services(env.cluster, list(env.services), allow_missing=True)
        running = ecs.running_images(env.cluster)
    except TierupError as e:
        doc["error"], doc["hint"] = e.message, e.hint
        return doc
    tds: dict[str, Any] = {}
    registry = clients.registry
    caps = capabilities(all_strategies.get(config.strategy_for(env_name)))
    immutable_refs = caps.immutable_refs
    for svc_name, svc in env.services.items():
        state = states.get(svc_name)
        if state is None:
            doc["services"][svc_name] = {"error": f"service not found in cluster {env.cluster!r}"}
            continue
        try:
            td = tds.get(state.task_definition) or ecs.describe_task_definition(
                state.task_definition
            )
        except TierupError as e:
            doc["services"][svc_name] = {"error": e.message}
            continue
        tds[state.task_definition] = td
        containers: dict[str, Any] = {}
        drift_reasons: list[str] = []
        for container, image_name in svc.images().items():
            if image_name not in names:
                continue
            try:
                cname = pick_container(svc_name, container, td)
            except DeployError as e:
                drift_reasons.append(e.message)
                continue
            ref = td.image_of(cname) or ""
            reported = [t.digest for t in running.get(svc_name, []) if t.container == cname]
            known = [d for d in reported if d]
            agree = len(set(known)) <= 1 and len(known) == len(reported)
            parsed = ImageRef.parse(ref)
            resolved = parsed.digest or digest_by_ref.get(ref)
            digest = known[0] if known and agree else resolved
            tier_doc = images_doc.get(image_name, {}).get("tiers", {}).get(env.tier, {})
            tier_tag, tier_digest = tier_doc.get("tag"), tier_doc.get("digest")
            repo = config.image(image_name).repository
            if tier_tag is None:
                drift_reasons.append(f"{cname}: tier {env.tier!r} has no tag yet")
            else:
                tag_uri = registry.image_uri(repo, tier_tag)
                digest_uri = registry.image_uri(repo, tier_digest) if tier_digest else ""
                if not (
                    names_reference(ref, tag_uri)
                    or (digest_uri and names_reference(ref, digest_uri))
                    # a stack's image parameter names the digest for good (its commit tag)
                    or (immutable_refs and resolved is not None and resolved == tier_digest)
                ):
                    drift_reasons.append(f"{cname}: names {ref}, not the tier's tag {tier_tag}")
                if known and any(d != tier_digest for d in known):
                    drift_reasons.append(
                        f"{cname}: runs {sorted(set(known))[0][:19]}, the tier's tag is on "
                        f"{(tier_digest or '-')[:19]} (deploy to pick it up)"
                    )
                elif not known and resolved and resolved != tier_digest:
                    drift_reasons.append(f"{cname}: names a digest other than the tier's tag")
            containers[cname] = {
                "image": ref,
                "image_name": image_name,
                "digest": digest,
                "running_digests": sorted(set(known)),
                "tasks_agree": agree,
                "commits": [
                    t for t in _tags_of(digest, image_name, images_doc) if is_commit_sha(t)
                ],
            }
        first: dict[str, Any] = next(iter(containers.values()), {})
        primary = state.primary
        doc["services"][svc_name] = {
            "task_definition": state.task_definition,
            "image": first.get("image"),
            "digest": first.get("digest"),
            "running_digests": first.get("running_digests", []),
            "tasks_agree": all(c["tasks_agree"] for c in containers.values()),
            "containers": {
                k: {kk: vv for kk, vv in v.items() if kk != "image_name"}
                for k, v in containers.items()
            },
            "rollout": primary.rollout_state if primary else None,
            "deployments": len(state.deployments),
            "running": state.running,
            "desired": state.desired,
            "drift": bool(drift_reasons),
            "drift_reasons": drift_reasons,
        }
        if caps.release_control == SERVICE_DEPLOYMENTS:
            from tierup.pipeline.release_control import paused

            waiting = paused(clients, env_name, env, svc_name)
            if waiting is not None:
                doc["services"][svc_name]["paused"] = waiting
    return doc


def _tags_of(digest: str | None, image: str, images_doc: dict[str, Any]) -> list[str]:
    if not digest:
        return []
    out: list[str] = []
    for t in images_doc.get(image, {}).get("tiers", {}).values():
        if t.get("digest") == digest:
            out.extend(t.get("commits", []))
    return sorted(set(out))


def render(result: CommandResult) -> None:

    from rich.table import Table

    from tierup.pipeline.output import console_for

    console = console_for(None)
    images = result.data.get("images", {})
    t = Table(title="tags", title_justify="left")
    for col in ("image", "tier", "tag", "digest", "commit", "pushed"):
        t.add_column(col)
    for name, doc in images.items():
        if "error" in doc:
            t.add_row(name, "-", "-", "-", "-", f"[red]{doc['error']}[/red]")
            continue
        for tier, v in doc["tiers"].items():
            commits = v.get("commits") or []
            t.add_row(
                name,
                tier,
                v.get("tag") or "-",
                (v.get("digest") or "-")[:19],
                commits[0][:12] if commits else "-",
                (v.get("pushed_at") or "-")[:19],
            )
    console.print(t)
    e = Table(title="environments", title_justify="left")
    for col in ("environment", "tier", "service", "image", "running", "drift"):
        e.add_column(col)
    for env_name, doc in result.data.get("environments", {}).items():
        if "error" in doc:
            e.add_row(env_name, doc["tier"], "-", "-", "-", f"[red]{doc['error']}[/red]")
            continue
        for svc, s in doc["services"].items():
            if "error" in s:
                e.add_row(env_name, doc["tier"], svc, "-", "-", f"[red]{s['error']}[/red]")
                continue
            image = (s.get("image") or "-").rsplit("/", 1)[-1]
            running = ", ".join(d[:19] for d in s.get("running_digests", [])) or "-"
            if not s.get("tasks_agree", True):
                running += " [yellow](tasks disagree)[/yellow]"
            drift = (
                "[yellow]drift: " + "; ".join(s["drift_reasons"]) + "[/yellow]"
                if s.get("drift")
                else "[green]in sync[/green]"
            )
            if s.get("paused"):
                drift += f" [yellow]paused in {s['paused']['stage']}[/yellow]"
            e.add_row(env_name, doc["tier"], svc, image, running, drift)
    console.print(e)
    for env_name, doc in result.data.get("environments", {}).items():
        for svc, s in doc.get("services", {}).items():
            if isinstance(s, dict) and s.get("paused"):
                console.print(
                    f"{env_name}/{svc}: deployment paused at a PAUSE hook in stage "
                    f"{s['paused']['stage']}; continue it with `{s['paused']['continue']}` "
                    f"(or `tierup stop --env {env_name} --service {svc} --rollback`)"
                )
