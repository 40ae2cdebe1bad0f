"""ServiceAccount tokens end to end: `kubectl create token` (1.32; 1.20 has no such command),
requests authenticated by those tokens, TokenReview through the Python client, `kubectl auth
whoami`, the OIDC discovery documents verifying a token's signature (with `openssl`), token
binding to Secrets and revocation, the ServiceAccount admission plugin, and pods on an agent
cluster running the Python client's `load_incluster_config()` and kube-rs's
`Client::try_default()` (`crates/skiff/examples/incluster.rs`) with the projected token and CA."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import tempfile
from pathlib import Path

import pytest
from kubernetes import client as k8s

from conftest import Cluster, eventually, have_kubectl, running_agent_cluster, unique

V132 = "1.32"


def b64url(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def claims_of(token: str) -> dict:
    return json.loads(b64url(token.split(".")[1]))


def need_132():
    if not have_kubectl(V132):
        pytest.skip("kubectl 1.32 not available")


def create_token(cluster: Cluster, ns: str, sa: str, *args: str) -> str:
    return cluster.kubectl("-n", ns, "create", "token", sa, *args, version=V132).stdout.strip()


def token_kubeconfig(cluster: Cluster, token: str, workdir: Path) -> Path:
    """A kubeconfig with the server and CA of the cluster's and only `token` as credential."""
    admin = cluster.python_client().configuration
    path = workdir / f"kc-{unique('t')}.yaml"
    ca = Path(admin.ssl_ca_cert).read_bytes()
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "t",
        "clusters": [{"name": "c", "cluster": {"server": admin.host,
                                               "certificate-authority-data": base64.b64encode(ca).decode()}}],
        "users": [{"name": "u", "user": {"token": token}}],
        "contexts": [{"name": "t", "context": {"cluster": "c", "user": "u"}}],
    }))
    return path


def token_client(cluster: Cluster, token: str) -> k8s.ApiClient:
    admin = cluster.python_client().configuration
    cfg = k8s.Configuration()
    cfg.host = admin.host
    cfg.ssl_ca_cert = admin.ssl_ca_cert
    cfg.api_key = {"authorization": token}
    cfg.api_key_prefix = {"authorization": "Bearer"}
    return k8s.ApiClient(cfg)


def review(api_client, token: str, audiences=None):
    body = k8s.V1TokenReview(spec=k8s.V1TokenReviewSpec(token=token, audiences=audiences))
    return k8s.AuthenticationV1Api(api_client).create_token_review(body).status


def grant_pod_list(cluster: Cluster, ns: str, sa: str) -> None:
    """Rights the tests need once RBAC enforces (harmless before)."""
    cluster.kubectl("-n", ns, "create", "role", "pod-reader", "--verb=get,list", "--resource=pods")
    cluster.kubectl("-n", ns, "create", "rolebinding", "pod-reader", "--role=pod-reader",
                    f"--serviceaccount={ns}:{sa}")


@pytest.fixture
def sa(cluster, namespace):
    cluster.kubectl("-n", namespace, "create", "serviceaccount", "robot")
    return "robot"


def test_create_token_authenticates_as_the_service_account(cluster, namespace, sa, api_client, tmp_path):
    need_132()
    token = create_token(cluster, namespace, sa, "--duration=15m")
    c = claims_of(token)
    uid = cluster.kubectl_json("-n", namespace, "get", "serviceaccount", sa)["metadata"]["uid"]
    assert c["sub"] == f"system:serviceaccount:{namespace}:{sa}"
    assert c["iss"] == "https://kubernetes.default.svc.cluster.local"
    assert c["aud"] == ["https://kubernetes.default.svc.cluster.local"]
    assert c["exp"] - c["iat"] == 900 and c["nbf"] == c["iat"]
    assert c["kubernetes.io"]["serviceaccount"] == {"name": sa, "uid": uid}
    assert json.loads(b64url(token.split(".")[0]))["alg"] == "ES256"

    grant_pod_list(cluster, namespace, sa)
    pods = k8s.CoreV1Api(token_client(cluster, token)).list_namespaced_pod(namespace)
    assert pods.items == []

    # kubectl auth whoami with only the token.
    kc = token_kubeconfig(cluster, token, tmp_path)
    who = json.loads(subprocess.run(
        [cluster.kubectl_cmd(version=V132)[0], "--kubeconfig", str(kc), "auth", "whoami", "-o", "json"],
        check=True, capture_output=True, text=True).stdout)
    info = who["status"]["userInfo"]
    assert info["username"] == f"system:serviceaccount:{namespace}:{sa}"
    assert info["uid"] == uid
    assert set(info["groups"]) == {"system:serviceaccounts", f"system:serviceaccounts:{namespace}",
                                   "system:authenticated"}
    assert info["extra"]["authentication.kubernetes.io/credential-id"] == [f"JTI={c['jti']}"]

    # TokenReview through the Python client (as admin).
    st = review(api_client, token)
    assert st.authenticated is True
    assert st.user.username == f"system:serviceaccount:{namespace}:{sa}"
    assert st.audiences == ["https://kubernetes.default.svc.cluster.local"]

    # Deleting the ServiceAccount revokes the token.
    cluster.kubectl("-n", namespace, "delete", "serviceaccount", sa)
    eventually(lambda: review(api_client, token).authenticated is not True, timeout=10, what="token revoked")
    with pytest.raises(k8s.ApiException) as e:
        k8s.CoreV1Api(token_client(cluster, token)).list_namespaced_pod(namespace)
    assert e.value.status == 401


