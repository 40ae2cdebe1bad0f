"""Registry pulls end to end: a `skiff server` with its agent pulling from local registries
(`registry.py`, plain HTTP on the host side of the test's network namespace) seeded with the
busybox image `scripts/build-busybox-image.py` builds. The node starts with no image at all.

One registry is open and reached through `--insecure-registry`; the other requires basic
authentication and is declared plain-HTTP through `<data-dir>/agent/registries.yaml`. Checked:
pulls by tag, by digest, through an image index and of Docker schema 2 manifests, the pull
policies, pull secrets (the pod's and its service account's), failures with the registry's
message and the kubelet's back-off, the events `kubectl describe` shows, the Node's
`status.images`, and image garbage collection on a cluster whose thresholds make it collect."""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import SKIFF_BIN, Cluster, Netns, build_busybox, eventually, have_kubectl, run, stop_agent_cluster, unique
from registry import DOCKER_LIST, DOCKER_MANIFEST, Registry, derived_image, index_of

NODE = "e2e-pull"
USER, PASSWORD = "puller", "s3cret"
ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
PULLED = re.compile(
    r'^Successfully pulled image "(?P<image>[^"]+)" in [0-9.]+(?:ms|s) \([0-9.]+(?:ms|s) including waiting\)\. '
    r"Image size: (?P<size>\d+) bytes\.$"
)


@dataclass
class Env:
    cluster: Cluster
    registry: Registry
    private: Registry
    base: str  # manifest digest of library/busybox:1.0
    base_manifest: dict

    def image(self, path: str) -> str:
        return f"{self.registry.host}/{path}"


@pytest.fixture(scope="module")
def env():
    if os.geteuid() != 0:
        pytest.skip("the agent needs root")
    workdir = Path(tempfile.mkdtemp(prefix="skiff-e2e-pull."))
    tar = build_busybox(workdir / "busybox.tar")
    netns = Netns()
    registry = Registry(netns.host_ip).start()
    private = Registry(netns.host_ip, users={USER: PASSWORD}).start()
    base = registry.load_oci_layout(str(tar), "library/busybox", "1.0")
    private.load_oci_layout(str(tar), "private/busybox", "1.0")
    agent_dir = workdir / "data" / "agent"
    agent_dir.mkdir(parents=True)
    (agent_dir / "registries.yaml").write_text(
        f'mirrors:\n  "{private.host}":\n    endpoint:\n      - "http://{private.host}"\n')
    c = Cluster(workdir, netns, agent=True, node_name=NODE, extra_args=["--insecure-registry", registry.host])
    try:
        c.start()
        yield Env(c, registry, private, base, registry.manifest("library/busybox", "1.0"))
    finally:
        try:
            stop_agent_cluster(c, netns, workdir)
        finally:
            registry.stop()
            private.stop()


@pytest.fixture
def ns(env):
    name = unique("pull")
    env.cluster.kubectl("create", "namespace", name)
    yield name
    env.cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def kubectl(env: Env, ns: str, *args: str, version: str = "1.32", **kw) -> subprocess.CompletedProcess:
    return env.cluster.kubectl("-n", ns, *args, version=version, **kw)


def create_pod(env: Env, ns: str, name: str, image: str, policy: str | None = None, command: str = "echo ok",
               **spec) -> None:
    container = {"name": "main", "image": image, "command": ["sh", "-c", command]}
    if policy:
        container["imagePullPolicy"] = policy
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
           "spec": {"nodeName": NODE, "restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
                    "containers": [container], **spec}}
    kubectl(env, ns, "apply", "-f", "-", input=json.dumps(pod))


def get_pod(env: Env, ns: str, name: str) -> dict:
    return json.loads(kubectl(env, ns, "get", "pod", name, "-o", "json").stdout)


def succeeded(env: Env, ns: str, name: str) -> dict:
    def done():
        pod = get_pod(env, ns, name)
        return pod if pod.get("status", {}).get("phase") == "Succeeded" else None
    return eventually(done, timeout=90, what=f"pod {name} Succeeded")


