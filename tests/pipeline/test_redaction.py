"""The redaction's quick check never lets a credential-shaped text through unredacted."""

from __future__ import annotations

import pytest

from tierup.pipeline import redaction

# one text per pattern of redaction._PATTERNS, in the same order: each holds a secret value
SAMPLES = (
    ('"Authorization": "AWS4-HMAC-SHA256 Credential=x, Signature=y"', "AWS4-HMAC-SHA256"),
    ("<StringToSign>AWS4-HMAC-SHA256\n20260101T000000Z\nsecretscope</StringToSign>", "secretscope"),
    ("X-Amz-Credential=AKIDEXAMPLE/20260101/us-east-1/s3/aws4_request", "AKIDEXAMPLE"),
    ("X-Amz-Signature=0f1e2d3c4b5a69788796a5b4c3d2e1f0", "0f1e2d3c4b5a6978"),
    ("x-amz-security-token:tokenvaluetokenvalue", "tokenvaluetokenvalue"),
    ("aws_secret_access_key = wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI"),
    ('{"SessionToken": "some secret value"}', "some secret value"),
    ("token IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQ", "IQoJb3JpZ2lu"),
    ("key id ASIAQWERTYUIOPASDFGH in a message", "ASIAQWERTYUIOPASDFGH"),
)


def test_every_pattern_has_a_sample() -> None:
    assert len(SAMPLES) == len(redaction._PATTERNS)


@pytest.mark.parametrize("index", range(len(SAMPLES)))
@pytest.mark.parametrize("shape", [str, str.upper, str.lower, str.title])
def test_a_text_any_pattern_matches_passes_the_quick_check(index: int, shape: object) -> None:
    pattern, _ = redaction._PATTERNS[index]
    text, secret = SAMPLES[index]
    assert pattern.search(text), "the sample must be one its pattern redacts"
    assert secret in text
    assert redaction._suspect(text)
    assert secret not in redaction.redact(text)
    assert callable(shape)
    shaped = shape(text)
    if pattern.search(shaped):  # a case-insensitive pattern: so is the quick check
        assert redaction._suspect(shaped)


def test_ordinary_words_skip_the_patterns_and_known_values_are_still_removed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for word in ("api", "staging-5/svc3", "sha256:" + "a" * 64, "deployed", "force-new-deployment"):
        assert not redaction._suspect(word)
        assert redaction.redact(word) == word
    # not ASCII: the patterns themselves decide (case-insensitive matching knows the long s)
    long_s = "pa\u017fsword"
    assert redaction.redact(f"{long_s}: hunter22") == f"{long_s}: ***"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "plainsecretvalue")
    assert redaction.redact("in plainsecretvalue here") == "in *** here"
    copy = redaction.redact_all({"a": ["plainsecretvalue", ("x", "plainsecretvalue")]})
    assert copy == {"a": ["***", ("x", "***")]}
