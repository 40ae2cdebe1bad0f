"""RBAC end to end: the default roles (view/edit/admin/cluster-admin, aggregated), custom Roles,
`kubectl auth can-i` (plain, --list, --as, subresources, non-resource URLs) with kubectl 1.32 and
1.20, real requests of a user with a client certificate signed by the cluster CA (401 for a bad
token, 403 with the upstream message, 200 once bound), a binding to a missing role, escalation
prevention, impersonation without permission, and the Python client's SelfSubjectAccessReview."""

import base64
import json
import random
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from conftest import eventually, run, unique


def user_kubeconfig(cluster, name: str, groups: tuple[str, ...] = ()) -> Path:
    """A kubeconfig for `name` (groups as O=) with a certificate signed by the cluster CA."""
    tls = cluster.data_dir / "server" / "tls"
    d = cluster.workdir / f"user-{name}"
    d.mkdir(exist_ok=True)
    key, csr, crt = d / "key.pem", d / "req.csr", d / "crt.pem"
    subject = f"/CN={name}" + "".join(f"/O={g}" for g in groups)
    run("openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key))
    run("openssl", "req", "-new", "-key", str(key), "-subj", subject, "-out", str(csr))
    # Extensions make it an X.509 v3 certificate (rustls refuses v1 ones).
    ext = d / "ext.cnf"
    ext.write_text("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n")
    run("openssl", "x509", "-req", "-extfile", str(ext), "-in", str(csr), "-CA", str(tls / "ca.crt"), "-CAkey", str(tls / "ca.key"),
        "-set_serial", str(random.randint(1, 2**62)), "-days", "1", "-out", str(crt))
    cfg = yaml.safe_load(cluster.kubeconfig.read_text())
    for u in cfg["users"]:
        u["user"] = {
            "client-certificate-data": base64.b64encode(crt.read_bytes()).decode(),
            "client-key-data": base64.b64encode(key.read_bytes()).decode(),
        }
    path = d / "kubeconfig.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def as_user(cluster, kubeconfig: Path, *args: str, version: str = "1.32", check: bool = False):
    cmd = cluster.kubectl_cmd(*args, version=version)
    cmd[cmd.index("--kubeconfig") + 1] = str(kubeconfig)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed: {r.stderr}")
    return r


def can_i(k, *args: str) -> str:
    r = k("auth", "can-i", *args, check=False)
    return (r.stdout.strip() or r.stderr.strip())


def bind(k, name: str, role_kind: str, role: str, user: str) -> None:
    flag = "--clusterrole" if role_kind == "ClusterRole" else "--role"
    k("create", "rolebinding", name, f"{flag}={role}", f"--user={user}")


def test_default_roles_and_can_i(k):
    for role in ("view", "edit", "admin"):
        bind(k, f"b-{role}", "ClusterRole", role, f"{role}-user")
    # The aggregated roles get their rules from the aggregate-to-* roles.
    eventually(lambda: can_i(k, "get", "pods", "--as", "view-user") == "yes", timeout=30, what="view aggregated")
    expect = {
        ("get", "pods"): {"view": "yes", "edit": "yes", "admin": "yes", "nobody": "no"},
        ("create", "pods"): {"view": "no", "edit": "yes", "admin": "yes", "nobody": "no"},
        ("get", "secrets"): {"view": "no", "edit": "yes", "admin": "yes", "nobody": "no"},
        ("create", "deployments.apps"): {"view": "no", "edit": "yes", "admin": "yes", "nobody": "no"},
        ("create", "roles.rbac.authorization.k8s.io"): {"view": "no", "edit": "no", "admin": "yes", "nobody": "no"},
        ("get", "nodes"): {"view": "no", "edit": "no", "admin": "no", "nobody": "no"},
    }
    for (verb, resource), by_role in expect.items():
        for role, want in by_role.items():
            got = can_i(k, verb, resource, "--as", f"{role}-user")
            assert got == want, f"{role}: can-i {verb} {resource} = {got!r}"
    assert can_i(k, "get", "pods", "--subresource=log", "--as", "view-user") == "yes"
    assert can_i(k, "create", "pods", "--subresource=exec", "--as", "view-user") == "no"
    assert can_i(k, "create", "pods", "--subresource=exec", "--as", "edit-user") == "yes"
    # Non-resource URLs: discovery for every authenticated user, /metrics only for monitoring.
    assert can_i(k, "get", "/api", "--as", "nobody") == "yes"
    assert can_i(k, "get", "/metrics", "--as", "nobody") == "no"
    assert can_i(k, "get", "/metrics", "--as", "nobody", "--as-group", "system:monitoring") == "yes"
    # cluster-admin through a group; the admin itself can do anything.
    assert can_i(k, "delete", "nodes", "--as", "x", "--as-group", "system:masters") == "yes"
    assert can_i(k, "delete", "nodes") == "yes"


def test_custom_role_and_list(k):
    k("create", "role", "pod-reader", "--verb=get,list", "--resource=pods")
    bind(k, "bob-reads", "Role", "pod-reader", "bob")

    def listed():
        out = k.out("auth", "can-i", "--list", "--as", "bob")
        return out if any(l.split()[:1] == ["pods"] for l in out.splitlines()) else None

    out = eventually(listed, timeout=30, what="bob's rules")
    header = out.splitlines()[0].split()
    assert header[:2] == ["Resources", "Non-Resource"], out
    pods = next(l for l in out.splitlines() if l.split()[:1] == ["pods"])
    assert pods.split()[-2:] == ["[get", "list]"], pods
    assert any(l.startswith("selfsubjectaccessreviews.authorization.k8s.io") for l in out.splitlines()), out
    assert any("[/api/*]" in l for l in out.splitlines()), out
    assert can_i(k, "list", "pods", "--as", "bob") == "yes"
    assert can_i(k, "delete", "pods", "--as", "bob") == "no"
    other = unique("e2e")
    k.cluster.kubectl("create", "namespace", other)
    try:
        assert k.cluster.kubectl("auth", "can-i", "list", "pods", "-n", other, "--as", "bob",
                                 version=k.version, check=False).stdout.strip() == "no"
    finally:
        k.cluster.kubectl("delete", "namespace", other, "--wait=false", check=False)


def test_real_requests_of_a_certificate_user(cluster, namespace):
    cfg = user_kubeconfig(cluster, "carol", ("team-a",))
    r = as_user(cluster, cfg, "get", "pods", "-n", namespace)
    assert r.returncode != 0
    assert (f'pods is forbidden: User "carol" cannot list resource "pods" in API group "" '
            f'in the namespace "{namespace}"') in r.stderr, r.stderr
    # Bound through her group, she may read pods.
    cluster.kubectl("create", "role", "pod-reader", "--verb=get,list", "--resource=pods", "-n", namespace)
    cluster.kubectl("create", "rolebinding", "team-a", "--role=pod-reader", "--group=team-a", "-n", namespace)
    eventually(lambda: as_user(cluster, cfg, "get", "pods", "-n", namespace).returncode == 0,
               timeout=30, what="carol can list pods")
    assert as_user(cluster, cfg, "auth", "can-i", "list", "pods", "-n", namespace,
                   version="1.20").stdout.strip() == "yes"
    # Impersonating without permission is refused.
    r = as_user(cluster, cfg, "get", "pods", "-n", namespace, "--as", "someone")
    assert r.returncode != 0
    assert ('users "someone" is forbidden: User "carol" cannot impersonate resource "users" '
            'in API group "" at the cluster scope') in r.stderr, r.stderr


def test_bad_token_is_401(cluster):
    cfg = yaml.safe_load(cluster.kubeconfig.read_text())
    server = cfg["clusters"][0]["cluster"]["server"]
    ca = base64.b64decode(cfg["clusters"][0]["cluster"]["certificate-authority-data"])
    ctx = ssl.create_default_context(cadata=ca.decode())
    ctx.check_hostname = False
    req = urllib.request.Request(f"{server}/api/v1/namespaces", headers={"Authorization": "Bearer nope"})
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=ctx))
    with pytest.raises(urllib.error.HTTPError) as err:
        opener.open(req, timeout=10)
    assert err.value.code == 401
    assert json.loads(err.value.read())["reason"] == "Unauthorized"