def waiting_with(env: Env, ns: str, name: str, reason: str, timeout: float = 60) -> dict:
    def check():
        statuses = get_pod(env, ns, name).get("status", {}).get("containerStatuses") or [{}]
        w = statuses[0].get("state", {}).get("waiting") or {}
        return w if w.get("reason") == reason else None
    return eventually(check, timeout=timeout, what=f"{name} waiting with {reason}")


def events(env: Env, ns: str, name: str) -> list[tuple[str, str]]:
    items = json.loads(kubectl(env, ns, "get", "events", "-o", "json").stdout)["items"]
    return [(e["reason"], e.get("message", "")) for e in items if e["involvedObject"].get("name") == name]


def image_id(pod: dict) -> str:
    return pod["status"]["containerStatuses"][0]["imageID"]


def test_pull_by_tag_reports_events_and_node_images(env, ns):
    image = env.image("library/busybox:1.0")
    create_pod(env, ns, "by-tag", image, "IfNotPresent")
    pod = succeeded(env, ns, "by-tag")
    assert image_id(pod) == f"{env.registry.host}/library/busybox@{env.base}"

    evs = events(env, ns, "by-tag")
    assert ("Pulling", f'Pulling image "{image}"') in evs
    pulled = [PULLED.match(m) for r, m in evs if r == "Pulled"]
    assert pulled and pulled[0], evs
    size = int(pulled[0]["size"])
    m = env.base_manifest
    blobs = [m["config"]["digest"], *(layer["digest"] for layer in m["layers"])]
    expected = len(env.registry.manifests["library/busybox"][env.base][1]) + sum(len(env.registry.blobs[b]) for b in blobs)
    assert size == expected

    def node_lists_it():
        node = json.loads(env.cluster.kubectl("get", "node", NODE, "-o", "json").stdout)
        for entry in node["status"].get("images") or []:
            if image in entry["names"]:
                return entry
        return None
    entry = eventually(node_lists_it, timeout=40, what="status.images lists the image")
    assert entry["sizeBytes"] == size
    assert entry["names"][0] == f"{env.registry.host}/library/busybox@{env.base}"

    for version in ("1.32", "1.20"):
        if have_kubectl(version):
            text = kubectl(env, ns, "describe", "pod", "by-tag", version=version).stdout
            assert f'Successfully pulled image "{image}"' in text, text
            assert "Pulling" in text


def test_if_not_present_uses_the_local_image(env, ns):
    image = env.image("library/busybox:1.0")
    create_pod(env, ns, "first", image, "IfNotPresent")
    succeeded(env, ns, "first")
    mark = len(env.registry.log)
    create_pod(env, ns, "second", image, "IfNotPresent")
    succeeded(env, ns, "second")
    assert env.registry.requests(mark) == [], "no request reached the registry"
    assert ("Pulled", f'Container image "{image}" already present on machine') in events(env, ns, "second")


