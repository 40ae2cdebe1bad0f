"""PodSecurity admission end to end on the shared cluster (no agent: admission is all that is
judged): namespaces labelled `pod-security.kubernetes.io/<mode>` refuse (enforce) or warn about
(warn) pods and pod templates with upstream's messages, as kubectl 1.32 and 1.20 and the Python
client show them; bad labels are refused; tightening a namespace warns about its existing pods;
pinned versions evaluate the older checks; a server started with a PodSecurityConfiguration
applies its defaults and exemptions.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from conftest import Cluster, Netns, unique

PLAIN_POD_VIOLATIONS = (
    'allowPrivilegeEscalation != false (container "main" must set securityContext.allowPrivilegeEscalation=false), '
    'unrestricted capabilities (container "main" must set securityContext.capabilities.drop=["ALL"]), '
    'runAsNonRoot != true (pod or container "main" must set securityContext.runAsNonRoot=true), '
    'seccompProfile (pod or container "main" must set securityContext.seccompProfile.type to '
    '"RuntimeDefault" or "Localhost")'
)


def pod(name: str, security: str = "", pod_security: str = "") -> str:
    return f"""\
apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  securityContext: {{{pod_security}}}
  containers:
  - name: main
    image: busybox:v1
    command: [sleep, "3600"]
    securityContext: {{{security}}}
"""


HARDENED = dict(
    security='allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}',
    pod_security='runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}',
)


def label(k, *pairs: str, check: bool = True):
    return k("label", "--overwrite", "namespace", k.namespace,
             *[f"pod-security.kubernetes.io/{p}" for p in pairs], check=check)


def test_restricted_enforce_refuses_a_plain_pod_with_upstream_message(k):
    label(k, "enforce=restricted")
    r = k("apply", "-f", "-", input=pod("plain"), check=False)
    assert r.returncode != 0
    assert (f'pods "plain" is forbidden: violates PodSecurity "restricted:latest": {PLAIN_POD_VIOLATIONS}'
            in r.stderr), r.stderr
    k("apply", "-f", "-", input=pod("hardened", **HARDENED))
    assert k.json("get", "pod", "hardened")["metadata"]["name"] == "hardened"


def test_baseline_enforce_refuses_privileged_and_host_namespaces(k):
    label(k, "enforce=baseline")
    spec = pod("priv", security="privileged: true").replace("spec:\n", "spec:\n  hostNetwork: true\n", 1)
    r = k("apply", "-f", "-", input=spec, check=False)
    assert r.returncode != 0
    assert ('pods "priv" is forbidden: violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true), '
            'privileged (container "main" must not set securityContext.privileged=true)') in r.stderr, r.stderr
    # A plain pod meets baseline.
    k("apply", "-f", "-", input=pod("plain"))


def test_warn_mode_admits_with_a_warning(k):
    label(k, "warn=baseline")
    r = k("apply", "-f", "-", input=pod("priv", security="privileged: true"))
    assert ('Warning: would violate PodSecurity "baseline:latest": '
            'privileged (container "main" must not set securityContext.privileged=true)') in r.stderr, r.stderr
    assert k.json("get", "pod", "priv")["spec"]["containers"][0]["securityContext"]["privileged"] is True


def test_workloads_are_warned_about_but_never_refused(k):
    label(k, "enforce=restricted")
    deployment = f"""\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 0
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
      - name: main
        image: busybox:v1
