"""Release control around a promotion: the tier lock, gates, the ledger, stamps, tier rollback.

Every writing command here runs as: take the tier's lock -> plan (reads only) -> check the
tier's gates -> execute (the plan's writes, then wait) -> record one ledger event -> release
the lock. A dry run takes no lock and records nothing; it still checks the gates.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tierup.pipeline import releases
from tierup.pipeline.clients import Clients
from tierup.pipeline.config import Config
from tierup.pipeline.config_tiers import Tier
from tierup.pipeline.deploy import deploy_environment
from tierup.pipeline.events import Event, EventStatus, amends
from tierup.pipeline.gates import Candidate, GateError, check_gates, tag_writes
from tierup.pipeline.ledger import Ledger, parse_time, task_definitions_in_use
from tierup.pipeline.lock import LockHeld, TierLock, held_error, holding, human, key_for, read_lock
from tierup.pipeline.plan import PromotionPlan
from tierup.pipeline.promote import (
    Progress,
    RunOptions,
    Source,
    execute,
    plan_environments,
    plan_promotion,
    tag_changes,
)
from tierup.pipeline.reconcile import reconcile
from tierup.pipeline.results import CommandResult
from tierup.stages import resolve, retag
from tierup.stages.deploy import ImageTarget
from tierup.stages.errors import InputError, TierupError
from tierup.stages.parallel import each

ROLLBACK_TIER = "rollback tier"
Now = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class RollbackTargetMissing(TierupError):
    """The image a rollback would go back to is gone from the registry; nothing was written."""


@dataclass(frozen=True)
class Guard:
    """What a writing command runs under, from its flags."""

    force: bool = False
    reason: str | None = None
    message: str | None = None
    lock_timeout: float = 0

    def check(self) -> None:
        if self.force and not (self.reason or "").strip():
            raise InputError(
                "--force needs --reason TEXT",
                hint="say why the gates are passed; the ledger keeps it",
            )


class Annotating:
    """A Recorder that adds the run's message and reason (and image fixes) to the event."""

    def __init__(
        self,
        ledger: Ledger,
        guard: Guard,
        images: Mapping[str, Mapping[str, Any]] | None = None,
        undid: tuple[str, ...] = (),
    ) -> None:
        self.ledger = ledger
        self.guard = guard
        self.images = dict(images or {})
        self.undid = undid
        self.last: Event | None = None

    def record(self, event: Event, /) -> Event:
        if amends(event) is not None:
            # what ran after the run's event (notify): the run's event stays the last
            return self.ledger.record(event)
        out = dataclasses.replace(
            event,
            message=self.guard.message or event.message,
            reason=self.guard.reason or event.reason,
            undid=tuple(sorted({*event.undid, *self.undid})),
            images=tuple(
                dataclasses.replace(i, **self.images.get(i.image, {})) for i in event.images
            ),
        )
        self.last = self.ledger.record(out)
        return self.last


def tier_lock(
    config: Config, clients: Clients, ledger: Ledger, tier: str, *, command: str, dry_run: bool
) -> TierLock | None:
    if dry_run:
        return None
    return TierLock(
        ledger,
        tier,
        command=command,
        ttl=config.lock.ttl,
        sleep=clients.sleep,
        clock=clients.clock,
        interval=min(max(clients.poll_interval, 0.1), 2.0),
    )


def protect_revisions(options: RunOptions, ledger: Ledger) -> RunOptions:
    """Options whose retention keeps the task definitions the ledger still names.

    Read under the tier's lock, so that what the lock's previous holder recorded counts too.
    """
    return dataclasses.replace(
        options, protected=options.protected | task_definitions_in_use(ledger)
    )


def reconcile_first(
    config: Config, clients: Clients, ledger: Ledger, tier: str, *, dry_run: bool
) -> list[Event]:
    """Under the tier's lock, before planning: close the open events a dead run left."""
    return [] if dry_run else reconcile(config, clients, ledger, tier)