def test_pull_by_digest(env, ns):
    digest = derived_image(env.registry, env.base_manifest, "digest/busybox", None, label="digest")
    image = env.image(f"digest/busybox@{digest}")
    create_pod(env, ns, "by-digest", image)
    pod = succeeded(env, ns, "by-digest")
    assert pod["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    assert image_id(pod) == image
    assert ("Pulling", f'Pulling image "{image}"') in events(env, ns, "by-digest")
    assert env.registry.requests(0, f"/v2/digest/busybox/manifests/{digest}")


def test_index_and_docker_schema2_manifests(env, ns):
    native = derived_image(env.registry, env.base_manifest, "multi/busybox", None, label="multi")
    other = derived_image(env.registry, env.base_manifest, "multi/busybox", None, label="other-arch")
    index = index_of(env.registry, "multi/busybox", "1", [
        (other, "windows", ARCH),
        (other, "linux", "s390x" if ARCH != "s390x" else "arm64"),
        (native, "linux", ARCH),
    ])
    create_pod(env, ns, "indexed", env.image("multi/busybox:1"), "IfNotPresent")
    pod = succeeded(env, ns, "indexed")
    # The repository digest is the index's, as registries name multi-platform images.
    assert image_id(pod) == f"{env.registry.host}/multi/busybox@{index}"
    assert env.registry.requests(0, f"/v2/multi/busybox/manifests/{native}")
    assert not env.registry.requests(0, f"/v2/multi/busybox/manifests/{other}")

    docker = derived_image(env.registry, env.base_manifest, "docker/busybox", None, label="docker",
                           media_type=DOCKER_MANIFEST)
    index_of(env.registry, "docker/busybox", "1", [(docker, "linux", ARCH)], media_type=DOCKER_LIST)
    create_pod(env, ns, "docker", env.image("docker/busybox:1"), "IfNotPresent", command="echo $SKIFF_E2E")
    pod = succeeded(env, ns, "docker")
    assert image_id(pod).startswith(f"{env.registry.host}/docker/busybox@sha256:")


def test_always_repulls_when_the_tag_moves(env, ns):
    first = derived_image(env.registry, env.base_manifest, "moving/app", "latest", label="first")
    image = env.image("moving/app")  # no tag: latest, so the API server defaults Always
    create_pod(env, ns, "before", image)
    pod = succeeded(env, ns, "before")
    assert pod["spec"]["containers"][0]["imagePullPolicy"] == "Always"
    assert image_id(pod).endswith(first)

    second = derived_image(env.registry, env.base_manifest, "moving/app", "latest", label="second")
    mark = len(env.registry.log)
    create_pod(env, ns, "after", image)
    pod = succeeded(env, ns, "after")
    assert image_id(pod).endswith(second)
    blob_gets = [p for m, p, s in env.registry.requests(mark, "/blobs/") if m == "GET"]
    second_config = env.registry.manifest("moving/app", second)["config"]["digest"]
    assert blob_gets == [f"/v2/moving/app/blobs/{second_config}"], "only the new config is downloaded"

    # Unchanged tag: Always still asks the registry, and downloads nothing.
    mark = len(env.registry.log)
    create_pod(env, ns, "again", image)
    pod = succeeded(env, ns, "again")
    assert image_id(pod).endswith(second)
    assert env.registry.requests(mark, "/manifests/latest")
    assert not env.registry.requests(mark, "/blobs/")
    assert ("Pulling", f'Pulling image "{image}"') in events(env, ns, "again")


def test_concurrent_pulls_download_each_blob_once(env, ns):
    digest = derived_image(env.registry, env.base_manifest, "shared/app", "1", label="shared")
    config = env.registry.manifest("shared/app", digest)["config"]["digest"]
    image = env.image("shared/app:1")
    pods = [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"p{i}"},
             "spec": {"nodeName": NODE, "restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
                      "containers": [{"name": "main", "image": image, "imagePullPolicy": "IfNotPresent",
                                      "command": ["sh", "-c", "echo ok"]}]}} for i in range(3)]
    kubectl(env, ns, "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": pods}))
    for i in range(3):
        assert image_id(succeeded(env, ns, f"p{i}")).endswith(digest)
    gets = [p for m, p, _ in env.registry.requests(0, f"/v2/shared/app/blobs/{config}") if m == "GET"]
    assert len(gets) == 1, gets


def test_never_without_the_image(env, ns):
    image = env.image("absent/app:1")
    create_pod(env, ns, "never", image, "Never")
    w = waiting_with(env, ns, "never", "ErrImageNeverPull")
    assert w["message"] == f'Container image "{image}" is not present with pull policy of Never'
    assert not env.registry.requests(0, "/absent/")
    reasons = {r for r, _ in events(env, ns, "never")}
    assert {"ErrImageNeverPull", "Failed"} <= reasons


def test_missing_image_fails_then_backs_off(env, ns):
    image = env.image("library/busybox:nope")
    create_pod(env, ns, "missing", image, "IfNotPresent")
    w = waiting_with(env, ns, "missing", "ErrImagePull")
    assert w["message"].startswith(f'failed to pull and unpack image "{image}": failed to resolve reference'), w
    assert "MANIFEST_UNKNOWN: manifest unknown" in w["message"]

    w = waiting_with(env, ns, "missing", "ImagePullBackOff")
    assert w["message"].startswith(f'Back-off pulling image "{image}": ErrImagePull: failed to pull and unpack'), w
    assert "MANIFEST_UNKNOWN" in w["message"]

    evs = events(env, ns, "missing")
    messages = [m for _, m in evs]
    assert f'Pulling image "{image}"' in messages
    assert any(r == "Failed" and m.startswith(f'Failed to pull image "{image}": failed to pull and unpack')
               for r, m in evs), evs
    assert ("Failed", "Error: ErrImagePull") in evs
    assert ("BackOff", f'Back-off pulling image "{image}"') in evs
    assert ("Failed", "Error: ImagePullBackOff") in evs
    # The back-off ends (10 s) and the agent tries again.
    eventually(lambda: len(env.registry.requests(0, "/v2/library/busybox/manifests/nope")) >= 2, timeout=40,
               what="a second pull attempt")


