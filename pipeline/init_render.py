"""A `tierup init` draft as a commented envs.yaml."""

from __future__ import annotations

import re
from datetime import datetime

from tierup.pipeline.init_draft import Draft


def _q(value: str) -> str:
    """A YAML scalar: quoted when YAML would read it as something else than this string."""
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.:/@-]*", value) and value.lower() not in (
        "yes",
        "no",
        "on",
        "off",
        "true",
        "false",
        "null",
    ):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render(d: Draft, *, when: datetime, source: str) -> str:
    account, region = d.registry
    lines = [
        f"# envs.yaml written by `tierup init` on {when:%Y-%m-%d} from {source}.",
        "# Guesses are marked `guessed`: check them, then run `tierup validate --remote`.",
        "# The format: README.md, section Configuration (`tierup schema` prints its JSON Schema).",
        "version: 1",
        "",
        "# the ECR registry the services' images come from",
        f'registry: {{account_id: "{account}", region: {region}}}',
        "",
        "# one image per repository the task definitions name (all but repository are build",
        "# settings: context, dockerfile, target, build_args, platform, labels)",
        "images:",
    ]
    for name, repo in d.images.items():
        users = d.image_users.get(name, [])
        shown = ", ".join(users[:3]) + (f" and {len(users) - 3} more" if len(users) > 3 else "")
        lines.append(f"  {_q(name)}: {{repository: {_q(repo)}}}  # run by {shown}")
    lines += ["", "# the path to production, in order (guessed)", "tiers:"]
    previous = None
    for tier in d.tiers:
        tag = f"{tier.name}-{{timestamp}}" if tier.immutable else tier.name
        source_part = f", from: {_q(previous)}" if previous else ""
        kind = "stamped: each release gets a new tag" if tier.immutable else "a tag that moves"
        lines.append(f'  - {{name: {_q(tier.name)}, tag: "{tag}"{source_part}}}  # {kind}')
        previous = tier.name
    lines += ["", "environments:"]
    for env_name, cluster, guess, services in d.environments:
        lines += [
            f"  {_q(env_name)}:",
            f"    tier: {_q(guess.name)}  # {guess.why}",
            f'    account_id: "{cluster.account.account_id}"',
        ]
        if cluster.account.role_arn:
            lines.append(f"    role_arn: {cluster.account.role_arn}")
        lines += [
            f"    region: {cluster.account.region}",
            f"    cluster: {_q(cluster.name)}",
            "    services:",
        ]
        for service_name, containers in services.items():
            if len(containers) == 1:
                (image,) = containers.values()
                lines.append(f"      {_q(service_name)}: {{image: {_q(image)}}}")
            else:
                body = ", ".join(f"{_q(c)}: {_q(i)}" for c, i in containers.items())
                lines.append(f"      {_q(service_name)}: {{containers: {{{body}}}}}")
    if d.skipped:
        lines += ["", "# not included:"] + [f"#   {s}" for s in d.skipped]
    return "\n".join(lines) + "\n"
