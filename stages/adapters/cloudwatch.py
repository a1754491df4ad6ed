"""CloudWatch alarms through one typed adapter (what the ``alarm`` step reads)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tierup.stages.adapters.aws import raise_translated


@dataclass(frozen=True)
class AlarmState:
    name: str
    state: str  # OK | ALARM | INSUFFICIENT_DATA
    reason: str = ""


class CloudWatch:
    """One account and region's CloudWatch, through an injected boto3 client."""

    def __init__(self, client: Any) -> None:
        self._cw = client

    def alarms(self, *, names: list[str], prefix: str | None) -> list[AlarmState]:
        """The metric and composite alarms named, or whose name starts with ``prefix``."""
        found: dict[str, AlarmState] = {}
        queries: list[dict[str, Any]] = []
        if names:
            queries += [{"AlarmNames": names[i : i + 100]} for i in range(0, len(names), 100)]
        if prefix:
            queries.append({"AlarmNamePrefix": prefix})
        try:
            paginator = self._cw.get_paginator("describe_alarms")
            for query in queries:
                for page in paginator.paginate(
                    AlarmTypes=["MetricAlarm", "CompositeAlarm"], **query
                ):
                    for a in [*page.get("MetricAlarms", []), *page.get("CompositeAlarms", [])]:
                        name = str(a["AlarmName"])
                        found[name] = AlarmState(
                            name, str(a.get("StateValue", "")), str(a.get("StateReason", ""))
                        )
        except Exception as e:
            raise_translated(e, "reading CloudWatch alarms")
        return [found[n] for n in sorted(found)]
