"""One redaction for every line tierup prints or stores: nothing secret leaves the process.

Applied to text and ``--json`` output, ``error:`` lines, ``--verbose`` tracebacks and logs,
progress lines, ledger events and stored documents (snapshots). It removes

- the values of the credentials tierup knows: the process's (``AWS_ACCESS_KEY_ID``,
  ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``) and every assumed role's (``remember``);
- whatever has the shape of a credential, wherever it comes from (an AWS error quoting the
  request it refused, as SignatureDoesNotMatch does): access key ids, session tokens,
  ``x-amz-security-token``, ``Authorization`` headers, ``Credential=`` and ``Signature=``
  values, S3's ``<StringToSign>``/``<CanonicalRequest>``/``<SignatureProvided>``, secrets and
  passwords written as ``key: value``.
"""

from __future__ import annotations

import dataclasses
import os
import re
import threading
from enum import Enum
from typing import Any, TypeVar

MASK = "***"
_ENV = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
)
# shorter values are too likely to be ordinary words
_MIN_KNOWN = 6

_known: set[str] = set()
_known_sorted: list[str] = []
_lock = threading.Lock()

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Authorization header values, whole: "AWS4-HMAC-SHA256 Credential=..., Signature=..."
    (
        re.compile(
            r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?)"
            r"((?:AWS4-HMAC-SHA256|AWS|Bearer|Basic)\s[^\n\"']*|[^\s\"',}]+)"
        ),
        r"\1" + MASK,
    ),
    # S3's SignatureDoesNotMatch quotes what it computed and what it was given
    (
        re.compile(
            r"(?is)(<(StringToSign|StringToSignBytes|CanonicalRequest|CanonicalRequestBytes|"
            r"SignatureProvided|AWSAccessKeyId|SessionToken|SecretAccessKey)>)(.*?)(</\2>)"
        ),
        r"\1" + MASK + r"\4",
    ),
    (re.compile(r"(?i)((?:x-amz-)?credential=)([^\s,&\"'<]+)"), r"\1" + MASK),
    (re.compile(r"(?i)((?:x-amz-)?signature=)([^\s,&\"'<]+)"), r"\1" + MASK),
    (
        re.compile(
            r"(?i)((?:x-amz-security-token|security_?token)[\"']?\s*[:=]\s*[\"']?)([^\s\"',&<}]+)"
        ),
        r"\1" + MASK,
    ),
    (
        re.compile(
            r"(?i)((?:aws_)?secret_?access_?key|session_?token|password|passwd|"
            r"authorization_?token)([\"']?\s*[:=]\s*[\"']?)([^\s\"',}]+)"
        ),
        r"\1\2" + MASK,
    ),
    (
        re.compile(
            r"(?i)(\"(?:SecretAccessKey|SessionToken|authorizationToken|password)\"\s*:\s*\")"
            r"([^\"]+)"
        ),
        r"\1" + MASK,
    ),
    # session tokens (AWS's and the sandbox's) and access key ids, wherever they stand
    (re.compile(r"\b(?:IQoJ|FwoG|FQoG)[A-Za-z0-9+/=]{32,}"), MASK),
    (re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"), MASK),
)
# Words each pattern above needs (lower case; the last two patterns' words as written): an ASCII
# text with none of them is left to the known values alone, which spares the nine substitutions
# on the thousands of names and digests a result holds. A text that is not ASCII always goes
# through the patterns, whose case-insensitive matching knows more letters than lower() does.
# A new pattern needs its words here (tests/pipeline/test_redaction.py checks each pattern).
_WORDS = (
    "authoriz",
    "credential",
    "signature",
    "token",
    "secret",
    "passw",
    "stringtosign",
    "canonicalrequest",
    "awsaccesskeyid",
)
_WORDS_AS_WRITTEN = ("IQoJ", "FwoG", "FQoG", "AKIA", "ASIA")


# one search for all of them: the words in any case, the prefixes as written
_ANY_WORD = re.compile(
    "(?i:" + "|".join(map(re.escape, _WORDS)) + ")|" + "|".join(map(re.escape, _WORDS_AS_WRITTEN))
)


def _suspect(text: str) -> bool:
    """Whether any pattern could match ``text``."""
    return not text.isascii() or _ANY_WORD.search(text) is not None


def remember(*values: str | None) -> None:
    """Redact these values too from now on (an assumed role's key id, secret and token)."""
    fresh = {v for v in values if v and len(v) >= _MIN_KNOWN}
    if not fresh:
        return
    with _lock:
        if fresh <= _known:
            return
        _known.update(fresh)
        # the longest first: a value that contains another is removed whole
        _known_sorted[:] = sorted(_known, key=len, reverse=True)


def _values() -> list[str]:
    env = [os.environ.get(v) for v in _ENV]
    found = [v for v in env if v and len(v) >= _MIN_KNOWN]
    with _lock:
        known = list(_known_sorted)
    if not found:
        return known
    return sorted({*known, *found}, key=len, reverse=True)


def redact(text: str) -> str:
    """``text`` without any credential, known or shaped like one."""
    return _redact(text, _values())


def _redact(text: str, values: list[str]) -> str:
    if not text:
        return text
    for value in values:
        if value in text:
            text = text.replace(value, MASK)
    if not _suspect(text):
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


T = TypeVar("T")


def redact_all(obj: T) -> T:
    """A copy of ``obj`` (dataclasses, dicts, lists, tuples, strings) with every string redacted."""
    return _walk(obj, _values())  # type: ignore[no-any-return]


def _walk(obj: Any, values: list[str]) -> Any:
    if type(obj) is str:  # most of a result: names, digests, ARNs
        return _redact(obj, values)
    if isinstance(obj, Enum):
        return obj  # statuses: our own words, and a copy must keep their type
    if isinstance(obj, str):
        return _redact(obj, values)
    if isinstance(obj, dict):
        return {k: _walk(v, values) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_walk(v, values) for v in obj]
    if isinstance(obj, tuple) and not hasattr(obj, "_fields"):
        return tuple(_walk(v, values) for v in obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        changes = {
            f.name: _walk(getattr(obj, f.name), values) for f in dataclasses.fields(obj) if f.init
        }
        return dataclasses.replace(obj, **changes)
    return obj
