"""GitHub Actions' workflow commands and step outputs."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path

from tierup.pipeline.ci_facts import Annotation, Facts


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation_line(a: Annotation) -> str:
    return f"::{a.level} title={_escape_property(a.title)}::{_escape_data(a.message)}"


def _output_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)


def github_outputs(facts: Facts) -> dict[str, str]:
    out = {
        "status": facts.status,
        "exit-code": str(facts.exit_code),
        "event-id": facts.event or "",
        "images": json.dumps(
            {
                name: {"tag": v.tag, "digest": v.digest, "commit": v.commit}
                for name, v in facts.images.items()
            },
            separators=(",", ":"),
        ),
    }
    for name, v in facts.images.items():
        key = _output_name(name)
        out[f"tag-{key}"] = v.tag or ""
        out[f"digest-{key}"] = v.digest or ""
        out[f"commit-{key}"] = v.commit or ""
    return out


def append_outputs(path: Path, outputs: Mapping[str, str]) -> None:
    with path.open("a", encoding="utf-8") as f:
        for key, value in outputs.items():
            if "\n" in value:
                delimiter = f"tierup_{os.urandom(8).hex()}"
                f.write(f"{key}<<{delimiter}\n{value}\n{delimiter}\n")
            else:
                f.write(f"{key}={value}\n")
