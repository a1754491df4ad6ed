"""Reading envs.yaml: bytes -> UTF-8 text -> YAML (bounded in size, depth and aliases) -> the
validated ``Config``.

Every error names the file, the key path and the line, and is raised before any AWS call: a
pydantic error becomes one line, an unknown key says which key it likely meant.
"""

from __future__ import annotations

import difflib
import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from tierup.pipeline.config import Config
from tierup.pipeline.config_fields import LocatedError
from tierup.stages.errors import ConfigError

DEFAULT_CONFIG = "envs.yaml"
CONFIG_ENV_VAR = "TIERUP_CONFIG"
# bounds on what the loader reads: far above any real configuration, far below harm
MAX_BYTES = 4 * 1024 * 1024
MAX_NODES = 200_000  # values once aliases are expanded
MAX_DEPTH = 64


@dataclass(frozen=True)
class _Lines:
    """Key path -> line (1-based) of the key, or of the item for list entries."""

    lines: dict[tuple[str | int, ...], int]

    def find(self, loc: tuple[str | int, ...]) -> int | None:
        for n in range(len(loc), -1, -1):
            if loc[:n] in self.lines:
                return self.lines[loc[:n]]
        return None


def _walk(
    node: yaml.Node, path: tuple[str | int, ...], out: dict[tuple[str | int, ...], int], file: str
) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in seen:
                dotted = ".".join(str(p) for p in (*path, key))
                raise ConfigError(
                    f"{file}:{line}: {dotted}: duplicate key {key!r} (first on line {seen[key]})",
                    hint="each name may appear once; rename or merge the entries",
                )
            seen[key] = line
            out[(*path, key)] = line
            _walk(value_node, (*path, key), out, file)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out[(*path, i)] = item.start_mark.line + 1
            _walk(item, (*path, i), out, file)


def _format_loc(loc: tuple[str | int, ...]) -> str:
    parts: list[str] = []
    for p in loc:
        if isinstance(p, int):
            parts.append(f"[{p}]")
        else:
            parts.append(("." if parts else "") + p)
    return "".join(parts) or "(top level)"


