"""Any OCI distribution registry behind the Registry interface, over its HTTP API.

Manifests move byte for byte: the body a GET returns is the body a PUT sends, with the
Content-Type it came with, so the digest cannot change. Credentials come from Docker's own
configuration (``auths``, ``credHelpers``, ``credsStore``) and are answered to the registry's
challenge: HTTP basic, or the distribution spec's bearer-token flow (GHCR, Docker Hub).

Modules: ``endpoint`` (the registry's address, scheme and TLS rules), ``credentials`` (what
Docker's config holds for a registry), ``auth`` (answers to the registry's challenge: basic, or
a bearer token), ``transport`` (requests with retries, and errors in our words), ``registry``
(the Registry interface: manifests read and written byte for byte, tags, images).
"""