def test_audiences_durations_and_garbage(cluster, namespace, sa, api_client):
    need_132()
    vault = create_token(cluster, namespace, sa, "--audience=vault", "--duration=1h")
    assert claims_of(vault)["aud"] == ["vault"]
    st = review(api_client, vault)
    assert not st.authenticated
    assert "invalid for the target audiences" in st.error
    st = review(api_client, vault, audiences=["vault", "other"])
    assert st.authenticated and st.audiences == ["vault"]
    with pytest.raises(k8s.ApiException) as e:
        k8s.CoreV1Api(token_client(cluster, vault)).list_namespaced_pod(namespace)
    assert e.value.status == 401

    r = cluster.kubectl("-n", namespace, "create", "token", sa, "--duration=5m", version=V132, check=False)
    assert r.returncode != 0
    assert "spec.expirationSeconds: Invalid value: 300: may not specify a duration less than 10 minutes" in r.stderr
    r = cluster.kubectl("-n", namespace, "create", "token", "ghost", version=V132, check=False)
    assert 'serviceaccounts "ghost" not found' in r.stderr

    # Forged: a valid token with its payload swapped, alg none, garbage.
    good = create_token(cluster, namespace, sa)
    h, p, s = good.split(".")
    evil = json.dumps({**claims_of(good), "sub": "system:admin"}).encode()
    forged = f"{h}.{base64.urlsafe_b64encode(evil).decode().rstrip('=')}.{s}"
    none = base64.urlsafe_b64encode(b'{"alg":"none"}').decode().rstrip("=") + f".{p}."
    for bad in (forged, none, "not-a-token"):
        assert review(api_client, bad).authenticated is not True
        with pytest.raises(k8s.ApiException) as e:
            k8s.CoreV1Api(token_client(cluster, bad)).list_namespaced_pod(namespace)
        assert e.value.status == 401


def test_secret_bound_token_lives_with_its_secret(cluster, namespace, sa, api_client):
    need_132()
    cluster.kubectl("-n", namespace, "create", "secret", "generic", "anchor", "--from-literal=a=b")
    token = create_token(cluster, namespace, sa, "--bound-object-kind=Secret", "--bound-object-name=anchor")
    uid = cluster.kubectl_json("-n", namespace, "get", "secret", "anchor")["metadata"]["uid"]
    assert claims_of(token)["kubernetes.io"]["secret"] == {"name": "anchor", "uid": uid}
    assert review(api_client, token).authenticated is True
    r = cluster.kubectl("-n", namespace, "create", "token", sa, "--bound-object-kind=Secret",
                        "--bound-object-name=anchor", "--bound-object-uid=wrong", version=V132, check=False)
    assert "the UID in the bound object reference (wrong) does not match the UID in record" in r.stderr
    r = cluster.kubectl("-n", namespace, "create", "token", sa, "--bound-object-kind=Pod",
                        "--bound-object-name=nope", version=V132, check=False)
    assert 'pods "nope" not found' in r.stderr
    cluster.kubectl("-n", namespace, "delete", "secret", "anchor")
    eventually(lambda: review(api_client, token).authenticated is not True, timeout=10, what="token revoked")