def _clean_loc(loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    # pydantic inserts union member tags (e.g. 'ecr', 'oci') and validator names
    return tuple(p for p in loc if p not in ("ecr", "oci", "function-after[_one_form()]"))


def _message(err: Any) -> str:
    kind = err["type"]
    msg = str(err["msg"])
    if kind == "extra_forbidden":
        suggestion = err.get("suggestion")
        return f"unknown key, did you mean {suggestion!r}?" if suggestion else "unknown key"
    number = err.get("input")
    if kind == "string_type" and isinstance(number, int) and err["loc"][-1:] == ("account_id",):
        return f'{number} is a number to YAML: quote the account id (account_id: "{number:012d}")'
    if kind == "missing":
        return "required key is missing"
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if kind == "string_pattern_mismatch":
        return f"{err.get('input')!r} is not valid ({msg})"
    return msg


def default_path() -> Path:
    return Path(os.environ.get(CONFIG_ENV_VAR) or DEFAULT_CONFIG)


def load(path: str | Path | None = None) -> Config:
    """Read and validate envs.yaml; raise ConfigError naming file, key path and line."""
    file = Path(path) if path is not None else default_path()
    try:
        with file.open("rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except FileNotFoundError as e:
        raise ConfigError(
            f"{file}: no such file",
            hint="pass -f FILE, set TIERUP_CONFIG, or run from the folder that holds envs.yaml",
        ) from e
    except IsADirectoryError as e:
        raise ConfigError(f"{file}: is a directory, not a file", hint="pass -f FILE") from e
    except OSError as e:
        raise ConfigError(f"{file}: cannot read: {e.strerror}") from e
    if len(raw) > MAX_BYTES:
        raise ConfigError(
            f"{file}:1: larger than {MAX_BYTES // (1024 * 1024)} MiB: not an envs.yaml",
            hint="check that -f names the right file",
        )
    return loads(decode(raw, str(file)), str(file))


def decode(raw: bytes, file: str = DEFAULT_CONFIG) -> str:
    """envs.yaml's bytes as text: UTF-8 (a BOM is allowed), else a ConfigError naming the byte."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ConfigError(
            f"{file}:1: not UTF-8 text: the file starts with a UTF-16 byte order mark",
            hint="save it as UTF-8",
        )
    nul = raw.find(b"\x00")
    if nul >= 0:  # no text file has one: UTF-16 without a mark, or binary
        raise _not_text(raw, nul, file)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise _not_text(raw, e.start, file) from e


def _not_text(raw: bytes, offset: int, file: str) -> ConfigError:
    line = raw.count(b"\n", 0, offset) + 1
    column = offset - (raw.rfind(b"\n", 0, offset) + 1) + 1
    return ConfigError(
        f"{file}:{line}: not UTF-8 text: byte {offset} (line {line}, column {column}) is "
        f"0x{raw[offset]:02x}",
        hint="save it as UTF-8 (a latin-1 or UTF-16 file must be converted, "
        "e.g. iconv -f latin1 -t utf-8)",
    )


# libyaml's parser when PyYAML was built with it: the pure-Python one takes a tenth of a
# second on a config of a few hundred services, on every command
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _parse(text: str, file: str = DEFAULT_CONFIG) -> tuple[yaml.Node | None, Any]:
    """One parse: the node tree (for lines and duplicate keys) and the data built from it.

    Aliases make the tree a graph: its size once expanded is checked before anything is built
    from it, so a document that expands past ``MAX_NODES`` (a billion laughs) is refused at once.
    """
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        _check_expansion(node, file)
        return node, loader.construct_document(node)
    finally:
        loader.dispose()


def _check_expansion(root: yaml.Node, file: str) -> None:
    """Refuse a node graph that expands past MAX_NODES or MAX_DEPTH, or refers to itself."""
    sizes: dict[int, int] = {}  # node id -> expanded size, for each node once
    # depth-first without recursion: (node, depth, children done?)
    stack: list[tuple[yaml.Node, int, bool]] = [(root, 1, False)]
    open_ids: set[int] = set()
    while stack:
        node, depth, done = stack.pop()
        key = id(node)
        if done:
            open_ids.discard(key)
            total = 1 + sum(sizes[id(c)] for c in _children(node))
            sizes[key] = total
            if total > MAX_NODES:
                _too_big(node, file, f"it expands to more than {MAX_NODES:,} values")
            continue
        if key in sizes:
            continue
        if key in open_ids:
            _too_big(node, file, "an alias refers to a node that contains it")
        if depth > MAX_DEPTH:
            _too_big(node, file, f"it nests deeper than {MAX_DEPTH} levels")
        open_ids.add(key)
        stack.append((node, depth, True))
        for child in _children(node):
            if id(child) not in sizes:
                stack.append((child, depth + 1, False))


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _too_big(node: yaml.Node, file: str, why: str) -> None:
    raise ConfigError(
        f"{file}:{node.start_mark.line + 1}: refused: {why}",
        hint="envs.yaml needs no deep nesting and few aliases; write the values out",
    )


def loads(text: str, file: str = DEFAULT_CONFIG) -> Config:
    try:
        node, data = _parse(text, file)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        position = getattr(e, "position", None)  # the reader's errors carry a character offset
        if mark is None and isinstance(position, int):
            line = f":{text.count(chr(10), 0, position) + 1}"
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError(f"{file}{line}: not valid YAML: {problem}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{file}:1: the file must be a mapping with `version: 1` at the top")
    assert node is not None
    # a key missing at the top level is reported on the document's first line
    lines: dict[tuple[str | int, ...], int] = {(): node.start_mark.line + 1}
    _walk(node, (), lines, file)
    located = _Lines(lines)
    if data.get("version") != 1:
        vline = located.find(("version",)) or 1
        raise ConfigError(
            f"{file}:{vline}: version: expected 1, got {data.get('version')!r}",
            hint="this tierup reads envs.yaml version 1",
        )
    try:
        return Config.model_validate(data)
    except ValidationError as e:
        errors = _explained(e.errors())
        first = errors[0]
        loc = _clean_loc(tuple(first["loc"]))
        ctx = first.get("ctx") or {}
        err = ctx.get("error")
        if isinstance(err, LocatedError):
            loc, text_msg = err.loc, err.message
        else:
            text_msg = _message(first)
        found = located.find(loc)
        where = f"{file}:{found}" if found else file
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ConfigError(f"{where}: {_format_loc(loc)}: {text_msg}{more}") from e


def _explained(errors: list[Any]) -> list[Any]:
    """Unknown keys first, each with its likely meaning; a required key that a misspelt key
    stands for is the same mistake, not another one."""
    unknown = [err for err in errors if err["type"] == "extra_forbidden"]
    if not unknown:
        return errors
    rest = [err for err in errors if err["type"] != "extra_forbidden"]
    out: list[Any] = []
    for err in unknown:
        loc = _clean_loc(tuple(err["loc"]))
        missing = [
            m
            for m in rest
            if m["type"] == "missing" and _clean_loc(tuple(m["loc"]))[:-1] == loc[:-1]
        ]
        names = [str(_clean_loc(tuple(m["loc"]))[-1]) for m in missing]
        match = difflib.get_close_matches(str(loc[-1]), names, n=1, cutoff=0.6)
        if not match:
            match = difflib.get_close_matches(str(loc[-1]), _known_keys(), n=1, cutoff=0.75)
        else:
            rest = [m for m in rest if m not in missing or str(m["loc"][-1]) != match[0]]
        out.append({**err, "suggestion": match[0] if match else None})
    return out + rest


@functools.cache
def _known_keys() -> tuple[str, ...]:
    """Every key envs.yaml may have anywhere (what a misspelt key is compared with)."""
    keys: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            keys.update(node.get("properties", {}))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(Config.model_json_schema(by_alias=True))
    return tuple(sorted(keys))
