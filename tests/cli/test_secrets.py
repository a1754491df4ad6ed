"""Nothing secret is printed or stored, whatever an AWS error quotes.

A proxy in front of moto's server answers some calls with the errors AWS sends when a
signature does not match: they quote the request they refused (its ``Authorization`` header,
``x-amz-security-token``, the access key id, the signature), and here also the secret keys.
The process's credentials and those of every role tierup assumes are distinctive; every output
(text, ``--json``, ``error:`` lines, ``--verbose`` tracebacks and logs) and everything stored
(ledger events, snapshots, locks) is scanned for each of them.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest

from tests.support.faults import Answer, Call, FaultProxy, error_answer
from tests.support.release_world import BUCKET, release_world, s3
from tests.support.world import World

SECRET = "tierupFAKEsecretKEY/4f9c2e7b1a8d3f6e5c0b9a7d2e4f1c8b"
TOKEN = "tierupFAKEsessionTOKEN+9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c=="
_ASSUMED = re.compile(
    r"<AccessKeyId>(.*?)</AccessKeyId>.*?<SecretAccessKey>(.*?)</SecretAccessKey>"
    r".*?<SessionToken>(.*?)</SessionToken>",
    re.S,
)
_SIGNATURE = re.compile(r"Signature=([0-9a-f]+)")
_SIGNATURE_MESSAGE = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. Consult the service documentation "
    "for details.\n\nThe Canonical String for this request should have been\n'{canonical}'"
    "\n\nAuthorization: {authorization}\nX-Amz-Security-Token={token}"
)


def _canonical(call: Call) -> str:
    signed = sorted((k, v) for k, v in call.headers.items() if k == "host" or k.startswith("x-amz"))
    lines = [call.method, call.path.partition("?")[0], ""]
    lines += [f"{k}:{v.strip()}" for k, v in signed]
    lines += ["", ";".join(k for k, _ in signed), call.headers.get("x-amz-content-sha256", "")]
    return "\n".join(lines)


def signature_error(call: Call, secrets: list[str]) -> Answer:
    """SignatureDoesNotMatch as the service sends it, quoting ``call`` and ``secrets``."""
    message = _SIGNATURE_MESSAGE.format(
        canonical=_canonical(call),
        authorization=call.headers.get("authorization", ""),
        token=call.headers.get("x-amz-security-token", ""),
    )
    message += "".join(f"\nsigned with {s}" for s in secrets)
    if call.service == "s3":
        q = html.escape
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SignatureDoesNotMatch</Code>'
            f"<Message>{q(message)}</Message>"
            f"<AWSAccessKeyId>{q(_key_id(call))}</AWSAccessKeyId>"
            f"<StringToSign>AWS4-HMAC-SHA256\n{q(_canonical(call))}</StringToSign>"
            f"<SignatureProvided>{q(_signature(call))}</SignatureProvided>"
            f"<CanonicalRequest>{q(_canonical(call))}</CanonicalRequest>"
            "<RequestId>tierup-fault-proxy</RequestId></Error>"
        )
        return Answer(403, body.encode())
    code = (
        "InvalidSignatureException" if call.service in ("ecs", "ecr") else "SignatureDoesNotMatch"
    )
    return error_answer(
        call.service, 403 if code == "SignatureDoesNotMatch" else 400, code, message
    )


def _key_id(call: Call) -> str:
    m = re.search(r"Credential=([^/]+)/", call.headers.get("authorization", ""))
    return m.group(1) if m else ""


def _signature(call: Call) -> str:
    m = _SIGNATURE.search(call.headers.get("authorization", ""))
    return m.group(1) if m else ""


@pytest.fixture
def world(
    tmp_path: Path, aws_env: str, fault_proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> World:
    w = release_world(tmp_path, aws_env)
    w.push_images(w.commit("change"))
    assert w.cli("promote", "--tier", "dev").exit_code == 0
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", TOKEN)
    return w


def _assumed(proxy: FaultProxy) -> list[tuple[str, str, str]]:
    """Every role's credentials moto handed out through the proxy."""
    out = []
    for call, _status, body in proxy.answers:
        if call.operation == "AssumeRole":
            found = _ASSUMED.search(body.decode("utf-8", "replace"))
            if found:
                out.append((found.group(1), found.group(2), html.unescape(found.group(3))))
    return out


def _secrets(proxy: FaultProxy) -> dict[str, str]:
    import os

    out = {
        "process access key id": os.environ["AWS_ACCESS_KEY_ID"],
        "process secret": SECRET,
        "process session token": TOKEN,
    }
    for n, (key_id, secret, token) in enumerate(_assumed(proxy)):
        out[f"role {n} access key id"] = key_id
        out[f"role {n} secret"] = secret
        out[f"role {n} session token"] = token
    for n, call in enumerate(proxy.calls):
        signature = _signature(call)
        if signature:
            out[f"signature of call {n} ({call.operation})"] = signature
    return out