def test_binding_to_a_missing_role_grants_nothing(cluster, namespace):
    cluster.kubectl("create", "rolebinding", "dangling", "--role=does-not-exist", "--user=dave", "-n", namespace)

    def reason():
        r = cluster.kubectl("get", "pods", "-n", namespace, "--as", "dave", check=False)
        return r.stderr if "not found" in r.stderr else None

    err = eventually(reason, timeout=30, what="missing-role reason")
    assert (f'pods is forbidden: User "dave" cannot list resource "pods" in API group "" in the namespace '
            f'"{namespace}": RBAC: role.rbac.authorization.k8s.io "does-not-exist" not found') in err, err


def test_escalation_is_refused(cluster, namespace):
    cluster.kubectl("create", "rolebinding", "erin-admin", "--clusterrole=admin", "--user=erin", "-n", namespace)
    eventually(lambda: cluster.kubectl("get", "roles", "-n", namespace, "--as", "erin", check=False).returncode == 0,
               timeout=30, what="erin is admin")
    # A role within her rights is fine.
    cluster.kubectl("create", "role", "ok", "--verb=get", "--resource=pods", "-n", namespace, "--as", "erin")
    # Rights she does not hold are not.
    r = cluster.kubectl("create", "role", "too-much", "--verb=get", "--resource=nodes", "-n", namespace,
                        "--as", "erin", check=False)
    assert r.returncode != 0
    assert 'roles.rbac.authorization.k8s.io "too-much" is forbidden: user "erin"' in r.stderr, r.stderr
    assert "is attempting to grant RBAC permissions not currently held:" in r.stderr, r.stderr
    assert '{APIGroups:[""], Resources:["nodes"], Verbs:["get"]}' in r.stderr, r.stderr
    # Neither may she bind cluster-admin, but she may bind view (which she holds).
    r = cluster.kubectl("create", "rolebinding", "grab", "--clusterrole=cluster-admin", "--user=erin",
                        "-n", namespace, "--as", "erin", check=False)
    assert r.returncode != 0
    assert 'rolebindings.rbac.authorization.k8s.io "grab" is forbidden' in r.stderr, r.stderr
    cluster.kubectl("create", "rolebinding", "viewers", "--clusterrole=view", "--user=frank", "-n", namespace,
                    "--as", "erin")


