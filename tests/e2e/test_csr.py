"""CertificateSigningRequests end to end: a user's openssl key and CSR submitted with kubectl,
`kubectl certificate approve|deny` (1.32 and 1.20), the certificate issued by the
kube-apiserver-client signer authenticating as that user (`kubectl auth whoami`, RBAC 403 then
200), a forbidden usage ending Failed, approval refused without `approve` on the signer (the
upstream 403), spec.username set to the requester, validation and the subject restriction,
kubelet client certificates auto-approved, `kubectl get csr` columns, and the Python client."""

import base64
import json
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import eventually, run, unique

CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client"


def make_request(workdir: Path, cn: str, orgs: tuple[str, ...] = (), rsa: bool = True) -> tuple[Path, str]:
    """An openssl key and PEM CSR for CN=cn, O=orgs."""
    d = workdir / unique("csr")
    d.mkdir()
    key, req = d / "key.pem", d / "req.csr"
    if rsa:
        run("openssl", "genrsa", "-out", str(key), "2048")
    else:
        run("openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key))
    subject = "".join(f"/O={o}" for o in orgs) + f"/CN={cn}"
    run("openssl", "req", "-new", "-key", str(key), "-subj", subject, "-out", str(req))
    return key, req.read_text()


def manifest(name: str, pem: str, usages=("client auth",), signer=CLIENT_SIGNER, expiration=None) -> str:
    spec = {
        "request": base64.b64encode(pem.encode()).decode(),
        "signerName": signer,
        "usages": list(usages),
        # Whatever the client claims, the server writes the requester here.
        "username": "mallory",
        "groups": ["system:masters"],
    }
    if expiration is not None:
        spec["expirationSeconds"] = expiration
    return json.dumps({
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": name},
        "spec": spec,
    })


def kubectl(cluster, *args, version="1.32", **kw):
    return cluster.kubectl(*args, version=version, **kw)


def get_csr(cluster, name: str) -> dict:
    return json.loads(kubectl(cluster, "get", "csr", name, "-o", "json").stdout)


def certificate(cluster, name: str) -> str:
    cert = get_csr(cluster, name).get("status", {}).get("certificate", "")
    return base64.b64decode(cert).decode() if cert else ""


def condition(cluster, name: str, type_: str) -> dict | None:
    for c in get_csr(cluster, name).get("status", {}).get("conditions", []):
        if c["type"] == type_:
            return c
    return None


def user_kubeconfig(cluster, key: Path, cert_pem: str) -> Path:
    cfg = yaml.safe_load(cluster.kubeconfig.read_text())
    for u in cfg["users"]:
        u["user"] = {
            "client-certificate-data": base64.b64encode(cert_pem.encode()).decode(),
            "client-key-data": base64.b64encode(key.read_bytes()).decode(),
        }
    path = key.parent / "kubeconfig.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def as_user(cluster, kubeconfig: Path, *args: str, version: str = "1.32") -> subprocess.CompletedProcess:
    cmd = cluster.kubectl_cmd(*args, version=version)
    cmd[cmd.index("--kubeconfig") + 1] = str(kubeconfig)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def requester(cluster):
    """A user allowed to create CSRs (upstream's node-bootstrapper role), used through
    impersonation by the admin."""
    name = unique("requester")
    kubectl(cluster, "create", "clusterrolebinding", name, "--clusterrole=system:node-bootstrapper", f"--user={name}")
    return name


def test_issued_certificate_authenticates_the_user(cluster, kubectl_version, requester, namespace):
    user = unique("alice")
    key, pem = make_request(cluster.workdir, user, ("devs",))
    name = unique("csr-alice")
    kubectl(cluster, "create", "-f", "-", "--as", requester, input=manifest(name, pem, expiration=3600),
            version=kubectl_version)
    spec = get_csr(cluster, name)["spec"]
    assert spec["username"] == requester
    assert "system:masters" not in spec.get("groups", [])
    assert "system:authenticated" in spec["groups"]
    listed = kubectl(cluster, "get", "csr", name, version=kubectl_version).stdout
    assert listed.split("\n")[0].split() == ["NAME", "AGE", "SIGNERNAME", "REQUESTOR", "REQUESTEDDURATION", "CONDITION"]
    assert listed.split("\n")[1].split()[2:] == [CLIENT_SIGNER, requester, "60m", "Pending"]

    out = kubectl(cluster, "certificate", "approve", name, version=kubectl_version).stdout
    assert f"certificatesigningrequest.certificates.k8s.io/{name} approved" in out
    approved = condition(cluster, name, "Approved")
    assert approved and approved["status"] == "True" and approved["lastUpdateTime"]
    cert = eventually(lambda: certificate(cluster, name), timeout=30, what="certificate issued")
    assert "BEGIN CERTIFICATE" in cert
    eventually(lambda: kubectl(cluster, "get", "csr", name, version=kubectl_version).stdout.split("\n")[1].split()[-1]
               == "Approved,Issued", timeout=10, what="Issued column")
    lifetime = run("openssl", "x509", "-noout", "-dates", input=cert).stdout
    assert "notBefore" in lifetime and "notAfter" in lifetime

    kc = user_kubeconfig(cluster, key, cert)
    whoami = as_user(cluster, kc, "auth", "whoami", "-o", "json")
    assert whoami.returncode == 0, whoami.stderr
    info = json.loads(whoami.stdout)["status"]["userInfo"]
    assert info["username"] == user
    assert "devs" in info["groups"]
    denied = as_user(cluster, kc, "get", "pods", "-n", namespace, version=kubectl_version)
    assert denied.returncode != 0
    assert f'pods is forbidden: User "{user}" cannot list resource "pods" in API group "" in the namespace "{namespace}"' in denied.stderr
    kubectl(cluster, "create", "rolebinding", unique("view"), "-n", namespace, "--clusterrole=view", f"--user={user}")
    eventually(lambda: as_user(cluster, kc, "get", "pods", "-n", namespace, version=kubectl_version).returncode == 0,
               timeout=30, what="allowed after the binding")


def test_deny(cluster, kubectl_version, requester):
    _, pem = make_request(cluster.workdir, unique("bob"), rsa=False)
    name = unique("csr-bob")
    kubectl(cluster, "create", "-f", "-", "--as", requester, input=manifest(name, pem))
    out = kubectl(cluster, "certificate", "deny", name, version=kubectl_version).stdout
    assert f"certificatesigningrequest.certificates.k8s.io/{name} denied" in out
    denied = condition(cluster, name, "Denied")
    assert denied and denied["reason"] == "KubectlDeny"
    assert kubectl(cluster, "get", "csr", name).stdout.split("\n")[1].split()[-1] == "Denied"
    # A denied request is never signed, and cannot be approved afterwards.
    again = kubectl(cluster, "certificate", "approve", name, version=kubectl_version, check=False)
    assert again.returncode != 0 or certificate(cluster, name) == ""
    assert certificate(cluster, name) == ""


def test_forbidden_usage_fails(cluster, requester):
    _, pem = make_request(cluster.workdir, unique("carl"))
    name = unique("csr-usage")
    kubectl(cluster, "create", "-f", "-", "--as", requester, input=manifest(name, pem, usages=("client auth", "server auth")))
    kubectl(cluster, "certificate", "approve", name)
    failed = eventually(lambda: condition(cluster, name, "Failed"), timeout=30, what="Failed condition")
    assert failed["reason"] == "SignerValidationFailure"
    assert failed["message"] == "invalid usage for client certificate: server auth"
    assert certificate(cluster, name) == ""
    assert kubectl(cluster, "get", "csr", name).stdout.split("\n")[1].split()[-1] == "Approved,Failed"


def test_approval_needs_the_approve_verb_on_the_signer(cluster, requester):
    _, pem = make_request(cluster.workdir, unique("dora"))
    name = unique("csr-perm")
    kubectl(cluster, "create", "-f", "-", "--as", requester, input=manifest(name, pem))
    approver = unique("approver")
    role = unique("csr-approval")
    kubectl(cluster, "create", "clusterrole", role, "--verb=get,list,update",
            "--resource=certificatesigningrequests,certificatesigningrequests/approval")
    kubectl(cluster, "create", "clusterrolebinding", role, f"--clusterrole={role}", f"--user={approver}")
    refused = kubectl(cluster, "certificate", "approve", name, "--as", approver, check=False)
    assert refused.returncode != 0
    assert (f'certificatesigningrequests.certificates.k8s.io "{name}" is forbidden: user not permitted to approve '
            f'requests with signerName "{CLIENT_SIGNER}"') in refused.stderr
    assert condition(cluster, name, "Approved") is None
    signers = unique("signer-approver")
    # `signers` is not a served resource, so `kubectl create clusterrole --resource` refuses it
    # (as against upstream): the role is written as a manifest, as upstream's docs do.
    signer_role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": signers},
                   "rules": [{"apiGroups": ["certificates.k8s.io"], "resources": ["signers"],
                              "resourceNames": ["kubernetes.io/*"], "verbs": ["approve"]}]}
    kubectl(cluster, "create", "-f", "-", input=json.dumps(signer_role))
    kubectl(cluster, "create", "clusterrolebinding", signers, f"--clusterrole={signers}", f"--user={approver}")
    eventually(lambda: kubectl(cluster, "certificate", "approve", name, "--as", approver, check=False).returncode == 0,
               timeout=30, what="approved with the signer wildcard")
    eventually(lambda: certificate(cluster, name), timeout=30, what="certificate issued")