def test_oidc_documents_verify_the_token(cluster, namespace, sa, tmp_path):
    need_132()
    token = create_token(cluster, namespace, sa)
    api = token_client(cluster, token)

    def get(path):
        resp = api.rest_client.request("GET", api.configuration.host + path,
                                       headers={"Authorization": f"Bearer {token}"})
        assert resp.status == 200
        return json.loads(resp.data if resp.data is not None else resp.read())

    conf = get("/.well-known/openid-configuration")
    assert conf["issuer"] == "https://kubernetes.default.svc.cluster.local"
    assert conf["jwks_uri"].endswith("/openid/v1/jwks")
    assert conf["id_token_signing_alg_values_supported"] == ["ES256"]
    jwks = get("/openid/v1/jwks")
    (key,) = jwks["keys"]
    header = json.loads(b64url(token.split(".")[0]))
    assert key["kid"] == header["kid"] and key["kty"] == "EC" and key["crv"] == "P-256"
    # Verify the ES256 signature with openssl from the JWK alone.
    spki = bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d030107034200") + b"\x04" + b64url(key["x"]) + b64url(key["y"])
    pem = tmp_path / "pub.pem"
    pem.write_text("-----BEGIN PUBLIC KEY-----\n" + base64.encodebytes(spki).decode() + "-----END PUBLIC KEY-----\n")
    sig = b64url(token.split(".")[2])

    def der_int(b: bytes) -> bytes:
        b = b.lstrip(b"\x00") or b"\x00"
        if b[0] & 0x80:
            b = b"\x00" + b
        return b"\x02" + bytes([len(b)]) + b

    body = der_int(sig[:32]) + der_int(sig[32:])
    (tmp_path / "sig.der").write_bytes(b"\x30" + bytes([len(body)]) + body)
    signed = ".".join(token.split(".")[:2])
    (tmp_path / "msg").write_text(signed)
    r = subprocess.run(["openssl", "dgst", "-sha256", "-verify", str(pem), "-signature", str(tmp_path / "sig.der"),
                        str(tmp_path / "msg")], capture_output=True, text=True)
    assert "Verified OK" in r.stdout, r.stdout + r.stderr
    (tmp_path / "msg").write_text(signed + "x")
    r = subprocess.run(["openssl", "dgst", "-sha256", "-verify", str(pem), "-signature", str(tmp_path / "sig.der"),
                        str(tmp_path / "msg")], capture_output=True, text=True)
    assert "Verified OK" not in r.stdout


def test_self_subject_review_as_admin(cluster):
    need_132()  # kubectl 1.20 has no `auth whoami`
    who = cluster.kubectl_json("auth", "whoami", version=V132)
    assert who["kind"] == "SelfSubjectReview"
    assert "system:authenticated" in who["status"]["userInfo"]["groups"]


def test_admission_defaults_the_service_account_and_mounts_the_token(cluster, namespace, sa):
    def pod(name, **spec):
        return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                           "spec": {"containers": [{"name": "c", "image": "busybox"}],
                                    "initContainers": [{"name": "i", "image": "busybox"}], **spec}})

    eventually(lambda: cluster.kubectl("-n", namespace, "get", "sa", "default", check=False).returncode == 0,
               timeout=30, what="default ServiceAccount")
    cluster.kubectl("-n", namespace, "create", "-f", "-", input=pod("plain"))
    p = cluster.kubectl_json("-n", namespace, "get", "pod", "plain")
    assert p["spec"]["serviceAccountName"] == "default"
    (vol,) = [v for v in p["spec"]["volumes"] if v["name"].startswith("kube-api-access-")]
    assert len(vol["name"]) == len("kube-api-access-") + 5
    src = vol["projected"]
    assert src["defaultMode"] == 420
    assert src["sources"][0] == {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}}
    assert src["sources"][1]["configMap"]["name"] == "kube-root-ca.crt"
    assert src["sources"][2]["downwardAPI"]["items"][0]["fieldRef"]["fieldPath"] == "metadata.namespace"
    mount = {"name": vol["name"], "readOnly": True, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}
    assert mount in p["spec"]["containers"][0]["volumeMounts"]
    assert mount in p["spec"]["initContainers"][0]["volumeMounts"]

    cluster.kubectl("-n", namespace, "create", "-f", "-", input=pod("quiet", automountServiceAccountToken=False,
                                                                    serviceAccountName=sa))
    p = cluster.kubectl_json("-n", namespace, "get", "pod", "quiet")
    assert not any(v["name"].startswith("kube-api-access-") for v in p["spec"].get("volumes", []))

    r = cluster.kubectl("-n", namespace, "create", "-f", "-", input=pod("lost", serviceAccountName="ghost"),
                        check=False)
    assert r.returncode != 0
    assert (f'pods "lost" is forbidden: error looking up service account {namespace}/ghost: '
            'serviceaccount "ghost" not found') in r.stderr
    cluster.kubectl("-n", namespace, "delete", "pods", "--all", "--grace-period=0", "--force", check=False)


