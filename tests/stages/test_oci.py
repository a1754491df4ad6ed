"""The OCI distribution backend against a real registry (CNCF distribution) on loopback."""

from __future__ import annotations

import base64
import json
import os
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.fixtures_docker import AuthRegistry
from tests.support.oci_api import (
    DOCKER_MANIFEST,
    OCI_INDEX,
    push_index,
    push_tiny_image,
    raw_manifest,
    sha256,
)
from tests.support.oci_token_server import SERVICE, TokenRegistry
from tierup.stages.adapters.oci.auth import parse_challenge
from tierup.stages.adapters.oci.credentials import Credentials, docker_credentials
from tierup.stages.adapters.oci.endpoint import registry_endpoint
from tierup.stages.adapters.oci.registry import OciRegistry, _media_type
from tierup.stages.adapters.registry import Registry, TagWrite
from tierup.stages.errors import ConfigError, RegistryError, RepositoryMissing


def _repo() -> str:
    return f"tierup-tests/{uuid.uuid4().hex[:10]}"


def _docker_config(tmp_path: Path, doc: dict[str, object]) -> str:
    folder = tmp_path / "docker-config"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(doc))
    return str(folder)


def _basic(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def _helper(tmp_path: Path, name: str, answers: dict[str, tuple[str, str]]) -> Path:
    """A ``docker-credential-<name>`` on PATH that answers from ``answers`` (server -> creds)."""
    folder = tmp_path / "bin"
    folder.mkdir(exist_ok=True)
    script = folder / f"docker-credential-{name}"
    table = {k: {"ServerURL": k, "Username": u, "Secret": s} for k, (u, s) in answers.items()}
    script.write_text(
        "#!/usr/bin/env python3\n"
        "import json, sys\n"
        f"TABLE = {json.dumps(table)!r}\n"
        "assert sys.argv[1] == 'get'\n"
        "server = sys.stdin.read().strip()\n"
        "found = json.loads(TABLE).get(server)\n"
        "if found is None:\n"
        "    print('credentials not found in native keychain')\n"
        "    sys.exit(1)\n"
        "print(json.dumps(found))\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return folder


# -- endpoint and credential parsing (no registry needed) ----------------------------


@pytest.mark.parametrize(
    ("url", "insecure", "expected"),
    [
        ("ghcr.io", False, ("https", "ghcr.io")),
        ("https://ghcr.io/", False, ("https", "ghcr.io")),
        ("127.0.0.1:5000", False, ("http", "127.0.0.1:5000")),
        ("127.9.8.7:5000", False, ("http", "127.9.8.7:5000")),
        ("localhost:5000", False, ("http", "localhost:5000")),
        ("http://localhost:5000", False, ("http", "localhost:5000")),
        ("https://127.0.0.1:5000", False, ("https", "127.0.0.1:5000")),
        ("http://[::1]:5000", False, ("http", "[::1]:5000")),
        ("http://registry.internal:5000", True, ("http", "registry.internal:5000")),
        ("registry.internal:5000", True, ("https", "registry.internal:5000")),
    ],
)
def test_endpoint(url: str, insecure: bool, expected: tuple[str, str]) -> None:
    assert registry_endpoint(url, insecure=insecure) == expected


@pytest.mark.parametrize(
    "url",
    ["http://registry.example.com", "http://10.0.0.8:5000", "https://user:pw@ghcr.io", "ftp://x"],
)
def test_endpoint_refused(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        OciRegistry(url)
    assert info.value.refusal
    assert "pw" not in info.value.message


def test_image_uri_and_protocol() -> None:
    reg = OciRegistry("https://ghcr.io")
    assert isinstance(reg, Registry)
    assert reg.image_uri("org/api", "dev") == "ghcr.io/org/api:dev"
    digest = "sha256:" + "a" * 64
    assert reg.image_uri("org/api", digest) == f"ghcr.io/org/api@{digest}"
    assert OciRegistry("127.0.0.1:5000").image_uri("api", "x") == "127.0.0.1:5000/api:x"
    hub = OciRegistry("docker.io")
    assert hub.base_url == "https://registry-1.docker.io"
    assert hub.image_uri("org/api", "dev") == "docker.io/org/api:dev"


def test_parse_challenge() -> None:
    scheme, params = parse_challenge(
        'Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:o/a:pull"'
    )
    assert scheme == "bearer"
    assert params == {
        "realm": "https://ghcr.io/token",
        "service": "ghcr.io",
        "scope": "repository:o/a:pull",
    }
    assert parse_challenge('Basic realm="x"') == ("basic", {"realm": "x"})


def test_docker_config_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = _docker_config(
        tmp_path,
        {
            "auths": {
                "https://registry.example.com/v1/": {"auth": _basic("alice", "s3cret")},
                "https://index.docker.io/v1/": {"auth": _basic("hubuser", "hubpass")},
                "token.example.com": {"identitytoken": "refresh-me"},
            },
            "credHelpers": {"helped.example.com": "fake"},
        },
    )
    monkeypatch.setenv(
        "PATH",
        f"{_helper(tmp_path, 'fake', {'helped.example.com': ('bob', 'pw2')})}"
        f"{os.pathsep}{os.environ['PATH']}",
    )
    assert docker_credentials("registry.example.com", config) == Credentials("alice", "s3cret")
    assert docker_credentials("registry-1.docker.io", config) == Credentials("hubuser", "hubpass")
    assert docker_credentials("helped.example.com", config) == Credentials("bob", "pw2")
    token = docker_credentials("token.example.com", config)
    assert token is not None and token.identity_token and token.password == "refresh-me"
    assert docker_credentials("other.example.com", config) is None
    assert "s3cret" not in repr(docker_credentials("registry.example.com", config))
    # DOCKER_CONFIG is the default location
    monkeypatch.setenv("DOCKER_CONFIG", config)
    assert docker_credentials("registry.example.com") == Credentials("alice", "s3cret")


def test_creds_store_falls_back_to_auths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = _docker_config(
        tmp_path,
        {
            "auths": {"stored.example.com": {}, "plain.example.com": {"auth": _basic("c", "d")}},
            "credsStore": "store",
        },
    )
    helper = _helper(tmp_path, "store", {"stored.example.com": ("a", "b")})
    monkeypatch.setenv("PATH", f"{helper}{os.pathsep}{os.environ['PATH']}")
    assert docker_credentials("stored.example.com", config) == Credentials("a", "b")
    assert docker_credentials("plain.example.com", config) == Credentials("c", "d")


def test_missing_credential_helper(tmp_path: Path) -> None:
    config = _docker_config(tmp_path, {"credHelpers": {"x.example.com": "not-installed-here"}})
    with pytest.raises(RegistryError, match="docker-credential-not-installed-here"):
        docker_credentials("x.example.com", config)


# -- against the registry --------------------------------------------------------------


@pytest.mark.docker
def test_retag_keeps_digest_byte_for_byte(oci_registry_url: str) -> None:
    repo = _repo()
    digest, body = push_tiny_image(oci_registry_url, repo, "dev", content=b"release one")
    reg = OciRegistry(oci_registry_url)

    manifest = reg.get_manifest(repo, "dev")
    assert manifest is not None
    assert manifest.digest == digest
    assert manifest.body == body
    assert manifest.media_type == "application/vnd.oci.image.manifest.v1+json"

    assert reg.put_tag(repo, "staging", manifest) is TagWrite.CREATED
    stored, headers = raw_manifest(oci_registry_url, repo, "staging")
    assert stored == body
    assert sha256(stored) == digest == headers["Docker-Content-Digest"]
    assert reg.put_tag(repo, "staging", manifest) is TagWrite.UNCHANGED

    newer, _ = push_tiny_image(oci_registry_url, repo, "dev", content=b"release two")
    moved = reg.get_manifest(repo, "dev")
    assert moved is not None and moved.digest == newer
    assert reg.put_tag(repo, "staging", moved) is TagWrite.MOVED
    assert raw_manifest(oci_registry_url, repo, "staging")[1]["Docker-Content-Digest"] == newer

    by_digest = reg.get_manifest(repo, digest)
    assert by_digest is not None and by_digest.body == body
    assert reg.get_manifest(repo, "nope") is None
    assert reg.describe_repository(repo).uri == f"{oci_registry_url}/{repo}"


def test_media_type_when_the_registry_does_not_say() -> None:
    # an OCI index may leave out mediaType; served as plain JSON it is still an index
    index = json.dumps({"schemaVersion": 2, "manifests": []}).encode()
    image = json.dumps({"schemaVersion": 2, "config": {}, "layers": []}).encode()
    declared = json.dumps({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST}).encode()
    resp = requests.Response()
    resp.headers["Content-Type"] = "application/json"
    assert _media_type(resp, index) == OCI_INDEX
    assert _media_type(resp, image) == "application/vnd.oci.image.manifest.v1+json"
    assert _media_type(resp, declared) == DOCKER_MANIFEST
    resp.headers["Content-Type"] = OCI_INDEX
    assert _media_type(resp, declared) == OCI_INDEX


@pytest.mark.docker
def test_docker_manifest_and_index(oci_registry_url: str) -> None:
    repo = _repo()
    d1, b1 = push_tiny_image(
        oci_registry_url, repo, "v2", content=b"docker v2", media_type=DOCKER_MANIFEST, indent=None
    )
    d2, b2 = push_tiny_image(oci_registry_url, repo, "arm", content=b"other arch")
    index_digest, index_body = push_index(oci_registry_url, repo, "multi", [(d2, len(b2))])
    reg = OciRegistry(oci_registry_url)

    v2 = reg.get_manifest(repo, "v2")
    assert v2 is not None and v2.media_type == DOCKER_MANIFEST and v2.digest == d1
    assert reg.put_tag(repo, "dev", v2) is TagWrite.CREATED
    body, headers = raw_manifest(oci_registry_url, repo, "dev")
    assert body == b1 and headers["Content-Type"] == DOCKER_MANIFEST

    index = reg.get_manifest(repo, "multi")
    assert index is not None and index.media_type == OCI_INDEX and index.digest == index_digest
    assert reg.put_tag(repo, "staging", index) is TagWrite.CREATED
    body, headers = raw_manifest(oci_registry_url, repo, "staging")
    assert body == index_body and sha256(body) == index_digest


@pytest.mark.docker
def test_list_images_pages_through_tags(oci_registry_url: str) -> None:
    repo = _repo()
    a, _ = push_tiny_image(oci_registry_url, repo, "a1", content=b"a")
    b, _ = push_tiny_image(oci_registry_url, repo, "b1", content=b"b")
    reg = OciRegistry(oci_registry_url)
    for tag in ("a2", "a3"):
        manifest = reg.get_manifest(repo, "a1")
        assert manifest is not None
        reg.put_tag(repo, tag, manifest)
    reg.tags_page_size = 2
    assert sorted(reg.list_tags(repo)) == ["a1", "a2", "a3", "b1"]
    images = {i.digest: i for i in reg.list_images(repo)}
    assert set(images) == {a, b}
    assert images[a].tags == ("a1", "a2", "a3")
    assert images[b].tags == ("b1",)
    assert images[a].media_type == "application/vnd.oci.image.manifest.v1+json"
    assert images[a].pushed_at is None  # the distribution registry does not say


@pytest.mark.docker
def test_missing_repository(oci_registry_url: str) -> None:
    reg = OciRegistry(oci_registry_url)
    with pytest.raises(RepositoryMissing, match="does not exist") as info:
        reg.describe_repository("tierup-tests/never-pushed")
    assert info.value.refusal  # as on ECR
    with pytest.raises(RepositoryMissing, match="does not exist"):
        reg.list_images("tierup-tests/never-pushed")
    # the distribution registry answers MANIFEST_UNKNOWN here: "no such tag" (the promotion's
    # describe_repository has already named the missing repository, exit 2)
    assert reg.get_manifest("tierup-tests/never-pushed", "dev") is None


def test_unreachable_registry() -> None:
    reg = OciRegistry("127.0.0.1:9")
    with pytest.raises(RegistryError, match=r"cannot reach registry 127\.0\.0\.1:9"):
        reg.get_manifest("x", "y")


# -- basic auth --------------------------------------------------------------------------


@pytest.mark.docker
def test_basic_auth_from_docker_config(oci_auth_registry: AuthRegistry, tmp_path: Path) -> None:
    url, user, password = (
        oci_auth_registry.url,
        oci_auth_registry.username,
        oci_auth_registry.password,
    )
    repo = _repo()
    digest, body = push_tiny_image(url, repo, "dev", content=b"private", auth=(user, password))

    anonymous = OciRegistry(url, docker_config_dir=str(tmp_path / "empty"))
    with pytest.raises(RegistryError, match="denied access anonymously") as info:
        anonymous.get_manifest(repo, "dev")
    assert "docker login" in info.value.hint

    config = _docker_config(tmp_path, {"auths": {url: {"auth": _basic(user, password)}}})
    reg = OciRegistry(url, docker_config_dir=config)
    manifest = reg.get_manifest(repo, "dev")
    assert manifest is not None and manifest.digest == digest
    assert reg.put_tag(repo, "staging", manifest) is TagWrite.CREATED
    assert raw_manifest(url, repo, "staging", auth=(user, password))[0] == body
    assert [i.tags for i in reg.list_images(repo)] == [("dev", "staging")]

    wrong = _docker_config(tmp_path / "w", {"auths": {url: {"auth": _basic(user, "wrong")}}})
    with pytest.raises(RegistryError, match="with the credentials in Docker's config") as info:
        OciRegistry(url, docker_config_dir=wrong).get_manifest(repo, "dev")
    assert "wrong" not in info.value.message + info.value.hint


@pytest.mark.docker
def test_basic_auth_from_credential_helper(
    oci_auth_registry: AuthRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = oci_auth_registry.url
    creds = (oci_auth_registry.username, oci_auth_registry.password)
    repo = _repo()
    digest, _ = push_tiny_image(url, repo, "dev", content=b"helped", auth=creds)
    helper = _helper(tmp_path, "tierup-test", {url: creds})
    monkeypatch.setenv("PATH", f"{helper}{os.pathsep}{os.environ['PATH']}")
    config = _docker_config(tmp_path, {"credHelpers": {url: "tierup-test"}})
    manifest = OciRegistry(url, docker_config_dir=config).get_manifest(repo, "dev")
    assert manifest is not None and manifest.digest == digest


# -- bearer tokens -------------------------------------------------------------------------


@pytest.fixture
def token_registry(oci_registry_url: str) -> Iterator[TokenRegistry]:
    server = TokenRegistry(
        upstream=oci_registry_url,
        username="robot",
        password="token-test-password",
        refresh_token="refresh-token-value",
    ).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.docker
def test_bearer_token_flow(
    token_registry: TokenRegistry, oci_registry_url: str, tmp_path: Path
) -> None:
    repo = _repo()
    digest, body = push_tiny_image(oci_registry_url, repo, "dev", content=b"behind tokens")
    # the front really refuses requests without a token
    assert (
        requests.get(f"http://{token_registry.url}/v2/{repo}/tags/list", timeout=5).status_code
        == 401
    )

    config = _docker_config(
        tmp_path, {"auths": {token_registry.url: {"auth": _basic("robot", "token-test-password")}}}
    )
    reg = OciRegistry(token_registry.url, docker_config_dir=config)
    manifest = reg.get_manifest(repo, "dev")
    assert manifest is not None and manifest.digest == digest and manifest.body == body
    assert reg.put_tag(repo, "staging", manifest) is TagWrite.CREATED
    assert raw_manifest(oci_registry_url, repo, "staging")[0] == body
    assert [i.tags for i in reg.list_images(repo)] == [("dev", "staging")]

    scopes = [(r.username, r.scope, r.granted) for r in token_registry.token_requests]
    assert ("robot", f"repository:{repo}:pull", True) in scopes
    assert ("robot", f"repository:{repo}:pull,push", True) in scopes
    # one token per scope, reused across requests
    assert len(scopes) == 2


@pytest.mark.docker
def test_bearer_token_refused(
    token_registry: TokenRegistry, oci_registry_url: str, tmp_path: Path
) -> None:
    repo = _repo()
    push_tiny_image(oci_registry_url, repo, "dev", content=b"secret stuff")
    wrong = _docker_config(
        tmp_path, {"auths": {token_registry.url: {"auth": _basic("robot", "nope")}}}
    )
    with pytest.raises(RegistryError, match="refused the credentials") as info:
        OciRegistry(token_registry.url, docker_config_dir=wrong).get_manifest(repo, "dev")
    assert "nope" not in info.value.message
    assert "docker login" in info.value.hint
    with pytest.raises(RegistryError, match="refused anonymous access"):
        OciRegistry(token_registry.url, docker_config_dir=str(tmp_path / "none")).get_manifest(
            repo, "dev"
        )


@pytest.mark.docker
def test_identity_token(
    token_registry: TokenRegistry, oci_registry_url: str, tmp_path: Path
) -> None:
    repo = _repo()
    digest, _ = push_tiny_image(oci_registry_url, repo, "dev", content=b"oauth")
    config = _docker_config(
        tmp_path, {"auths": {token_registry.url: {"identitytoken": "refresh-token-value"}}}
    )
    manifest = OciRegistry(token_registry.url, docker_config_dir=config).get_manifest(repo, "dev")
    assert manifest is not None and manifest.digest == digest
    assert token_registry.token_requests[-1].method == "POST"
    assert token_registry.token_requests[-1].granted


def test_plain_http_realm_refused_for_remote_token_service() -> None:
    reg = OciRegistry("127.0.0.1:5000")
    with pytest.raises(RegistryError, match="plain-http token service"):
        reg._fetch_token("http://auth.example.com/token", SERVICE, "repository:x:pull", None)
