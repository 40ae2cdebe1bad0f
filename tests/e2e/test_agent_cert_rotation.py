"""The agent's client certificate rotated through the CSR API, end to end: a server whose signer
issues two-minute certificates, the agent asking for a new certificate (a `csr-…` request by
`system:node:<node>`) once 70–90 % of the current one's lifetime has passed, the request
auto-approved as a self renewal and issued, the new pair stored privately under the data dir, the
Node's Lease renewed past the first certificate's expiry, pods starting after the rotation, and a
restarted server reusing the stored certificate."""

import base64
import datetime
import json
import os
import stat
import time

import pytest

from conftest import eventually, run, running_agent_cluster, unique

NODE = "e2e-certrot"
USER = f"system:node:{NODE}"
KUBELET_SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
SELF_MESSAGE = "Auto approving self kubelet client certificate after SubjectAccessReview."


@pytest.fixture(scope="module")
def rc():
    with running_agent_cluster(NODE, ["--cluster-signing-duration", "2m"]) as c:
        yield c


def cert_path(c):
    return c.data_dir / "agent" / "pki" / "kubelet-client-current.pem"


def cert_info(pem: str) -> dict:
    """Subject attributes, serial and validity of the first certificate in `pem` (openssl)."""
    out = run("openssl", "x509", "-noout", "-subject", "-serial", "-startdate", "-enddate",
              "-nameopt", "RFC2253", input=pem).stdout
    fields = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    when = lambda v: datetime.datetime.strptime(v, "%b %d %H:%M:%S %Y %Z").replace(tzinfo=datetime.timezone.utc)
    subject = [part.split("=", 1) for part in fields["subject"].split(",")]
    return {
        "cn": [v for k, v in subject if k == "CN"],
        "o": [v for k, v in subject if k == "O"],
        "serial": fields["serial"],
        "not_before": when(fields["notBefore"]),
        "not_after": when(fields["notAfter"]),
    }


def stored_cert(c) -> dict:
    return cert_info(cert_path(c).read_text())


def node_csrs(c) -> list[dict]:
    items = c.kubectl_json("get", "csr")["items"]
    return [x for x in items if x["spec"].get("username") == USER]


def issued(csr: dict) -> bool:
    return bool(csr.get("status", {}).get("certificate"))


def issued_cert(csr: dict) -> dict:
    return cert_info(base64.b64decode(csr["status"]["certificate"]).decode())


def lease_renewed_at(c) -> datetime.datetime:
    lease = c.kubectl_json("-n", "kube-node-lease", "get", "lease", NODE)
    return datetime.datetime.fromisoformat(lease["spec"]["renewTime"].replace("Z", "+00:00"))


def node_ready(c) -> bool:
    node = c.kubectl_json("get", "node", NODE)
    return any(x["type"] == "Ready" and x["status"] == "True" for x in node["status"]["conditions"])


def test_the_agent_rotates_its_client_certificate_through_the_csr_api(rc):
    first = stored_cert(rc)
    assert first["cn"] == [USER] and first["o"] == ["system:nodes"]
    assert stat.S_IMODE(os.stat(cert_path(rc)).st_mode) == 0o600

    # The node asks for a new certificate itself; the controller manager approves and signs it.
    csr = eventually(lambda: next((x for x in node_csrs(rc) if issued(x)), None), timeout=240,
                     interval=2, what="an issued CSR of the node")
    assert csr["metadata"]["name"].startswith("csr-")
    assert csr["spec"]["signerName"] == KUBELET_SIGNER
    assert sorted(csr["spec"]["usages"]) == ["client auth", "digital signature"]
    assert "system:nodes" in csr["spec"]["groups"]
    approved = [x for x in csr["status"]["conditions"] if x["type"] == "Approved"]
    assert approved and approved[0]["reason"] == "AutoApproved"
    assert approved[0]["message"] == SELF_MESSAGE
    new = issued_cert(csr)
    assert new["cn"] == [USER] and new["o"] == ["system:nodes"]
    assert new["not_after"] - new["not_before"] == datetime.timedelta(minutes=7)

    # The agent keeps an issued certificate (this one or a later one) on disk, private to root.
    def stored_is_issued():
        serials = {issued_cert(x)["serial"] for x in node_csrs(rc) if issued(x)}
        return stored_cert(rc)["serial"] in serials
    eventually(stored_is_issued, timeout=60, interval=1, what="the issued certificate stored")
    assert stat.S_IMODE(os.stat(cert_path(rc)).st_mode) == 0o600
    assert b"PRIVATE KEY" in cert_path(rc).read_bytes()

    # Heartbeats go on after the first certificate has expired.
    expiry = first["not_after"]
    left = (expiry - datetime.datetime.now(datetime.timezone.utc)).total_seconds()
    if left > 0:
        time.sleep(left + 1)
    eventually(lambda: lease_renewed_at(rc) > expiry + datetime.timedelta(seconds=10), timeout=60, interval=2,
               what="the node Lease renewed after the first certificate expired")
    assert node_ready(rc)

    # Pods still start after the rotation.
    name = unique("rot")
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
           "spec": {"terminationGracePeriodSeconds": 1,
                    "containers": [{"name": "c", "image": "busybox", "imagePullPolicy": "IfNotPresent",
                                    "command": ["sh", "-c", "sleep 3600"]}]}}
    rc.kubectl("apply", "-f", "-", input=json.dumps(pod))
    eventually(lambda: rc.kubectl_json("get", "pod", name)["status"].get("phase") == "Running", timeout=90,
               what="a pod running after the rotation")
    rc.kubectl("delete", "pod", name, "--grace-period=1", "--wait=false")


def test_a_restarted_server_reuses_the_stored_certificate(rc):
    serials = {issued_cert(x)["serial"] for x in node_csrs(rc) if issued(x)}
    assert stored_cert(rc)["serial"] in serials
    rc.restart()
    log = rc.log_path.read_text(errors="replace").split("--- start")[-1]
    # The stored, still valid certificate is used again instead of a new one from the CA.
    assert "reusing the agent's client certificate" in log
    eventually(lambda: node_ready(rc), timeout=60, what="the node ready after the restart")