def finish(
    result: CommandResult,
    recorder: Annotating,
    ledger: Ledger,
    reconciled: list[Event] | None = None,
) -> CommandResult:
    for e in reconciled or []:
        result.notes.append(
            f"reconciled {e.closes} (`{e.invocation or e.command}`, which stopped before "
            f"recording its end): recorded what it left as {e.id}"
        )
    if reconciled:
        result.data["reconciled"] = [e.closes for e in reconciled]
    if recorder.last is not None:
        result.data["event"] = recorder.last.id
        result.data["ledger"] = ledger.where
    return result


# -- promote and stamp -------------------------------------------------------------


def _gate_source(config: Config, tier: Tier, source: Source) -> Tier | None:
    if source.kind == "tier" and source.value:
        return config.tier(source.value)
    return config.source_tier(tier.name)


def _commit_fixes(
    config: Config, clients: Clients, plan: PromotionPlan
) -> dict[str, dict[str, Any]]:
    """The commit of each image resolved through a tier tag, from the digest's commit tags."""
    unknown = [r for r in plan.resolved if r.commit is None]
    if not unknown:
        return {}
    found = each(
        lambda r: _commits(
            clients,
            plan.targets[r.image].repository,
            r.manifest.digest,
            config.image(r.image).tag_prefix,
        ),
        unknown,
    )
    return {r.image: {"commit": c[0]} for r, c in zip(unknown, found, strict=True) if c}


def run_promotion(
    config: Config,
    clients: Clients,
    ledger: Ledger,
    *,
    tier: str,
    source: Source = Source(),
    images: list[str] | None = None,
    deploy: bool = True,
    options: RunOptions | None = None,
    guard: Guard = Guard(),
    now: Now = _utcnow,
    progress: Progress | None = None,
    command: str = "promote",
    environ: Mapping[str, str] | None = None,
) -> CommandResult:
    """Promote (or stamp) under the tier's lock and gates; record the event in the ledger."""
    guard.check()
    opts = options or RunOptions()
    t = config.tier(tier)
    lock = tier_lock(config, clients, ledger, t.name, command=command, dry_run=opts.dry_run)
    with holding(lock, guard.lock_timeout, progress):
        reconciled = reconcile_first(config, clients, ledger, t.name, dry_run=opts.dry_run)
        opts = protect_revisions(opts, ledger)
        when = now()
        plan = plan_promotion(
            config,
            clients,
            tier_name=t.name,
            source=source,
            images=images,
            deploy=deploy,
            now=when,
            command=command,
            protected=opts.protected,
            skip_unreachable=opts.skip_unreachable,
        )
        gates = check_gates(
            config,
            clients,
            ledger,
            tier=t,
            source=_gate_source(config, t, source),
            candidates=[Candidate(r.image, r.manifest.digest) for r in plan.retags],
            now=when,
            environ=os.environ if environ is None else environ,
        )
        failed = [g for g in gates if not g.passed]
        if failed and not guard.force:
            raise GateError(failed)
        fixes = {} if opts.dry_run else _commit_fixes(config, clients, plan)
        recorder = Annotating(ledger, guard, images=fixes)
        result = execute(config, clients, plan, options=opts, recorder=recorder, progress=progress)
    for outcome in result.images:
        if outcome.commit is None and outcome.image in fixes:
            outcome.commit = fixes[outcome.image]["commit"]
    if gates:
        result.data["gates"] = [g.to_json() for g in gates]
    if failed:
        names = ", ".join(g.gate for g in failed)
        result.notes.append(f"gates passed with --force ({names}): {guard.reason}")
    return finish(result, recorder, ledger, reconciled)