def test_validation_and_subject_restriction(cluster, requester):
    _, pem = make_request(cluster.workdir, unique("eve"))
    short = kubectl(cluster, "create", "-f", "-", input=manifest(unique("short"), pem, expiration=599), check=False)
    assert short.returncode != 0
    assert "spec.expirationSeconds: Invalid value: 599: may not specify a duration less than 600 seconds (10 minutes)" in short.stderr
    bad = json.loads(manifest(unique("bad"), pem))
    bad["spec"]["request"] = base64.b64encode(b"not a request").decode()
    r = kubectl(cluster, "create", "-f", "-", input=json.dumps(bad), check=False)
    assert "PEM block type must be CERTIFICATE REQUEST" in r.stderr
    noname = kubectl(cluster, "create", "-f", "-", input=manifest(unique("nosigner"), pem, signer="nosigner"), check=False)
    assert "must be a fully qualified domain and path of the form 'example.com/signer-name'" in noname.stderr
    _, masters = make_request(cluster.workdir, unique("root"), ("system:masters",))
    name = unique("masters")
    r = kubectl(cluster, "create", "-f", "-", input=manifest(name, masters), check=False)
    assert r.returncode != 0
    assert (f'certificatesigningrequests.certificates.k8s.io "{name}" is forbidden: use of '
            f'kubernetes.io/kube-apiserver-client signer with system:masters group is not allowed') in r.stderr
    # The main resource cannot approve or change the spec.
    ok = unique("immutable")
    kubectl(cluster, "create", "-f", "-", "--as", requester, input=manifest(ok, pem))
    patch = json.dumps({"spec": {"signerName": "example.com/other"},
                        "status": {"conditions": [{"type": "Approved", "status": "True"}]}})
    kubectl(cluster, "patch", "csr", ok, "--type=merge", "-p", patch)
    after = get_csr(cluster, ok)
    assert after["spec"]["signerName"] == CLIENT_SIGNER
    assert not after.get("status", {}).get("conditions")