NODE = "e2e-tokens"
VENV = "/opt/skiff-tools/venv"
IN_POD = r"""
import json, os
from kubernetes import client, config
config.load_incluster_config()
ns = open("/var/run/secrets/kubernetes.io/serviceaccount/namespace").read()
pods = client.CoreV1Api().list_namespaced_pod(ns)
who = client.AuthenticationV1Api().create_self_subject_review(client.V1SelfSubjectReview())
try:
    client.CoreV1Api().list_namespaced_pod("kube-system")
    system = {"code": 200}
except client.ApiException as e:
    system = {"code": e.status, "message": json.loads(e.body)["message"]}
print("RESULT " + json.dumps({"pods": [p.metadata.name for p in pods.items],
                              "user": who.status.user_info.username,
                              "extra": who.status.user_info.extra, "kube_system": system}))
"""


def incluster_binary() -> Path:
    """The kube-rs in-cluster client (`crates/skiff/examples/incluster.rs`), which
    scripts/e2e.sh builds next to the skiff binary."""
    path = Path(os.environ.get("SKIFF_INCLUSTER_BIN")
                or Path(os.environ["SKIFF_BIN"]).parent / "examples" / "incluster")
    assert path.is_file(), f"{path} is missing: build it with cargo build --release --example incluster"
    return path


def forbidden_in_kube_system(ns: str) -> str:
    return (f'pods is forbidden: User "system:serviceaccount:{ns}:default" cannot list resource "pods" '
            'in API group "" in the namespace "kube-system"')


@pytest.fixture(scope="module")
def agent_cluster():
    with running_agent_cluster(NODE) as c:
        yield c


def run_in_pod(c, ns: str, name: str, command: list[str], extra_host: list[tuple[str, str]]) -> tuple[dict, dict]:
    """Runs `command` in a busybox pod with the host's libraries (and `extra_host` paths) mounted
    read-only; returns the finished pod and the JSON its `RESULT ` line carries."""
    host = [("usr", "/usr"), ("lib", "/lib"), ("lib64", "/lib64"), *extra_host]
    host = list({p: (n, p) for n, p in host}.values())
    host = [(n, p) for n, p in host if Path(p).exists()]
    manifest = {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {
            "nodeName": NODE, "restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
            "volumes": [{"name": n, "hostPath": {"path": p}} for n, p in host],
            "containers": [{
                "name": "main", "image": "busybox", "imagePullPolicy": "IfNotPresent", "command": command,
                "volumeMounts": [{"name": n, "mountPath": p, "readOnly": True} for n, p in host],
            }],
        },
    }
    c.kubectl("-n", ns, "create", "-f", "-", input=json.dumps(manifest))

    def finished():
        p = c.kubectl_json("-n", ns, "get", "pod", name)
        return p if p["status"].get("phase") in ("Succeeded", "Failed") else None

    pod = eventually(finished, timeout=120, what=f"in-cluster pod {name} finished")
    logs = c.kubectl("-n", ns, "logs", name).stdout
    assert pod["status"]["phase"] == "Succeeded", logs
    line = next(line for line in logs.splitlines() if line.startswith("RESULT "))
    return pod, json.loads(line[len("RESULT "):])