def stamp(
    config: Config,
    clients: Clients,
    ledger: Ledger,
    *,
    tier: str,
    from_tier: str | None = None,
    source: Source | None = None,
    images: list[str] | None = None,
    deploy: bool = True,
    options: RunOptions | None = None,
    guard: Guard = Guard(),
    now: Now = _utcnow,
    progress: Progress | None = None,
    environ: Mapping[str, str] | None = None,
) -> CommandResult:
    """Give the source tier's digest the tier's immutable, timestamped tag and deploy it."""
    t = config.tier(tier)
    if not t.immutable:
        raise InputError(
            f"tier {t.name!r} has the mutable tag {t.tag!r}: only a tier whose tag has a "
            "placeholder (prod-{timestamp}) is stamped",
            hint=f"tierup promote --tier {t.name}",
        )
    if source is None:
        source = Source(kind="tier", value=from_tier) if from_tier else Source()
    return run_promotion(
        config,
        clients,
        ledger,
        tier=tier,
        source=source,
        images=images,
        deploy=deploy,
        options=options,
        guard=guard,
        now=now,
        progress=progress,
        command="stamp",
        environ=environ,
    )


def run_deploy(
    config: Config,
    clients: Clients,
    ledger: Ledger,
    *,
    env: str,
    options: RunOptions | None = None,
    guard: Guard = Guard(),
    progress: Progress | None = None,
) -> CommandResult:
    """`tierup deploy --env E` under the lock of E's tier, recorded."""
    opts = options or RunOptions()
    tier = config.environment(env).tier
    lock = tier_lock(config, clients, ledger, tier, command="deploy", dry_run=opts.dry_run)
    recorder = Annotating(ledger, guard)
    with holding(lock, guard.lock_timeout, progress):
        reconciled = reconcile_first(config, clients, ledger, tier, dry_run=opts.dry_run)
        result = deploy_environment(
            config,
            clients,
            env=env,
            options=protect_revisions(opts, ledger),
            recorder=recorder,
            progress=progress,
            events=releases.tier_events(ledger, tier),
        )
    return finish(result, recorder, ledger, reconciled)


# -- tier rollback -----------------------------------------------------------------


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
            chosen = TierState(want, tag, None, "", _utcnow())
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
                iter(_commits(clients, c.repository, digest, config.image(c.image).tag_prefix)),
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


def _commits(clients: Clients, repository: str, digest: str, prefix: str = "") -> list[str]:
    for info in clients.registry.list_images(repository):
        if info.digest == digest:
            return resolve.commits_on(info, prefix)
    return []


# -- unlock and history ------------------------------------------------------------


def unlock(
    config: Config,
    ledger: Ledger,
    *,
    tier: str,
    now: Now = _utcnow,
) -> CommandResult:
    """Break a tier's lock once it is older than ``lock.ttl``; the ledger records it."""
    t = config.tier(tier)
    result = CommandResult(command="unlock", tier=t.name)
    info = read_lock(ledger, t.name)
    when = now()
    if info is None:
        result.notes.append(f"tier {t.name!r} is not locked")
        result.data["lock"] = None
        return result
    ttl = config.lock.ttl
    if info.age(when).total_seconds() < ttl:
        err = held_error(info, tier=t.name, now=when, ttl=ttl)
        raise LockHeld(
            err.message
            + f"; it can be broken once older than lock.ttl ({human(timedelta(seconds=ttl))})",
            hint="wait for it to finish, or raise --lock-timeout on the waiting run",
        )
    ledger.store.delete(key_for(t.name))
    event = ledger.record(
        Event(
            command="unlock",
            tier=t.name,
            status=EventStatus.OK,
            invocation=f"unlock --tier {t.name}",
            message=f"broke the lock held by {info.describe(when)}",
        )
    )
    result.data["lock"] = info.to_json()
    result.data["event"] = event.id
    result.notes.append(f"broke the lock on {t.name!r} held by {info.describe(when)}")
    return result


def history(
    ledger: Ledger,
    *,
    tier: str | None = None,
    image: str | None = None,
    env: str | None = None,
    limit: int | None = 20,
) -> CommandResult:
    """Ledger events, newest first."""
    events = ledger.events(tier=tier, image=image, env=env, limit=limit)
    result = CommandResult(command="history", tier=tier)
    result.data["ledger"] = ledger.where
    result.data["events"] = events
    return result


