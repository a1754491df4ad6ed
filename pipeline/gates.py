"""Promotion gates a tier sets (``gates: {soak, require_source_healthy, allowed_branches}``).

Checked after planning and before any write. Each failure names the gate and what would
satisfy it; ``--force --reason TEXT`` lets a promotion through and the ledger keeps the reason.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from tierup.pipeline.clients import Clients
from tierup.pipeline.config import Config
from tierup.pipeline.config_tiers import Tier
from tierup.pipeline.ledger.base import Ledger
from tierup.pipeline.ledger.times import iso_seconds, parse_time
from tierup.pipeline.lock import human
from tierup.stages.deploy import pick_container
from tierup.stages.errors import TierupError

TAG_COMMANDS = ("promote", "stamp", "rollback tier")
TAG_WRITTEN = frozenset({"created", "moved", "unchanged"})


@dataclass(frozen=True)
class GateResult:
    gate: str
    passed: bool
    detail: str
    satisfy: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


class GateError(TierupError):
    """A gate of the tier is not met; nothing was written."""

    def __init__(self, failed: list[GateResult]) -> None:
        text = "; ".join(f"gate {g.gate}: {g.detail}" for g in failed)
        hints = "; ".join(g.satisfy for g in failed if g.satisfy)
        super().__init__(
            f"promotion refused: {text}",
            hint=f"{hints}; or pass --force --reason TEXT (the ledger keeps the reason)",
        )
        self.failed = failed


@dataclass(frozen=True)
class Candidate:
    """One image a promotion would write, and its digest."""

    image: str
    digest: str


def tag_writes(
    events: Iterable[dict[str, Any]], image: str
) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """The events (newest first) that wrote ``image``'s tier tag, each with the image's entry."""
    for event in events:
        if event.get("command") not in TAG_COMMANDS:
            continue
        entry = next((i for i in event.get("images") or [] if i.get("image") == image), None)
        if entry is not None and entry.get("status") in TAG_WRITTEN:
            yield event, entry


def entered_at(events: list[dict[str, Any]], image: str, digest: str) -> datetime | None:
    """When ``digest`` last became what a tier's tag points at, from that tier's ``events``
    (None: not there now)."""
    entered: datetime | None = None
    for event, entry in tag_writes(events, image):
        if entry.get("to_digest") != digest:
            break
        entered = parse_time(str(event["time"]))
    return entered


def soak_gate(
    ledger: Ledger, *, soak: int, source: Tier | None, candidates: list[Candidate], now: datetime
) -> GateResult:
    if source is None:
        return GateResult("soak", True, "no source tier to soak in")
    waiting: list[str] = []
    soaking: set[str] = set()
    ready_at: datetime | None = None
    need = timedelta(seconds=soak)
    events = ledger.events(tier=source.name)  # read once for every candidate
    for c in candidates:
        since = entered_at(events, c.image, c.digest)
        if since is None:
            waiting.append(
                f"{c.image} {c.digest[:19]} has no record in tier {source.name!r} in the ledger"
            )
            continue
        age = now - since
        if age < need:
            waiting.append(
                f"{c.image} {c.digest[:19]} has been in {source.name!r} for {human(age)} "
                f"(since {iso_seconds(since)}), soak needs {human(need)}"
            )
            soaking.add(c.image)
            ready_at = max(ready_at or since + need, since + need)
    if not waiting:
        return GateResult("soak", True, f"every image has been in {source.name!r} {human(need)}")
    unrecorded = len(waiting) > sum(1 for c in candidates if c.image in soaking)
    satisfy = (
        f"wait until {iso_seconds(ready_at)}"
        if ready_at is not None and not unrecorded
        else f"promote to {source.name!r} with tierup first and let it soak {human(need)}"
    )
    return GateResult("soak", False, "; ".join(waiting), satisfy)


def healthy_gate(
    config: Config, clients: Clients, *, source: Tier | None, candidates: list[Candidate]
) -> GateResult:
    """Every environment of the source tier runs the candidate digests, stable."""
    if source is None:
        return GateResult("require_source_healthy", True, "no source tier")
    wanted = {c.image: c.digest for c in candidates}
    problems: list[str] = []
    checked = 0
    for env_name, env in config.environments_of(source.name).items():
        services = {
            s: cfg for s, cfg in env.services.items() if set(cfg.images().values()) & set(wanted)
        }
        if not services:
            continue
        try:
            ecs = clients.ecs(env)
            states = ecs.describe_services(env.cluster, list(services), allow_missing=True)
            running = ecs.running_images(env.cluster)
        except TierupError as e:
            problems.append(f"{env_name}: cannot be read ({e.message})")
            continue
        for svc_name, svc in services.items():
            checked += 1
            where = f"{env_name}/{svc_name}"
            state = states.get(svc_name)
            if state is None:
                problems.append(f"{where}: service not found")
                continue
            primary = state.primary
            if primary is None or len(state.deployments) != 1:
                problems.append(f"{where}: a rollout is under way ({len(state.deployments)})")
                continue
            if primary.rollout_state not in (None, "COMPLETED"):
                problems.append(f"{where}: its deployment is {primary.rollout_state}")
                continue
            if primary.running != primary.desired:
                problems.append(f"{where}: {primary.running}/{primary.desired} tasks running")
                continue
            try:
                td = ecs.describe_task_definition(state.task_definition)
            except TierupError as e:
                problems.append(f"{where}: {e.message}")
                continue
            for container, image in svc.images().items():
                if image not in wanted:
                    continue
                try:
                    name = pick_container(svc_name, container, td)
                except TierupError as e:
                    problems.append(f"{where}: {e.message}")
                    continue
                digests = {t.digest for t in running.get(svc_name, []) if t.container == name}
                if state.desired and digests != {wanted[image]}:
                    shown = ", ".join(sorted(d[:19] for d in digests if d)) or "nothing known"
                    problems.append(f"{where}: runs {shown}, not {wanted[image][:19]}")
    if problems:
        return GateResult(
            "require_source_healthy",
            False,
            "; ".join(problems),
            f"deploy {source.name!r} and let it finish (tierup deploy --env ENV, "
            "tierup where shows what runs)",
        )
    return GateResult(
        "require_source_healthy",
        True,
        f"{checked} service(s) of {source.name!r} run the digests, stable",
    )


def current_branch(environ: Mapping[str, str], clients: Clients) -> str | None:
    """The branch from the CI environment, else git's checked-out branch (None: detached)."""
    ref = environ.get("GITHUB_REF", "")
    if ref.startswith("refs/heads/"):
        return ref[len("refs/heads/") :]
    for var in ("GITHUB_HEAD_REF", "CI_COMMIT_BRANCH", "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME"):
        if environ.get(var):
            return environ[var]
    try:
        repo = clients.git_repo()
        if repo.head.is_detached:
            return None
        return str(repo.active_branch.name)
    except (TierupError, TypeError, ValueError):
        return None