def test_in_cluster_clients_use_the_projected_token(agent_cluster):
    """The Python client's `load_incluster_config()` and kube-rs's `Client::try_default()` in a
    pod act with exactly their ServiceAccount's rights: its namespace's pods (a RoleBinding),
    not kube-system's (none)."""
    c = agent_cluster
    ns = unique("tokens")
    c.kubectl("create", "namespace", ns)
    try:
        eventually(lambda: c.kubectl("-n", ns, "get", "sa", "default", check=False).returncode == 0,
                   timeout=30, what="default ServiceAccount")
        grant_pod_list(c, ns, "default")
        # The venv's interpreter lives under its base prefix (e.g. a pyenv install): mount it too.
        base = subprocess.run([f"{VENV}/bin/python", "-c", "import sys; print(sys.base_prefix)"],
                              capture_output=True, text=True, check=True).stdout.strip()
        pod, result = run_in_pod(c, ns, "incluster", [f"{VENV}/bin/python", "-c", IN_POD],
                                 [("venv", VENV), ("base", base)])
        assert "incluster" in result["pods"]
        assert result["user"] == f"system:serviceaccount:{ns}:default"
        assert result["extra"]["authentication.kubernetes.io/pod-name"] == ["incluster"]
        assert result["extra"]["authentication.kubernetes.io/pod-uid"] == [pod["metadata"]["uid"]]
        assert result["extra"]["authentication.kubernetes.io/node-name"] == [NODE]
        assert result["kube_system"] == {"code": 403, "message": forbidden_in_kube_system(ns)}, result

        binary = incluster_binary()
        _, result = run_in_pod(c, ns, "kube-rs", [str(binary)], [("examples", str(binary.parent))])
        assert result["namespace"] == ns, result
        assert {"incluster", "kube-rs"} <= set(result["own"]["pods"]), result
        assert result["kube_system"] == {"code": 403, "message": forbidden_in_kube_system(ns)}, result
    finally:
        c.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_token_review_with_kubectl_create(cluster, namespace, sa, kubectl_version):
    """TokenReview posted by `kubectl create -f` (1.20 too) answers in the output object."""
    need_132()
    token = create_token(cluster, namespace, sa)
    body = json.dumps({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}})
    out = json.loads(cluster.kubectl("create", "-f", "-", "-o", "json", input=body, version=kubectl_version).stdout)
    assert out["status"]["authenticated"] is True
    assert out["status"]["user"]["username"] == f"system:serviceaccount:{namespace}:{sa}"
    body = json.dumps({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": "x.y.z"}})
    out = json.loads(cluster.kubectl("create", "-f", "-", "-o", "json", input=body, version=kubectl_version).stdout)
    assert not out["status"].get("authenticated")


def test_legacy_token_secret_is_filled_and_authenticates(cluster, namespace, sa, api_client):
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
              "metadata": {"name": "legacy", "annotations": {"kubernetes.io/service-account.name": sa}}}
    cluster.kubectl("-n", namespace, "create", "-f", "-", input=json.dumps(secret))

    def filled():
        s = cluster.kubectl_json("-n", namespace, "get", "secret", "legacy")
        return s if {"token", "ca.crt", "namespace"} <= set(s.get("data", {})) else None

    s = eventually(filled, timeout=30, what="legacy token secret filled")
    uid = cluster.kubectl_json("-n", namespace, "get", "serviceaccount", sa)["metadata"]["uid"]
    assert s["metadata"]["annotations"]["kubernetes.io/service-account.uid"] == uid
    assert base64.b64decode(s["data"]["namespace"]).decode() == namespace
    assert "BEGIN CERTIFICATE" in base64.b64decode(s["data"]["ca.crt"]).decode()
    token = base64.b64decode(s["data"]["token"]).decode()
    c = claims_of(token)
    assert c["iss"] == "kubernetes/serviceaccount"
    assert c["kubernetes.io/serviceaccount/secret.name"] == "legacy"
    assert "exp" not in c
    st = review(api_client, token)
    assert st.authenticated is True
    assert st.user.username == f"system:serviceaccount:{namespace}:{sa}"
    grant_pod_list(cluster, namespace, sa)
    assert k8s.CoreV1Api(token_client(cluster, token)).list_namespaced_pod(namespace).items == []
    cluster.kubectl("-n", namespace, "delete", "secret", "legacy")
    eventually(lambda: review(api_client, token).authenticated is not True, timeout=10, what="token revoked")


def test_legacy_token_secret_goes_with_its_service_account(cluster, namespace):
    cluster.kubectl("-n", namespace, "create", "serviceaccount", "doomed")
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
              "metadata": {"name": "doomed-token", "annotations": {"kubernetes.io/service-account.name": "doomed"}}}
    cluster.kubectl("-n", namespace, "create", "-f", "-", input=json.dumps(secret))
    # A token Secret naming a ServiceAccount that does not exist yet is left alone.
    waiting = dict(secret, metadata={"name": "waiting", "annotations": {"kubernetes.io/service-account.name": "later"}})
    cluster.kubectl("-n", namespace, "create", "-f", "-", input=json.dumps(waiting))

    def filled():
        s = cluster.kubectl_json("-n", namespace, "get", "secret", "doomed-token")
        return s if "token" in s.get("data", {}) else None

    eventually(filled, timeout=30, what="token secret filled")
    cluster.kubectl("-n", namespace, "delete", "serviceaccount", "doomed")

    def gone():
        r = cluster.kubectl("-n", namespace, "get", "secret", "doomed-token", check=False)
        return r.returncode != 0 and "NotFound" in r.stderr

    eventually(gone, timeout=30, what="token secret deleted with its service account")
    assert cluster.kubectl_json("-n", namespace, "get", "secret", "waiting")["metadata"]["name"] == "waiting"
