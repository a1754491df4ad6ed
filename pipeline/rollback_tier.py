"""Rolling a tier back: the tier's releases from the ledger (its newest stamp or tag position
whose rollout was neither failed nor reverted), the one to go back to, and a promotion of
that digest planned and run under the guard.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tierup.pipeline import releases
from tierup.pipeline.clients import Clients
from tierup.pipeline.config import Config
from tierup.pipeline.config_tiers import Tier
from tierup.pipeline.gates import tag_writes
from tierup.pipeline.guard import (
    Annotating,
    Guard,
    finish,
    protect_revisions,
    reconcile_first,
    tier_lock,
    utcnow,
)
from tierup.pipeline.ledger.base import Ledger
from tierup.pipeline.ledger.times import parse_time
from tierup.pipeline.lock import holding
from tierup.pipeline.plan import PromotionPlan
from tierup.pipeline.plan_environments import plan_environments
from tierup.pipeline.plan_promotion import commits_of_digest, tag_changes
from tierup.pipeline.promote import Progress, RunOptions, execute
from tierup.pipeline.results import CommandResult
from tierup.stages import resolve, retag
from tierup.stages.deploy import ImageTarget
from tierup.stages.errors import InputError, TierupError

ROLLBACK_TIER = "rollback tier"


class RollbackTargetMissing(TierupError):
    """The image a rollback would go back to is gone from the registry; nothing was written."""


@dataclass(frozen=True)
class TierState:
    """One digest a tier's tag pointed at, as the ledger recorded it."""

    digest: str
    tag: str | None
    commit: str | None
    event: str
    time: datetime


def tier_history(
    events: list[dict[str, Any]], image: str, *, immutable: bool = False
) -> list[TierState]:
    """The digests a tier had for ``image``, from that tier's ``events``: newest first, repeats
    in a row collapsed.

    On an immutable tier the tag of an earlier digest is found later (its stamp).
    """
    out: list[TierState] = []
    gone = releases.undone(events)
    for event, entry in tag_writes(events, image):
        if not entry.get("to_digest"):
            continue
        when = parse_time(str(event["time"]))
        states = []
        if releases.stood(event, entry, gone):
            # a release that failed or was reverted is no state to go back to
            states.append(
                TierState(
                    digest=str(entry["to_digest"]),
                    tag=entry.get("tag"),
                    commit=entry.get("commit"),
                    event=str(event.get("id")),
                    time=when,
                )
            )
        if entry.get("from_digest"):
            # what the tag had just before: covers the first recorded promotion, and moves
            # made outside tierup in between (a stamp's from_digest is empty: a new tag)
            states.append(
                TierState(
                    digest=str(entry["from_digest"]),
                    tag=None if immutable else entry.get("tag"),
                    commit=None,
                    event=f"{event.get('id')} (before)",
                    time=when,
                )
            )
        for state in states:
            if not (out and out[-1].digest == state.digest):
                out.append(state)
    return out


@dataclass(frozen=True)
class _Target:
    image: str
    repository: str
    state: TierState
    current: str | None
    current_event: str | None = None  # the event that made the release rolled back from


# a tier rollback that did not end ok: running it again finishes toward the same digests
UNFINISHED = frozenset({"partial", "failed", "timed_out", "interrupted"})


def _unfinished(events: list[dict[str, Any]], image: str) -> TierState | None:
    """The digest an unfinished tier rollback went back to, when it is the tier's newest
    release event: the same command again finishes it, it does not go one step further."""
    newest = next((e for e in events if e.get("command") in releases.RELEASE_COMMANDS), None)
    if newest is None or newest.get("command") != ROLLBACK_TIER:
        return None
    if newest.get("status") not in UNFINISHED:
        return None
    entry = next((i for i in newest.get("images") or [] if i.get("image") == image), None)
    if entry is None or not entry.get("to_digest"):
        return None
    return TierState(
        digest=str(entry["to_digest"]),
        tag=entry.get("tag"),
        commit=entry.get("commit"),
        event=f"{newest.get('id')} (unfinished: finishing it)",
        time=parse_time(str(newest["time"])),
    )