"""
    r = k("apply", "-f", "-", input=deployment)
    # warn follows the stricter enforce level when it is not set itself
    assert f'Warning: would violate PodSecurity "restricted:latest": {PLAIN_POD_VIOLATIONS}' in r.stderr, r.stderr
    assert k.json("get", "deployment", "web")["metadata"]["name"] == "web"


def test_invalid_labels_are_refused(k):
    r = label(k, "enforce=strict", check=False)
    assert r.returncode != 0
    assert (f'The Namespace "{k.namespace}" is invalid: metadata.labels[pod-security.kubernetes.io/enforce]: '
            'Invalid value: "strict": must be one of privileged, baseline, restricted') in r.stderr, r.stderr
    r = label(k, "warn-version=v2.0", check=False)
    assert r.returncode != 0
    assert 'Invalid value: "v2.0": must be "latest" or "v1.x"' in r.stderr, r.stderr


def test_tightening_a_namespace_warns_about_existing_pods(k):
    for name in ("b-plain", "a-plain"):
        k("apply", "-f", "-", input=pod(name))
    k("apply", "-f", "-", input=pod("ok", **HARDENED))
    r = label(k, "enforce=restricted")
    assert (f'Warning: existing pods in namespace "{k.namespace}" violate the new PodSecurity enforce level '
            '"restricted:latest"') in r.stderr, r.stderr
    assert ('Warning: a-plain (and 1 other pod): allowPrivilegeEscalation != false, unrestricted capabilities, '
            'runAsNonRoot != true, seccompProfile') in r.stderr, r.stderr
    assert "ok:" not in r.stderr


def test_pinned_versions_use_the_checks_of_that_version(k):
    # Before v1.22 the restricted level did not require dropping ALL capabilities.
    no_drop = pod("nodrop", security="allowPrivilegeEscalation: false",
                  pod_security="runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}")
    label(k, "enforce=restricted", "enforce-version=v1.21")
    k("apply", "-f", "-", input=no_drop)
    label(k, "enforce-version=latest")
    r = k("apply", "-f", "-", input=no_drop.replace("nodrop", "nodrop2"), check=False)
    assert r.returncode != 0
    assert ('violates PodSecurity "restricted:latest": unrestricted capabilities '
            '(container "main" must set securityContext.capabilities.drop=["ALL"])') in r.stderr, r.stderr


def test_python_client_sees_the_forbidden_status(api_client):
    core = client.CoreV1Api(api_client)
    ns = unique("psa")
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(
        name=ns, labels={"pod-security.kubernetes.io/enforce": "baseline"})))
    try:
        body = client.V1Pod(
            metadata=client.V1ObjectMeta(name="p"),
            spec=client.V1PodSpec(host_pid=True, containers=[client.V1Container(name="main", image="busybox:v1")]),
        )
        with pytest.raises(ApiException) as err:
            core.create_namespaced_pod(ns, body)
        assert err.value.status == 403
        assert '"reason":"Forbidden"' in err.value.body.replace(" ", "")
        assert ('pods \\"p\\" is forbidden: violates PodSecurity \\"baseline:latest\\": host namespaces (hostPID=true)'
                in err.value.body), err.value.body
    finally:
        core.delete_namespace(ns)


POD_SECURITY_CONFIG = """\
apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
- name: PodSecurity
  configuration:
    apiVersion: pod-security.admission.config.k8s.io/v1
    kind: PodSecurityConfiguration
    defaults: {enforce: baseline, enforce-version: latest}
    exemptions: {namespaces: [lenient]}
"""


def test_configured_defaults_and_exemptions():
    if os.geteuid() != 0:
        pytest.skip("the e2e suite needs root (network namespaces)")
    workdir = Path(tempfile.mkdtemp(prefix="skiff-psa."))
    config = workdir / "psa.yaml"
    config.write_text(POD_SECURITY_CONFIG)
    netns = Netns()
    c = Cluster(workdir, netns, server_args=["--pod-security-admission-config-file", str(config)])
    try:
        c.start()
        privileged = pod("priv", security="privileged: true")
        # An unlabelled namespace gets the configured baseline default.
        c.kubectl("create", "namespace", "strict")
        r = c.kubectl("-n", "strict", "apply", "-f", "-", input=privileged, check=False)
        assert r.returncode != 0
        assert 'violates PodSecurity "baseline:latest": privileged' in r.stderr, r.stderr
        # Labels still override the default.
        c.kubectl("label", "namespace", "strict", "pod-security.kubernetes.io/enforce=privileged")
        c.kubectl("-n", "strict", "apply", "-f", "-", input=privileged)
        # An exempt namespace admits anything and says its labels are ignored.
        r = c.kubectl("create", "namespace", "lenient")
        r = c.kubectl("label", "namespace", "lenient", "pod-security.kubernetes.io/enforce=restricted")
        assert ('namespace "lenient" is exempt from Pod Security, and the policy (enforce=restricted:latest) '
                'will be ignored') in r.stderr, r.stderr
        c.kubectl("-n", "lenient", "apply", "-f", "-", input=privileged)
    finally:
        c.stop()
        netns.delete()
        if not os.environ.get("KEEP_E2E_WORKDIR"):
            shutil.rmtree(workdir, ignore_errors=True)


def test_a_broken_configuration_stops_the_server_with_a_plain_error(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("the e2e suite needs root (network namespaces)")
    config = tmp_path / "psa.yaml"
    config.write_text("apiVersion: pod-security.admission.config.k8s.io/v1\nkind: PodSecurityConfiguration\n"
                      "defaults: {enforce: strict}\n")
    netns = Netns()
    c = Cluster(tmp_path, netns, server_args=["--pod-security-admission-config-file", str(config)])
    try:
        with pytest.raises(RuntimeError):
            c.start()
        log = c.log_path.read_text()
        assert 'defaults.enforce: "strict" must be one of privileged, baseline, restricted' in log, log
    finally:
        c.stop()
        netns.delete()
