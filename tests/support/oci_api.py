"""Talk to a test registry's HTTP API directly: upload tiny images, read raw manifests and blobs.

The tests judge tierup by what the registry itself stores, so these helpers go around it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import requests

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
ACCEPT = ", ".join(
    [
        DOCKER_MANIFEST,
        "application/vnd.docker.distribution.manifest.list.v2+json",
        OCI_MANIFEST,
        OCI_INDEX,
    ]
)

Auth = tuple[str, str] | None


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def upload_blob(url: str, repository: str, data: bytes, auth: Auth = None) -> str:
    digest = sha256(data)
    start = requests.post(f"http://{url}/v2/{repository}/blobs/uploads/", auth=auth, timeout=10)
    assert start.status_code == 202, start.text
    location = start.headers["Location"]
    if location.startswith("/"):
        location = f"http://{url}{location}"
    sep = "&" if "?" in location else "?"
    done = requests.put(
        f"{location}{sep}digest={digest}",
        data=data,
        headers={"Content-Type": "application/octet-stream"},
        auth=auth,
        timeout=10,
    )
    assert done.status_code == 201, done.text
    return digest


def put_manifest(
    url: str, repository: str, reference: str, body: bytes, media_type: str, auth: Auth = None
) -> str:
    resp = requests.put(
        f"http://{url}/v2/{repository}/manifests/{reference}",
        data=body,
        headers={"Content-Type": media_type},
        auth=auth,
        timeout=10,
    )
    assert resp.status_code == 201, resp.text
    return str(resp.headers["Docker-Content-Digest"])


def push_tiny_image(
    url: str,
    repository: str,
    tag: str,
    *,
    content: bytes,
    media_type: str = OCI_MANIFEST,
    auth: Auth = None,
    indent: int | None = 3,
) -> tuple[str, bytes]:
    """Upload a one-layer image and put its manifest under ``tag``: (digest, manifest bytes).

    The manifest is serialised with an unusual indent and key order on purpose: a registry
    client that re-serialises it would change its digest.
    """
    docker = media_type == DOCKER_MANIFEST
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Labels": {"content": content.decode(errors="replace")}},
            "rootfs": {"type": "layers", "diff_ids": [sha256(content)]},
        }
    ).encode()
    config_digest = upload_blob(url, repository, config, auth)
    layer_digest = upload_blob(url, repository, content, auth)
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "layers": [
            {
                "size": len(content),
                "digest": layer_digest,
                "mediaType": DOCKER_LAYER if docker else OCI_LAYER,
            }
        ],
        "config": {
            "size": len(config),
            "digest": config_digest,
            "mediaType": DOCKER_CONFIG if docker else OCI_CONFIG,
        },
    }
    body = json.dumps(manifest, indent=indent).encode() + b"\n\n"
    digest = put_manifest(url, repository, tag, body, media_type, auth)
    assert digest == sha256(body)
    return digest, body


def push_index(
    url: str, repository: str, tag: str, manifests: list[tuple[str, int]], auth: Auth = None
) -> tuple[str, bytes]:
    """An OCI index over already-pushed manifests ``(digest, size)``."""
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": d,
                    "size": size,
                    "platform": {"architecture": arch, "os": "linux"},
                }
                for (d, size), arch in zip(manifests, ["amd64", "arm64"], strict=False)
            ],
        },
        separators=(",", ":"),
    ).encode()
    return put_manifest(url, repository, tag, body, OCI_INDEX, auth), body


def raw_manifest(
    url: str, repository: str, reference: str, auth: Auth = None
) -> tuple[bytes, requests.structures.CaseInsensitiveDict[str]]:
    resp = requests.get(
        f"http://{url}/v2/{repository}/manifests/{reference}",
        headers={"Accept": ACCEPT},
        auth=auth,
        timeout=10,
    )
    assert resp.status_code == 200, resp.text
    return resp.content, resp.headers


def tags(url: str, repository: str, auth: Auth = None) -> list[str]:
    resp = requests.get(f"http://{url}/v2/{repository}/tags/list", auth=auth, timeout=10)
    if resp.status_code == 404:
        return []
    assert resp.status_code == 200, resp.text
    return list(resp.json().get("tags") or [])


def image_config(url: str, repository: str, reference: str) -> dict[str, Any]:
    """The image config blob (labels, created, ...) of a single-platform image."""
    body, _ = raw_manifest(url, repository, reference)
    digest = json.loads(body)["config"]["digest"]
    resp = requests.get(f"http://{url}/v2/{repository}/blobs/{digest}", timeout=10)
    assert resp.status_code == 200, resp.text
    assert sha256(resp.content) == digest
    config: dict[str, Any] = resp.json()
    return config