def _pick(
    image: str, history: list[TierState], current: str | None, *, to: str | None, steps: int
) -> TierState | None:
    if to is not None:
        return next((h for h in history if h.digest == to), None)
    earlier = list(history)
    while earlier and earlier[0].digest == current:
        earlier.pop(0)
    if len(earlier) < steps:
        return None
    return earlier[steps - 1]


def _digest_to(clients: Clients, repository: str, to: str | None) -> str | None:
    """``--to`` as a digest: a digest as given, a tag (a stamp) as the digest it names here."""
    if to is None or to.startswith("sha256:"):
        return to
    found = clients.registry.get_manifest(repository, to)
    return found.digest if found is not None else None


def _stamp_on(
    clients: Clients, tier: Tier, repository: str, digest: str, template: str | None = None
) -> str | None:
    pattern = resolve.tag_pattern(template or tier.tag)
    for info in clients.registry.list_images(repository):
        if info.digest == digest:
            stamps = sorted(t for t in info.tags if pattern.match(t))
            if stamps:
                return stamps[-1]
    return None


def _targets(
    config: Config,
    clients: Clients,
    ledger: Ledger,
    tier: Tier,
    names: list[str],
    *,
    to: str | None,
    steps: int,
    resume: bool = False,
) -> list[_Target]:
    registry = clients.registry
    out: list[_Target] = []
    missing: list[str] = []
    events = ledger.events(tier=tier.name)  # read once for every image
    for name in names:
        repo = config.image(name).repository
        template = config.tier_tag(name, tier)  # the image's own tier tag (its tag_prefix)
        registry.describe_repository(repo)
        history = tier_history(events, name, immutable=tier.immutable)
        release = releases.current_release(
            tier, name, events=events, registry=registry, repository=repo, template=template
        )
        current = release.digest if release else None
        want = _digest_to(clients, repo, to)
        if to is not None and want is None:
            continue  # this image has no such tag: it stays where it is
        chosen = _unfinished(events, name) if resume else None
        if chosen is None:
            chosen = _pick(name, history, current, to=want, steps=steps)
        if chosen is None and want is not None and registry.get_manifest(repo, want) is not None:
            # a digest the ledger never saw in this tier, but the repository has
            tag = _stamp_on(clients, tier, repo, want, template) if tier.immutable else template
            if tier.immutable and tag is None:
                raise InputError(
                    f"{repo}@{want} has no stamp of tier {tier.name!r} ({tier.tag})",
                    hint=f"stamp it: tierup stamp --tier {tier.name} (or pick one: tierup history)",
                )
            chosen = TierState(want, tag, None, "", utcnow())
        if chosen is None:
            if to is None:
                missing.append(f"{name} ({len(history)} digest(s) recorded)")
            continue
        out.append(_Target(name, repo, chosen, current, release.event if release else None))
    if not out:
        if to is not None:
            what = "digest" if to.startswith("sha256:") else "tag"
            raise InputError(
                f"{what} {to} is in none of the repositories of tier {tier.name!r}'s images",
                hint=f"pick one from tierup history --tier {tier.name}",
            )
        raise InputError(
            f"the ledger has no earlier digest of tier {tier.name!r} to go back to "
            f"{steps} step(s): {', '.join(missing)}",
            hint=f"see tierup history --tier {tier.name}; pass --to DIGEST",
        )
    return out