def branch_gate(allowed: list[str], branch: str | None) -> GateResult:
    shown = ", ".join(allowed)
    if branch is None:
        return GateResult(
            "allowed_branches",
            False,
            f"the branch cannot be told (detached HEAD, no CI branch variable); allowed: {shown}",
            f"run from a checkout of {shown}",
        )
    if any(fnmatch.fnmatchcase(branch, pattern) for pattern in allowed):
        return GateResult("allowed_branches", True, f"branch {branch!r} is allowed")
    return GateResult(
        "allowed_branches",
        False,
        f"branch {branch!r} is not in allowed_branches ({shown})",
        f"promote from {shown}",
    )


def check_gates(
    config: Config,
    clients: Clients,
    ledger: Ledger,
    *,
    tier: Tier,
    source: Tier | None,
    candidates: list[Candidate],
    now: datetime,
    environ: Mapping[str, str],
) -> list[GateResult]:
    """Every gate the tier sets, passed or not, in a fixed order."""
    gates = tier.gates
    if gates is None:
        return []
    out: list[GateResult] = []
    if gates.soak:
        out.append(
            soak_gate(ledger, soak=gates.soak, source=source, candidates=candidates, now=now)
        )
    if gates.require_source_healthy:
        out.append(healthy_gate(config, clients, source=source, candidates=candidates))
    if gates.allowed_branches is not None:
        out.append(branch_gate(gates.allowed_branches, current_branch(environ, clients)))
    return out