def test_pull_secret_on_the_pod(env, ns, kubectl_version):
    tag = unique("t")
    derived_image(env.private, env.base_manifest, "private/busybox", tag, label=tag)
    image = f"{env.private.host}/private/busybox:{tag}"

    create_pod(env, ns, "anonymous", image, "IfNotPresent")
    w = waiting_with(env, ns, "anonymous", "ErrImagePull")
    assert "401 Unauthorized" in w["message"], w

    kubectl(env, ns, "create", "secret", "docker-registry", "regcred", f"--docker-server={env.private.host}",
            f"--docker-username={USER}", f"--docker-password={PASSWORD}", version=kubectl_version)
    create_pod(env, ns, "with-secret", image, "IfNotPresent", imagePullSecrets=[{"name": "regcred"}])
    pod = succeeded(env, ns, "with-secret")
    assert image_id(pod).startswith(f"{env.private.host}/private/busybox@sha256:")


def test_pull_secret_of_the_service_account_and_missing_secrets(env, ns):
    tag = unique("t")
    derived_image(env.private, env.base_manifest, "private/busybox", tag, label=tag)
    image = f"{env.private.host}/private/busybox:{tag}"
    auth = {"auths": {f"http://{env.private.host}/v2/": {"auth": __import__("base64").b64encode(
        f"{USER}:{PASSWORD}".encode()).decode()}}}
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "fromsa"},
              "type": "kubernetes.io/dockerconfigjson",
              "stringData": {".dockerconfigjson": json.dumps(auth)}}
    account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "builder"},
               "imagePullSecrets": [{"name": "absent"}, {"name": "fromsa"}]}
    kubectl(env, ns, "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                          "items": [secret, account]}))
    create_pod(env, ns, "via-sa", image, "IfNotPresent", serviceAccountName="builder")
    succeeded(env, ns, "via-sa")
    evs = events(env, ns, "via-sa")
    assert ("FailedToRetrieveImagePullSecret",
            "Unable to retrieve some image pull secrets (absent); attempting to pull the image may not succeed.") in evs


def test_image_gc_frees_unused_images(tmp_path):
    """A cluster whose thresholds are always crossed collects every unused image at its first
    collection and says on the Node that it could not free enough."""
    if os.geteuid() != 0:
        pytest.skip("the agent needs root")
    images = tmp_path / "data" / "agent" / "images"
    images.mkdir(parents=True)
    build_busybox(images / "busybox.tar")
    netns = Netns()
    c = Cluster(tmp_path, netns, agent=True, node_name="e2e-gc",
                extra_args=["--image-gc-high-threshold", "1", "--image-gc-low-threshold", "0"])
    try:
        c.start()

        def gc_event():
            out = c.kubectl("get", "events", "-n", "default", "-o", "json").stdout
            found = [e for e in json.loads(out)["items"] if e["reason"] == "FreeDiskSpaceFailed"]
            return found[0] if found else None
        ev = eventually(gc_event, timeout=60, what="FreeDiskSpaceFailed event")
        assert ev["involvedObject"]["kind"] == "Node" and ev["involvedObject"]["name"] == "e2e-gc"
        assert ev["message"].startswith("Failed to garbage collect required amount of images. Attempted to free ")
        listed = run(SKIFF_BIN, "images", "--data-dir", str(c.data_dir), "ls").stdout
        assert "busybox" not in listed, listed
        blobs = c.data_dir / "agent" / "images" / "blobs" / "sha256"
        assert not any(blobs.iterdir()), "the image's blobs went with it"
    finally:
        c.stop()
        netns.delete()
