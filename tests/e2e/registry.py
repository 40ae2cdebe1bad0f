"""A small OCI distribution (v2) registry for the end-to-end tests, over plain HTTP.

Serves `GET /v2/`, manifests by tag or digest and blobs by digest (GET and HEAD), with the
distribution spec's JSON errors (`MANIFEST_UNKNOWN`, `BLOB_UNKNOWN`, `UNAUTHORIZED`) and, when
users are given, HTTP basic authentication on every route (`WWW-Authenticate: Basic`). Content is
put in by the test: blobs, manifests (with their media type) and tags, or whole OCI image layouts
as `scripts/build-busybox-image.py` writes them. Every request is logged (method, path, status) so
tests can tell whether the agent pulled and what it fetched. Pushing is not supported.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"

ROUTE = re.compile(r"^/v2/(?P<name>.+)/(?P<kind>manifests|blobs)/(?P<ref>[^/]+)$")


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Registry:
    """The registry's content and its HTTP server (started with `start`, stopped with `stop`)."""

    def __init__(self, host: str, users: dict[str, str] | None = None) -> None:
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[str, dict[str, tuple[str, bytes]]] = {}  # repo -> digest -> (type, body)
        self.tags: dict[str, dict[str, str]] = {}  # repo -> tag -> digest
        self.users = users or {}
        self.log: list[tuple[str, str, int]] = []
        self.lock = threading.Lock()
        registry = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                registry.handle(self, head=False)

            def do_HEAD(self) -> None:
                registry.handle(self, head=True)

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.host = f"{host}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> "Registry":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- content ------------------------------------------------------------------------------

    def put_blob(self, data: bytes) -> str:
        d = digest(data)
        with self.lock:
            self.blobs[d] = data
        return d

    def put_manifest(self, repo: str, body: bytes, media_type: str, tag: str | None = None) -> str:
        d = digest(body)
        with self.lock:
            self.manifests.setdefault(repo, {})[d] = (media_type, body)
            if tag:
                self.tags.setdefault(repo, {})[tag] = d
        return d

    def tag(self, repo: str, tag: str, manifest_digest: str) -> None:
        with self.lock:
            self.tags.setdefault(repo, {})[tag] = manifest_digest

    def load_oci_layout(self, path: str, repo: str, tag: str) -> str:
        """Puts every blob of an OCI-layout tarball in, and tags its first manifest. Returns the
        manifest digest."""
        with tarfile.open(path) as tar:
            index = None
            for member in tar.getmembers():
                if not member.isfile():
                    continue
                data = tar.extractfile(member).read()
                if member.name == "index.json":
                    index = json.loads(data)
                elif member.name.startswith("blobs/sha256/"):
                    self.put_blob(data)
        assert index is not None, f"{path} is not an OCI image layout"
        manifest_digest = index["manifests"][0]["digest"]
        with self.lock:
            body = self.blobs[manifest_digest]
        return self.put_manifest(repo, body, OCI_MANIFEST, tag)

    def manifest(self, repo: str, ref: str) -> dict:
        with self.lock:
            d = self.tags.get(repo, {}).get(ref, ref)
            return json.loads(self.manifests[repo][d][1])

    def requests(self, since: int = 0, path_part: str = "") -> list[tuple[str, str, int]]:
        with self.lock:
            return [r for r in self.log[since:] if path_part in r[1]]

    # --- HTTP ---------------------------------------------------------------------------------

    def _authorized(self, handler: BaseHTTPRequestHandler) -> bool:
        if not self.users:
            return True
        header = handler.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return self.users.get(user) == password

    def _send(self, handler, status: int, body: bytes, head: bool, headers: dict[str, str] | None = None) -> None:
        with self.lock:
            self.log.append((handler.command, handler.path, status))
        handler.send_response(status)
        for k, v in (headers or {}).items():
            handler.send_header(k, v)
        handler.send_header("Content-Length", str(len(body)))
        handler.send_header("Docker-Distribution-API-Version", "registry/2.0")
        handler.end_headers()
        if not head:
            handler.wfile.write(body)

    def _error(self, handler, status: int, code: str, message: str, head: bool, headers=None) -> None:
        body = json.dumps({"errors": [{"code": code, "message": message, "detail": None}]}).encode()
        self._send(handler, status, body, head, {"Content-Type": "application/json", **(headers or {})})

    def handle(self, handler: BaseHTTPRequestHandler, head: bool) -> None:
        path = handler.path.split("?", 1)[0]
        if not self._authorized(handler):
            self._error(handler, 401, "UNAUTHORIZED", "authentication required", head,
                        {"WWW-Authenticate": 'Basic realm="skiff-e2e-registry"'})
            return
        if path in ("/v2", "/v2/"):
            self._send(handler, 200, b"{}", head, {"Content-Type": "application/json"})
            return
        m = ROUTE.match(path)
        if not m:
            self._error(handler, 404, "NOT_FOUND", "not found", head)
            return
        name, kind, ref = m["name"], m["kind"], m["ref"]
        with self.lock:
            if kind == "manifests":
                d = self.tags.get(name, {}).get(ref, ref)
                found = self.manifests.get(name, {}).get(d)
            else:
                d, found = ref, self.blobs.get(ref)
        if found is None:
            if kind == "manifests":
                self._error(handler, 404, "MANIFEST_UNKNOWN", "manifest unknown", head)
            else:
                self._error(handler, 404, "BLOB_UNKNOWN", "blob unknown to registry", head)
            return
        if kind == "manifests":
            media_type, body = found
            self._send(handler, 200, body, head, {"Content-Type": media_type, "Docker-Content-Digest": d})
        else:
            self._send(handler, 200, found, head,
                       {"Content-Type": "application/octet-stream", "Docker-Content-Digest": d})


def derived_image(registry: Registry, base_manifest: dict, repo: str, tag: str | None, *,
                  label: str = "", media_type: str = OCI_MANIFEST) -> str:
    """A new image sharing `base_manifest`'s layers with a changed config (an extra env var
    `SKIFF_E2E=<label>`), stored under `repo` (and `tag`). With the Docker media type the
    manifest and its descriptors use Docker's schema 2 types. Returns the manifest digest."""
    config = json.loads(registry.blobs[base_manifest["config"]["digest"]])
    config.setdefault("config", {}).setdefault("Env", []).append(f"SKIFF_E2E={label}")
    config_bytes = json.dumps(config, sort_keys=True).encode()
    config_digest = registry.put_blob(config_bytes)
    docker = media_type == DOCKER_MANIFEST
    layers = [
        {**layer, "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip" if docker else layer["mediaType"]}
        for layer in base_manifest["layers"]
    ]
    manifest = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json" if docker
            else "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": len(config_bytes),
        },
        "layers": layers,
    }
    return registry.put_manifest(repo, json.dumps(manifest).encode(), media_type, tag)


def index_of(registry: Registry, repo: str, tag: str, entries: list[tuple[str, str, str]],
             media_type: str = OCI_INDEX) -> str:
    """An image index (or Docker manifest list) under `repo:tag` listing (digest, os, arch)."""
    manifests = [
        {"mediaType": DOCKER_MANIFEST if media_type == DOCKER_LIST else OCI_MANIFEST, "digest": d, "size": 1,
         "platform": {"os": os_, "architecture": arch}}
        for d, os_, arch in entries
    ]
    body = json.dumps({"schemaVersion": 2, "mediaType": media_type, "manifests": manifests}).encode()
    return registry.put_manifest(repo, body, media_type, tag)
