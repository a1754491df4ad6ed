"""Every argument checked before the first AWS call: its shape, and names against envs.yaml.

The CLI calls ``check`` with the command's parsed parameters (by their Python names) before
it makes a client or opens the ledger, so a malformed digest or an unknown service is exit 2
with nothing read or written. The commands' own checks stay where they are: this is the
earlier, cheaper net, not the only one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from tierup.pipeline.config import Config
from tierup.pipeline.config_tiers import Tier
from tierup.stages.errors import InputError
from tierup.stages.resolve import tag_pattern
from tierup.stages.step import parse_duration
from tierup.stages.types import is_commit_sha

DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
# --to of `rollback service`: N, family:N, or a task definition ARN
REVISION_RE = re.compile(
    r"^(\d+|[A-Za-z0-9_-]{1,255}:\d+|"
    r"arn:aws[a-zA-Z-]*:ecs:[a-z0-9-]+:\d{12}:task-definition/[A-Za-z0-9_-]{1,255}:\d+)$"
)
LATEST = "latest"
# the parameters that name something of envs.yaml: only then is the file read here
_NAMES = ("tier", "from_tier", "env", "image", "service")


def _digest(flag: str, value: str) -> None:
    if not DIGEST_RE.match(value):
        raise InputError(
            f"{flag} {value!r} is not an image digest",
            hint="give the whole digest: sha256: and 64 hex digits (tierup where shows them)",
        )


def _commit(flag: str, value: str) -> None:
    if not is_commit_sha(value):
        raise InputError(
            f"{flag} {value!r} is not a full 40-character commit SHA",
            hint="images are tagged with the full SHA: git rev-parse <commit>",
        )


def _duration(flag: str, value: str) -> None:
    try:
        parse_duration(value)
    except ValueError as e:
        raise InputError(f"{flag}: {e}", hint="e.g. 90, 30s, 15m, 2h") from e


def _name(flag: str, value: str, *, latest: bool) -> None:
    if latest and value == LATEST:
        return
    if not NAME_RE.match(value):
        raise InputError(
            f"{flag} {value!r} is not a valid name",
            hint="use letters, digits, '_', '.' and '-' (at most 128)",
        )


def _shapes(command: str, p: Mapping[str, Any]) -> None:
    if p.get("digest") is not None:
        _digest("--digest", p["digest"])
    if p.get("commit") is not None:
        _commit("--commit", p["commit"])
    sources = [
        f
        for f, k in (("--from", "from_tier"), ("--commit", "commit"), ("--digest", "digest"))
        if p.get(k)
    ]
    if len(sources) > 1:
        raise InputError(f"{' and '.join(sources)} are exclusive", hint="pass at most one source")
    to = p.get("to")
    if to is not None:
        if command == "rollback tier":
            if not DIGEST_RE.match(to) and not NAME_RE.match(to):
                raise InputError(
                    f"--to {to!r} is neither an image digest nor a stamp tag",
                    hint="give a digest (sha256: and 64 hex digits) or one of the tier's stamps "
                    "(tierup where shows them)",
                )
        elif not REVISION_RE.match(to):
            raise InputError(
                f"--to {to!r} is not a task definition revision",
                hint="give N, family:N or a task definition ARN",
            )
    if command == "rollback tier" and p.get("to") is not None and p.get("steps") is not None:
        raise InputError("--to and --steps are exclusive", hint="pass one of them")
    if p.get("steps") is not None and p["steps"] < 1:
        raise InputError(f"--steps {p['steps']} must be 1 or more", hint="e.g. --steps 1")
    if p.get("limit") is not None and p["limit"] < 0:
        raise InputError(f"--limit {p['limit']} cannot be negative", hint="e.g. --limit 20")
    for flag, key in (("--timeout", "timeout"), ("--lock-timeout", "lock_timeout")):
        if p.get(key) is not None:
            _duration(flag, p[key])
    if p.get("name") is not None:
        if p["name"] == LATEST:
            raise InputError(f"{LATEST!r} cannot name a snapshot", hint="it means the newest one")
        _name("--name", p["name"], latest=False)
    if p.get("snapshot_name") is not None:
        _name("--snapshot", p["snapshot_name"], latest=True)
    # --force passes a release's gates (promote, stamp); `init --force` only overwrites a file
    if command in ("promote", "stamp") and p.get("force") and not (p.get("reason") or "").strip():
        raise InputError(
            "--force needs --reason TEXT", hint="say why the gates are passed (the ledger keeps it)"
        )
    port = p.get("port")
    if port is not None and not 0 <= port <= 65535:
        raise InputError(f"--port {port} is not a TCP port", hint="0 to 65535 (0: any free port)")


def _unknown(flag: str, what: str, value: str, known: list[str]) -> InputError:
    return InputError(
        f"unknown {what} {value!r} ({flag})",
        hint=f"{what}s in envs.yaml: {', '.join(known) or 'none'}",
    )


def _names(command: str, p: Mapping[str, Any], config: Config) -> None:
    tiers = config.tier_names()
    for flag, key in (("--tier", "tier"), ("--from", "from_tier")):
        value = p.get(key)
        if value is not None and value not in tiers:
            raise _unknown(flag, "tier", value, tiers)
    tier = p.get("tier")
    if tier is not None and p.get("from_tier") == tier:
        raise InputError(
            f"tier {tier!r} cannot be promoted from itself (--from {tier})",
            hint="name the tier to take the digest of, or leave --from out",
        )
    if command == "stamp" and tier is not None and not config.tier(tier).immutable:
        t = config.tier(tier)
        raise InputError(
            f"tier {t.name!r} has the mutable tag {t.tag!r}: only a tier whose tag has a "
            "placeholder (prod-{timestamp}) is stamped",
            hint=f"tierup promote --tier {t.name}",
        )
    to = p.get("to")
    if command == "rollback tier" and tier is not None and to and not DIGEST_RE.match(to):
        _stamp_of(config, config.tier(tier), to)
    env = p.get("env")
    if env is not None and env not in config.environments:
        raise _unknown("--env", "environment", env, list(config.environments))
    images = p.get("image")
    for image in [images] if isinstance(images, str) else images or []:
        if image not in config.images:
            raise _unknown("--image", "image", image, list(config.images))
    service = p.get("service")
    if service is not None and env is not None:
        e = config.environments[env]
        if service not in e.services:
            raise InputError(
                f"service {service!r} not found in cluster {e.cluster!r} ({env}): envs.yaml "
                f"names no such service there",
                hint=f"services of {env}: {', '.join(e.services)}; `tierup rollback cluster "
                f"--env {env} --all-services` reaches the cluster's other services",
            )


def _stamp_of(config: Config, tier: Tier, tag: str) -> None:
    """``tag`` must be one of ``tier``'s stamps (of any image: each has its own tag_prefix)."""
    patterns = [tag_pattern(config.tier_tag(image, tier)) for image in config.images]
    if not tier.immutable or not any(p.match(tag) for p in patterns):
        stamps = tier.tag if tier.immutable else "none: its tag is mutable"
        raise InputError(
            f"--to {tag!r} is not a stamp of tier {tier.name!r} ({stamps})",
            hint="give a digest or one of the tier's stamps (tierup history --tier "
            f"{tier.name} shows them)",
        )


def check(command: str, params: Mapping[str, Any], config: Callable[[], Config]) -> None:
    """Raise InputError (exit 2) for the first malformed or unknown argument of ``command``.

    ``command`` is the command's path without the program (``promote``, ``rollback tier``);
    ``config`` loads envs.yaml, only called when an argument names something in it.
    """
    _shapes(command, params)
    if any(params.get(k) for k in _NAMES):
        _names(command, params, config())
