"""A tier's tag as envs.yaml writes it: a constant (``dev``) or a stamp template
(``prod-{timestamp}``, ``rc-{short_commit}``) with its placeholders, rendered per promotion."""

from __future__ import annotations

import re
import string

TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
PLACEHOLDERS = ("timestamp", "commit", "short_commit")
TIMESTAMP_FORMAT = "%Y%m%dT%H%M%SZ"
# what a template renders to in checks: the longest value each placeholder takes
SAMPLE = {"timestamp": "20261126T103000Z", "commit": "0" * 40, "short_commit": "0" * 7}


def template_fields(template: str) -> list[str]:
    try:
        return [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as e:
        raise ValueError(f"tag template {template!r} is malformed: {e}") from e


def render_tag(template: str, *, timestamp: str = "", commit: str = "") -> str:
    return template.format(timestamp=timestamp, commit=commit, short_commit=commit[:7])


def sample(template: str) -> str:
    """What ``template`` renders to with sample values (a constant tag is itself)."""
    return template.format(**SAMPLE)


def check_template(v: str) -> str:
    """``v`` as a tier's tag: known placeholders only, written plainly, rendering to a legal
    image tag; a ValueError says what is wrong."""
    fields = template_fields(v)
    for _, name, spec, conversion in string.Formatter().parse(v):
        if name is not None and (spec or conversion):
            written = "{" + name + (f"!{conversion}" if conversion else "")
            written += (f":{spec}" if spec else "") + "}"
            raise ValueError(
                f"tag {v!r} writes the placeholder {written}: placeholders take no conversion "
                f"or format (only {{timestamp}}, {{commit}}, {{short_commit}})"
            )
    unknown = [f for f in fields if f not in PLACEHOLDERS]
    if unknown:
        raise ValueError(
            f"tag {v!r} uses unknown placeholder(s) {unknown}: "
            f"only {{timestamp}}, {{commit}}, {{short_commit}}"
        )
    if not TAG_RE.match(sample(v)):
        raise ValueError(
            f"tag {v!r} is not a legal image tag: it must match "
            "[A-Za-z0-9_][A-Za-z0-9_.-]{0,127} once rendered (no '/' or ':')"
        )
    return v