def _stored(world: World) -> str:
    """Everything tierup stored: the S3 ledger's objects (events, snapshots, locks), local files."""
    client = s3()
    texts = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for obj in page.get("Contents", []):
            texts.append(client.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read().decode())
    for path in (world.root / ".tierup").rglob("*") if (world.root / ".tierup").exists() else []:
        if path.is_file():
            texts.append(path.read_text(errors="replace"))
    return "\n".join(texts)


def _leaks(text: str, secrets: dict[str, str]) -> list[str]:
    return [name for name, value in secrets.items() if value and value in text]


def test_errors_quoting_credentials_are_redacted_in_every_output_and_everything_stored(
    world: World, fault_proxy: FaultProxy
) -> None:
    quoted: list[str] = []

    def refuse_role(call: Call) -> Answer | None:
        # the role of one environment of staging, with the process's own credentials: the
        # preflight stops the run before any write
        body = call.body.decode("utf-8", "replace")
        if call.operation == "AssumeRole" and "444444444444" in body:
            return signature_error(call, [SECRET, TOKEN])
        return None

    def refuse_write(call: Call) -> Answer | None:
        # a write in one environment, with the role's credentials (and its secret quoted)
        body = call.body.decode("utf-8", "replace")
        if call.operation == "UpdateService" and "staging-cluster" in body:
            secrets = [s for _, s, _ in _assumed(fault_proxy)]
            quoted.extend(secrets)
            return signature_error(call, secrets)
        return None

    outputs: list[str] = []
    promote = ("promote", "--tier", "staging", "--no-wait")
    fault_proxy.rules[:] = [refuse_role]
    for args in (promote, (*promote, "--json"), ("--verbose", *promote)):
        r = world.cli(*args)
        assert r.exit_code == 1, r.output
        outputs += [r.output, r.stdout, r.stderr]
        if "--json" in args:
            assert "SignatureDoesNotMatch" in json.loads(r.stdout)["error"]
    fault_proxy.rules[:] = [refuse_write]
    for args in (promote, (*promote, "--json"), ("--verbose", *promote)):
        r = world.cli(*args)
        assert r.exit_code in (1, 3), r.output
        outputs += [r.output, r.stdout, r.stderr]
        if "--json" in args:
            envs = json.loads(r.stdout)["environments"]
            assert "InvalidSignatureException" in json.dumps(envs["staging"])
    assert quoted, "the role's secret was never quoted"
    text = outputs[0]  # the text rendering: each per-target error on one line
    lines = [x for x in text.splitlines() if "SignatureDoesNotMatch" in x]
    assert lines and all("x-amz-security-token:***" in x for x in lines), text
    assert any("x-amz-security-token:***" in o for o in outputs), outputs[0]

    # the lock's write refused: one error: line, and --verbose adds the traceback
    fault_proxy.rules[:] = [
        lambda call: (
            signature_error(call, [SECRET, *quoted])
            if call.operation == "PutObject" and "/locks/" in call.path
            else None
        )
    ]
    for flags in ([], ["--json"]):
        r = world.cli("--verbose", "promote", "--tier", "staging", *flags)
        assert r.exit_code == 1, r.output
        assert "Traceback" in r.stderr and "SignatureDoesNotMatch" in r.stderr
        errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "(hint: " in errors[0], r.stderr
        outputs += [r.output, r.stdout, r.stderr]

    fault_proxy.clear()
    r = world.cli("snapshot", "--env", "staging", "--name", "after")
    assert r.exit_code == 0, r.output
    outputs.append(r.output)

    secrets = _secrets(fault_proxy)
    assert len(secrets) > 6
    for text in outputs:
        assert _leaks(text, secrets) == [], text
    stored = _stored(world)
    assert '"command": "promote"' in stored and '"snapshot": "after"' in stored
    assert _leaks(stored, secrets) == []


def test_a_redacted_copy_keeps_its_types_and_a_logged_traceback_is_redacted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import io
    import logging

    from tierup.pipeline.output import RedactingFilter
    from tierup.pipeline.redaction import redact_all
    from tierup.pipeline.results import CommandResult, Status

    monkeypatch.setenv("AWS_SESSION_TOKEN", TOKEN)
    result = CommandResult(command="promote", status=Status.PARTIAL, error=f"token {TOKEN}")
    copy = redact_all(result)
    assert copy.status is Status.PARTIAL and copy.exit_code == 3
    assert TOKEN not in str(copy.error) and TOKEN in str(result.error)

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    log = logging.getLogger("tests.secrets")
    log.addHandler(handler)
    try:
        try:
            raise RuntimeError(f"x-amz-security-token: {TOKEN}")
        except RuntimeError:
            log.exception("failed with %s", TOKEN)
    finally:
        log.removeHandler(handler)
    text = stream.getvalue()
    assert "RuntimeError" in text and "Traceback" in text
    assert TOKEN not in text
