"""What a change of a stack's parameter values reaches, as CloudFormation's change sets say.

The resources that name a changed parameter are modified, and so are those that reference a
resource being replaced (an ECS task definition is replaced by any change; a service is
modified in place), each with its Replacement and Details (ParameterReference /
ResourceReference, the causing entity), causes before their dependents.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ResourceChange", "compute_changes", "parameter_values", "text"]

# property -> RequiresRecreation, for the resource types a deploy touches; others: Conditionally
_ALWAYS: dict[str, frozenset[str] | None] = {
    "AWS::ECS::TaskDefinition": None,  # every property but Tags
    "AWS::ECS::Service": frozenset(
        {"ServiceName", "Cluster", "LaunchType", "Role", "DeploymentController"}
    ),
    "AWS::ECS::Cluster": frozenset({"ClusterName"}),
}


def text(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return "" if value is None else str(value)


def _references(node: Any) -> set[tuple[str, str]]:
    """(kind, name) for every Ref, Fn::GetAtt and Fn::Sub variable under `node`."""
    out: set[tuple[str, str]] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                out.add(("Ref", value))
            elif key == "Fn::GetAtt":
                name = value[0] if isinstance(value, list) else str(value).split(".", 1)[0]
                out.add(("GetAtt", str(name)))
            elif key == "Fn::Sub":
                text = value if isinstance(value, str) else value[0]
                for var in re.findall(r"\$\{([^}!][^}]*)\}", str(text)):
                    kind = "GetAtt" if "." in var else "Ref"
                    out.add((kind, var.split(".", 1)[0]))
                if isinstance(value, list) and len(value) > 1:
                    out |= _references(value[1])
            else:
                out |= _references(value)
    elif isinstance(node, list):
        for item in node:
            out |= _references(item)
    return out


def _recreation(resource_type: str, prop: str) -> str:
    if resource_type not in _ALWAYS:
        return "Conditionally"
    always = _ALWAYS[resource_type]
    if always is None:
        return "Never" if prop == "Tags" else "Always"
    return "Always" if prop in always else "Never"


@dataclass
class ResourceChange:
    logical_id: str
    resource_type: str
    details: list[dict[str, Any]] = field(default_factory=list)

    @property
    def replacement(self) -> str:
        kinds = {d["Target"]["RequiresRecreation"] for d in self.details}
        if "Always" in kinds:
            return "True"
        if kinds == {"Never"}:
            return "False"
        return "Conditional"


def compute_changes(
    template: dict[str, Any], before: dict[str, str], after: dict[str, str]
) -> list[ResourceChange]:
    """The resources a change of parameter values reaches, causes before their dependents."""
    resources: dict[str, Any] = template.get("Resources") or {}
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    found: dict[str, ResourceChange] = {}

    def note(logical: str, prop: str, source: str, entity: str, evaluation: str) -> bool:
        kind = resources[logical].get("Type", "")
        change = found.setdefault(logical, ResourceChange(logical, kind))
        was = change.replacement if change.details else None
        detail = {
            "Target": {
                "Attribute": "Properties",
                "Name": prop,
                "RequiresRecreation": _recreation(kind, prop),
            },
            "Evaluation": evaluation,
            "ChangeSource": source,
            "CausingEntity": entity,
        }
        if detail not in change.details:
            change.details.append(detail)
        return was != "True" and change.replacement == "True"

    replaced: list[str] = []
    for logical, body in resources.items():
        for prop, value in ((body or {}).get("Properties") or {}).items():
            for kind, name in _references(value):
                if (
                    kind == "Ref"
                    and name in changed
                    and note(logical, prop, "ParameterReference", name, "Static")
                ):
                    replaced.append(logical)
    while replaced:
        cause = replaced.pop(0)
        for logical, body in resources.items():
            if logical == cause:
                continue
            for prop, value in ((body or {}).get("Properties") or {}).items():
                for kind, name in _references(value):
                    if name != cause:
                        continue
                    source = "ResourceReference" if kind == "Ref" else "ResourceAttribute"
                    entity = cause if kind == "Ref" else f"{cause}.{prop}"
                    if note(logical, prop, source, entity, "Dynamic"):
                        replaced.append(logical)
    return _in_dependency_order(found, resources)


def _in_dependency_order(
    found: dict[str, ResourceChange], resources: dict[str, Any]
) -> list[ResourceChange]:
    deps = {
        logical: {n for _, n in _references(resources[logical]) if n in found and n != logical}
        for logical in found
    }
    ordered: list[ResourceChange] = []
    placed: set[str] = set()
    while len(ordered) < len(found):
        ready = [n for n in found if n not in placed and deps[n] <= placed]
        if not ready:  # a cycle: CloudFormation would refuse the template; keep going
            ready = [n for n in found if n not in placed][:1]
        for n in ready:
            placed.add(n)
            ordered.append(found[n])
    return ordered


def parameter_values(template: dict[str, Any], given: dict[str, Any]) -> dict[str, str]:
    slots = template.get("Parameters") or {}
    out = {k: text(v.get("Default")) for k, v in slots.items() if "Default" in (v or {})}
    out.update({k: text(v) for k, v in given.items() if k in slots})
    return out