def render_history(result: CommandResult) -> None:
    """One block per event: what, who, the images' digests, each service before and after."""
    import sys

    from rich.console import Console

    console = Console(file=sys.stdout, highlight=False, soft_wrap=True)
    events = result.data.get("events") or []
    console.print(f"[bold]tierup history[/bold] ({result.data.get('ledger')})", markup=True)
    if not events:
        console.print("no events")
    for e in events:
        actor = e.get("actor") or {}
        who = str(actor.get("name") or "?") + (f" ({actor['arn']})" if actor.get("arn") else "")
        tier = f" --tier {e['tier']}" if e.get("tier") else ""
        command = e.get("invocation") or f"{e.get('command')}{tier}"
        console.print(
            f"{e.get('time')}  {command}  {e.get('status')}  by {who}  [{e.get('id')}]",
            markup=False,
        )
        if e.get("status") == EventStatus.OPEN:
            intent = e.get("intent") or {}
            writes = intent.get("writes") or []
            console.print(
                f"  open: {len(writes)} planned write(s) and no event closes it (the run "
                "stopped before recording its end); the tier's next writing command "
                "reconciles it",
                markup=False,
            )
            for step in writes[:10]:
                console.print(f"    {_planned(step)}", markup=False)
        for i in e.get("images") or []:
            commit = f" commit {str(i['commit'])[:12]}" if i.get("commit") else ""
            console.print(
                f"  {i.get('image')} {i.get('tag') or '-'}: {_short(i.get('from_digest'))} -> "
                f"{_short(i.get('to_digest'))}{commit} ({i.get('status')})",
                markup=False,
            )
        for env, doc in (e.get("environments") or {}).items():
            for svc, s in (doc.get("services") or {}).items():
                console.print(f"  {env}/{svc}: {_service_line(s)}", markup=False)
            if not doc.get("services"):
                console.print(f"  {env}: {doc.get('status')}", markup=False)
        for step in e.get("steps") or []:  # run after the event was written (notify)
            if isinstance(step, Mapping):
                error = f": {step['error']}" if step.get("error") else ""
                console.print(
                    f"  step {step.get('as')} ({step.get('uses')}): {step.get('status')}{error}",
                    markup=False,
                )
        for key in ("message", "reason", "ci_url"):
            if e.get(key):
                console.print(f"  {key}: {e[key]}", markup=False)
        plan = e.get("saved_plan")
        if isinstance(plan, Mapping) and plan.get("id"):
            console.print(
                f"  from saved plan {plan['id']} ({plan.get('file')}, made "
                f"{plan.get('created_at')} by {plan.get('created_by') or '?'})",
                markup=False,
            )


def _planned(step: Mapping[str, Any]) -> str:
    if step.get("write") == "registry:PutImage":
        return f"tag {step.get('repository')}:{step.get('tag')} -> {_short(step.get('digest'))}"
    if step.get("summary"):
        return str(step["summary"])
    return f"{step.get('environment')}/{step.get('service')}: {step.get('action')}"


def _service_line(s: Mapping[str, Any]) -> str:
    """``td -> td, digest -> digest (status)``; one side alone when nothing moved."""
    td_before, td_after = s.get("task_definition_before"), s.get("task_definition_after")
    d_before, d_after = s.get("digest_before"), s.get("digest_after")
    before = s.get("images_before")
    after = s.get("images_after")
    moved = (td_before or td_after) != td_after or (d_before or d_after) != d_after
    if isinstance(before, dict) and isinstance(after, dict) and before and before != after:
        moved = True
    status = f"({s.get('status')})"
    if not moved:
        return f"{_family_rev(td_after)}, {_short(d_after)} {status}"
    return (
        f"{_family_rev(td_before)} -> {_family_rev(td_after)}, {_short(d_before)} -> "
        f"{_short(d_after)} {status}"
    )


def _short(digest: Any) -> str:
    if not digest:
        return "-"
    text = str(digest)
    return text[:19] if text.startswith("sha256:") else text


def _family_rev(arn: Any) -> str:
    if not arn:
        return "-"
    return str(arn).rsplit("/", 1)[-1]