def rollback_tier(
    config: Config,
    clients: Clients,
    ledger: Ledger,
    *,
    tier: str,
    to: str | None = None,
    steps: int | None = None,
    images: list[str] | None = None,
    options: RunOptions | None = None,
    guard: Guard = Guard(),
    progress: Progress | None = None,
) -> CommandResult:
    """Put a tier back on the digest it had before (or ``steps`` back, or ``to``), and deploy.

    A mutable tier's tag moves back; an immutable tier redeploys the earlier stamped tag.
    Refused before any write when the target image is gone from the registry.
    """
    if to is not None and steps is not None:
        raise InputError("--to and --steps are exclusive", hint="pass one of them")
    n = 1 if steps is None else steps
    if n < 1:
        raise InputError("--steps must be 1 or more")
    opts = options or RunOptions()
    t = config.tier(tier)
    names = images or list(config.images)
    for name in names:
        config.image(name)
    registry = clients.registry
    lock = tier_lock(config, clients, ledger, t.name, command=ROLLBACK_TIER, dry_run=opts.dry_run)
    with holding(lock, guard.lock_timeout, progress):
        reconciled = reconcile_first(config, clients, ledger, t.name, dry_run=opts.dry_run)
        opts = protect_revisions(opts, ledger)
        chosen = _targets(
            config, clients, ledger, t, names, to=to, steps=n, resume=to is None and steps is None
        )
        resolved: list[resolve.Resolved] = []
        retags: list[retag.RetagPlan] = []
        targets: dict[str, ImageTarget] = {}
        fixes: dict[str, dict[str, Any]] = {}
        for c in chosen:
            digest = c.state.digest
            where = f"{c.repository}@{digest}"
            manifest = registry.get_manifest(c.repository, digest)
            if manifest is None:
                raise RollbackTargetMissing(
                    f"cannot roll tier {t.name!r} back: {where} ({c.image}"
                    + (f", tag {c.state.tag}" if c.state.tag else "")
                    + ") is no longer in the registry",
                    hint="an ECR lifecycle policy may have expired it; nothing was written. Pick "
                    f"another: tierup history --tier {t.name}, then --to DIGEST or --steps N",
                )
            tag = config.tier_tag(c.image, t)
            if t.immutable:
                tag = c.state.tag or _stamp_on(clients, t, c.repository, digest, tag) or ""
                on_tag = registry.get_manifest(c.repository, tag) if tag else None
                if on_tag is None or on_tag.digest != digest:
                    raise RollbackTargetMissing(
                        f"cannot roll tier {t.name!r} back: stamp {c.repository}:{tag or '?'} "
                        f"of {digest} is no longer in the registry",
                        hint="an ECR lifecycle policy may have expired it; nothing was written",
                    )
                # the stamp stays where it is: nothing moves in the registry
                retags.append(retag.RetagPlan(c.image, c.repository, tag, manifest, digest))
                fixes[c.image] = {"from_digest": c.current}
            else:
                retags.append(retag.plan_retag(registry, c.image, c.repository, tag, manifest))
            commit = c.state.commit or next(
                iter(
                    commits_of_digest(
                        clients, c.repository, digest, config.image(c.image).tag_prefix
                    )
                ),
                None,
            )
            resolved.append(
                resolve.Resolved(
                    image=c.image,
                    manifest=manifest,
                    source=f"ledger event {c.state.event}" if c.state.event else f"digest {digest}",
                    commit=commit,
                    tag=tag,
                )
            )
            targets[c.image] = ImageTarget.at(
                registry,
                c.image,
                c.repository,
                tag,
                digest,
                commit=commit,
                immutable_tag=t.immutable,
            )
        moved = tag_changes(retags, back=True)
        envs = plan_environments(
            config, clients, tier=t, targets=targets, moved=moved, protected=opts.protected
        )
        plan = PromotionPlan(
            command=ROLLBACK_TIER,
            tier=t,
            tag=t.tag,
            resolved=resolved,
            retags=retags,
            targets=targets,
            envs=envs,
            deploy=True,
        )
        # what this rollback reverts: the events that made the releases it goes back from
        undid = sorted(
            {c.current_event for c in chosen if c.current_event and c.current != c.state.digest}
        )
        recorder = Annotating(ledger, guard, images=fixes, undid=tuple(undid))
        result = execute(config, clients, plan, options=opts, recorder=recorder, progress=progress)
    for outcome in result.images:
        if outcome.image in fixes:
            outcome.previous_digest = fixes[outcome.image]["from_digest"]
    return finish(result, recorder, ledger, reconciled)