def test_python_self_subject_access_review(cluster, namespace):
    from kubernetes import client, config

    def review(api_client, verb):
        body = client.V1SelfSubjectAccessReview(spec=client.V1SelfSubjectAccessReviewSpec(
            resource_attributes=client.V1ResourceAttributes(namespace=namespace, verb=verb, resource="pods")))
        return client.AuthorizationV1Api(api_client).create_self_subject_access_review(body).status

    admin = cluster.python_client()
    assert review(admin, "delete").allowed is True
    cfg = user_kubeconfig(cluster, "gina")
    gina = config.new_client_from_config(config_file=str(cfg))
    status = review(gina, "get")
    assert status.allowed is False
    cluster.kubectl("create", "rolebinding", "gina-view", "--clusterrole=view", "--user=gina", "-n", namespace)
    eventually(lambda: review(gina, "get").allowed, timeout=30, what="gina may get pods")
    assert review(gina, "delete").allowed is False
    # A SubjectAccessReview about gina, asked by the admin.
    sar = client.V1SubjectAccessReview(spec=client.V1SubjectAccessReviewSpec(
        user="gina", groups=["system:authenticated"],
        resource_attributes=client.V1ResourceAttributes(namespace=namespace, verb="list", resource="pods")))
    assert client.AuthorizationV1Api(admin).create_subject_access_review(sar).status.allowed is True
