"""GitLab CI's dotenv report: the run's values, merged across the commands of one job."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from tierup.pipeline.ci_facts import Facts


def _dotenv_name(name: str) -> str:
    return re.sub(r"[^A-Z0-9_]", "_", name.upper())


def dotenv_values(facts: Facts) -> dict[str, str]:
    out = {
        "TIERUP_STATUS": facts.status,
        "TIERUP_EXIT_CODE": str(facts.exit_code),
        "TIERUP_EVENT_ID": facts.event or "",
    }
    for name, v in facts.images.items():
        key = _dotenv_name(name)
        out[f"TIERUP_{key}_TAG"] = v.tag or ""
        out[f"TIERUP_{key}_DIGEST"] = v.digest or ""
        out[f"TIERUP_{key}_COMMIT"] = v.commit or ""
    return out


# a command of these records nothing: it does not replace the status or event of one that did
READ_ONLY = frozenset({"where", "validate", "history", "snapshots", "schema", "init"})
RUN_KEYS = ("TIERUP_STATUS", "TIERUP_EXIT_CODE", "TIERUP_EVENT_ID")


def write_dotenv(path: Path, values: Mapping[str, str], *, read_only: bool = False) -> None:
    """Merge into the report: several tierup commands in one job leave one file (a promote's
    status and event survive the `where` that follows it)."""
    merged: dict[str, str] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            key, sep, value = line.partition("=")
            if sep:
                merged[key] = value
    if read_only:
        values = {k: v for k, v in values.items() if k not in RUN_KEYS or k not in merged}
    merged.update(values)
    path.write_text("".join(f"{k}={v}\n" for k, v in merged.items()), encoding="utf-8")