def test_kubelet_client_certificates_are_auto_approved(cluster):
    node = unique("node")
    binding = unique("selfnodeclient")
    kubectl(cluster, "create", "clusterrolebinding", binding,
            "--clusterrole=system:certificates.k8s.io:certificatesigningrequests:selfnodeclient", "--group=system:nodes")
    _, pem = make_request(cluster.workdir, f"system:node:{node}", ("system:nodes",), rsa=False)
    name = unique("node-csr")
    body = manifest(name, pem, usages=("digital signature", "client auth"),
                    signer="kubernetes.io/kube-apiserver-client-kubelet")
    kubectl(cluster, "create", "-f", "-", "--as", f"system:node:{node}", "--as-group", "system:nodes",
            "--as-group", "system:authenticated", input=body)
    approved = eventually(lambda: condition(cluster, name, "Approved"), timeout=30, what="auto-approval")
    assert approved["reason"] == "AutoApproved"
    assert approved["message"] == "Auto approving self kubelet client certificate after SubjectAccessReview."
    cert = eventually(lambda: certificate(cluster, name), timeout=30, what="kubelet client certificate")
    subject = run("openssl", "x509", "-noout", "-subject", input=cert).stdout
    assert f"system:node:{node}" in subject and "system:nodes" in subject


def test_python_client_creates_and_reads(cluster, api_client, requester):
    from kubernetes import client

    api = client.CertificatesV1Api(api_client)
    _, pem = make_request(cluster.workdir, unique("pyuser"), rsa=False)
    name = unique("py-csr")
    body = client.V1CertificateSigningRequest(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1CertificateSigningRequestSpec(
            request=base64.b64encode(pem.encode()).decode(),
            signer_name=CLIENT_SIGNER,
            usages=["client auth", "digital signature"],
            username="mallory",
        ),
    )
    created = api.create_certificate_signing_request(body)
    assert created.spec.username != "mallory"
    got = api.read_certificate_signing_request(name)
    assert got.spec.signer_name == CLIENT_SIGNER
    assert got.spec.usages == ["client auth", "digital signature"]
    listed = api.list_certificate_signing_request(field_selector=f"spec.signerName={CLIENT_SIGNER}")
    assert name in [i.metadata.name for i in listed.items]
    api.delete_certificate_signing_request(name)
