"""Probes and lifecycle hooks end to end on the agent cluster of test_pods: liveness failures
restart the container with back-off, readiness and readiness gates hold `Ready` back, startup
probes gate liveness, postStart and preStop hooks run (exec, httpGet, sleep) within the grace
period, an HTTPS httpGet hook answered in plain HTTP falls back to HTTP, and every failure is an
event worded as upstream."""

from __future__ import annotations

import json
import re
import time

from conftest import eventually
from test_pods import NODE, agent_cluster, get_pod, kubectl, log_text, ns  # noqa: F401  (fixtures)


def manifest(name: str, command: str, restart: str = "Always", grace: int = 2, **container) -> str:
    return json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {
            "nodeName": NODE, "restartPolicy": restart, "terminationGracePeriodSeconds": grace,
            "containers": [{"name": "main", "image": "busybox", "imagePullPolicy": "IfNotPresent",
                            "command": ["sh", "-c", command], **container}],
        },
    })


def status_of(cluster, namespace, name) -> dict:
    return (get_pod(cluster, namespace, name).get("status", {}).get("containerStatuses") or [{}])[0]


def events(cluster, namespace, name) -> list[dict]:
    out = kubectl(cluster, namespace, "get", "events", "-o", "json", "--field-selector", f"involvedObject.name={name}").stdout
    return json.loads(out)["items"]


def condition(pod: dict, kind: str) -> dict:
    return next((c for c in pod.get("status", {}).get("conditions", []) if c["type"] == kind), {})


def test_failing_liveness_probe_restarts_with_back_off(agent_cluster, ns):
    probe = {"exec": {"command": ["test", "-f", "/tmp/healthy"]}, "periodSeconds": 1, "failureThreshold": 2}
    kubectl(agent_cluster, ns, "apply", "-f", "-",
            input=manifest("live", "touch /tmp/healthy; sleep 2; rm /tmp/healthy; exec sleep 600", livenessProbe=probe))
    s = eventually(lambda: (s := status_of(agent_cluster, ns, "live")).get("restartCount", 0) >= 1 and s,
                   timeout=60, what="restarted after liveness failures")
    assert s["lastState"]["terminated"]["exitCode"] == 137, s
    evs = events(agent_cluster, ns, "live")
    unhealthy = [e for e in evs if e["reason"] == "Unhealthy"]
    assert unhealthy and unhealthy[0]["message"].startswith("Liveness probe failed"), unhealthy
    assert unhealthy[0]["type"] == "Warning"
    assert any(e["reason"] == "Killing" and e["message"] == "Container main failed liveness probe, will be restarted"
               for e in evs), evs
    # The second failure backs off (CrashLoopBackOff after the first immediate restart).
    eventually(lambda: status_of(agent_cluster, ns, "live").get("state", {}).get("waiting", {}).get("reason")
               == "CrashLoopBackOff", timeout=60, what="CrashLoopBackOff")


def test_readiness_probe_and_gates_hold_ready_back(agent_cluster, ns):
    serve = "mkdir -p /www && echo ok > /www/index.html && sleep 3 && exec httpd -f -p 8080 -h /www"
    probe = {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1}
    pod = json.loads(manifest("ready", serve, readinessProbe=probe, ports=[{"name": "http", "containerPort": 8080}]))
    pod["spec"]["readinessGates"] = [{"conditionType": "example.com/gate"}]
    kubectl(agent_cluster, ns, "apply", "-f", "-", input=json.dumps(pod))

    running = eventually(lambda: (p := get_pod(agent_cluster, ns, "ready")).get("status", {}).get("phase") == "Running" and p,
                         what="Running")
    if not running["status"]["containerStatuses"][0]["ready"]:
        assert condition(running, "ContainersReady")["status"] == "False"
        assert condition(running, "ContainersReady")["message"] == "containers with unready status: [main]"

    pod = eventually(lambda: (p := get_pod(agent_cluster, ns, "ready"))["status"]["containerStatuses"][0]["ready"] and p,
                     timeout=30, what="container ready once httpd listens")
    assert condition(pod, "ContainersReady")["status"] == "True"
    ready = condition(pod, "Ready")
    assert ready["status"] == "False" and ready["reason"] == "ReadinessGatesNotReady", ready
    assert 'readiness gate "example.com/gate" does not exist' in ready["message"]
    evs = events(agent_cluster, ns, "ready")
    assert any(e["reason"] == "Unhealthy" and e["message"].startswith("Readiness probe failed: Get \"http://")
               for e in evs), evs

    gate = {"status": {"conditions": [{"type": "example.com/gate", "status": "True"}]}}
    kubectl(agent_cluster, ns, "patch", "pod", "ready", "--subresource=status", "-p", json.dumps(gate))
    eventually(lambda: condition(get_pod(agent_cluster, ns, "ready"), "Ready").get("status") == "True",
               what="Ready once the gate is True")
    assert "1/1" in kubectl(agent_cluster, ns, "get", "pod", "ready").stdout


def test_startup_probe_failure_kills_the_container(agent_cluster, ns):
    probe = {"tcpSocket": {"port": 9999}, "periodSeconds": 1, "failureThreshold": 2}
    liveness = {"exec": {"command": ["false"]}, "periodSeconds": 1}
    kubectl(agent_cluster, ns, "apply", "-f", "-",
            input=manifest("startup", "exec sleep 600", startupProbe=probe, livenessProbe=liveness))
    s = eventually(lambda: (s := status_of(agent_cluster, ns, "startup")).get("restartCount", 0) >= 1 and s,
                   timeout=60, what="restart after startup failures")
    evs = events(agent_cluster, ns, "startup")
    messages = [e["message"] for e in evs if e["reason"] == "Unhealthy"]
    assert any(m.startswith("Startup probe failed: dial tcp ") and m.endswith(":9999: connect: connection refused")
               for m in messages), messages
    assert not any(m.startswith("Liveness") for m in messages), "liveness waits for the startup probe"
    assert s.get("started") is False


def test_hooks_run_around_the_container(agent_cluster, ns, tmp_path):
    # The container and its hooks write to a hostPath file, which outlives the pod.
    out = tmp_path / "out"
    command = ("trap 'echo got-term >> /host/out; exit 0' TERM; while [ ! -f /tmp/post ]; do sleep 0.1; done; "
               "cat /tmp/post >> /host/out; while true; do sleep 0.2; done")
    lifecycle = {
        "postStart": {"exec": {"command": ["sh", "-c", "echo post-start-ran > /tmp/post"]}},
        "preStop": {"exec": {"command": ["sh", "-c", "echo pre-stop-ran >> /host/out; sleep 2"]}},
    }
    pod = json.loads(manifest("hooks", command, grace=20, lifecycle=lifecycle,
                              volumeMounts=[{"name": "host", "mountPath": "/host"}]))
    pod["spec"]["volumes"] = [{"name": "host", "hostPath": {"path": str(tmp_path), "type": "Directory"}}]
    kubectl(agent_cluster, ns, "apply", "-f", "-", input=json.dumps(pod))
    eventually(lambda: out.exists() and "post-start-ran" in out.read_text(), what="postStart ran")
    t0 = time.monotonic()
    kubectl(agent_cluster, ns, "delete", "pod", "hooks", "--timeout=60s")
    elapsed = time.monotonic() - t0
    lines = out.read_text().split()
    assert lines == ["post-start-ran", "pre-stop-ran", "got-term"], lines
    assert elapsed >= 2, f"deleted after {elapsed:.1f}s, before the preStop hook ended"
    assert elapsed < 20, "SIGTERM came within the grace period"


def test_failed_post_start_hook_is_reported(agent_cluster, ns):
    lifecycle = {"postStart": {"exec": {"command": ["sh", "-c", "echo nope; exit 3"]}}}
    kubectl(agent_cluster, ns, "apply", "-f", "-", input=manifest("badhook", "exec sleep 600", lifecycle=lifecycle))

    def failed_event():
        return next((e for e in events(agent_cluster, ns, "badhook") if e["reason"] == "FailedPostStartHook"), None)

    ev = eventually(failed_event, timeout=60, what="FailedPostStartHook event")
    assert ev["type"] == "Warning"
    assert ev["message"].startswith('Exec lifecycle hook ([sh -c echo nope; exit 3]) for Container "main" in Pod "badhook_'), \
        ev["message"]
    assert "exited with 3: nope" in ev["message"], ev["message"]
    eventually(lambda: status_of(agent_cluster, ns, "badhook").get("restartCount", 0) >= 1, timeout=60,
               what="restarted after the failed hook")


def test_https_post_start_hook_falls_back_to_http(agent_cluster, ns):
    """A postStart httpGet hook with scheme HTTPS against busybox httpd (plain HTTP, which answers
    the TLS handshake with an HTTP 400): retried over HTTP, the hook succeeds and the pod gets
    upstream's `LifecycleHTTPFallback` warning. The server is a sidecar whose startup probe holds
    the main container back until it listens."""
    serve = "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www"
    pod = json.loads(manifest("fallback", "exec sleep 600",
                              lifecycle={"postStart": {"httpGet": {"path": "/", "port": 8080, "scheme": "HTTPS"}}}))
    pod["spec"]["initContainers"] = [{
        "name": "server", "image": "busybox", "imagePullPolicy": "IfNotPresent", "restartPolicy": "Always",
        "command": ["sh", "-c", serve],
        "startupProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1, "failureThreshold": 30},
    }]
    kubectl(agent_cluster, ns, "apply", "-f", "-", input=json.dumps(pod))

    def fallback_event():
        return next((e for e in events(agent_cluster, ns, "fallback") if e["reason"] == "LifecycleHTTPFallback"), None)

    ev = eventually(fallback_event, timeout=90, what="LifecycleHTTPFallback event")
    ip = get_pod(agent_cluster, ns, "fallback")["status"]["podIP"]
    assert ev["type"] == "Warning", ev
    assert ev["message"] == f"request to HTTPS lifecycle hook {ip}:8080 got HTTP response, retry with HTTP succeeded", ev
    assert not any(e["reason"] == "FailedPostStartHook" for e in events(agent_cluster, ns, "fallback"))
    main = eventually(lambda: (s := status_of(agent_cluster, ns, "fallback")).get("state", {}).get("running") and s,
                      timeout=30, what="main running")
    assert main["restartCount"] == 0, main
    # Counted in the kubelet's /metrics.
    metrics = agent_cluster.kubectl("get", "--raw", f"/api/v1/nodes/{NODE}/proxy/metrics").stdout
    fallbacks = re.search(r"^kubelet_lifecycle_handler_http_fallbacks_total (\d+)$", metrics, re.M)
    assert fallbacks and int(fallbacks.group(1)) >= 1, metrics


def test_active_deadline_fails_the_pod(agent_cluster, ns):
    kubectl(agent_cluster, ns, "apply", "-f", "-",
            input=manifest("deadline", "exec sleep 600", restart="Never")
            .replace('"restartPolicy"', '"activeDeadlineSeconds": 3, "restartPolicy"'))
    pod = eventually(lambda: (p := get_pod(agent_cluster, ns, "deadline"))["status"].get("phase") == "Failed" and p,
                     timeout=60, what="Failed after the deadline")
    assert pod["status"]["reason"] == "DeadlineExceeded"
    assert pod["status"]["message"] == "Pod was active on the node longer than the specified deadline"
    assert any(e["reason"] == "DeadlineExceeded" for e in events(agent_cluster, ns, "deadline"))


def test_dns_policy_shapes_resolv_conf(agent_cluster, ns):
    pod = json.loads(manifest("dns", "cat /etc/resolv.conf", restart="Never"))
    pod["spec"]["dnsPolicy"] = "None"
    pod["spec"]["dnsConfig"] = {"nameservers": ["192.0.2.53"], "searches": ["corp.example"],
                                "options": [{"name": "ndots", "value": "2"}]}
    kubectl(agent_cluster, ns, "apply", "-f", "-", input=json.dumps(pod))
    done = eventually(lambda: (p := get_pod(agent_cluster, ns, "dns"))["status"].get("phase") == "Succeeded" and p,
                      what="Succeeded")
    text = log_text(ns, done)
    assert "stdout F search corp.example\n" in text and "stdout F nameserver 192.0.2.53\n" in text, text
    assert "stdout F options ndots:2\n" in text, text


# CGI scripts for busybox httpd: a redirect to another host, one to this host, and its target
# (which leaves a mark, so the test sees that the kubelet followed the redirect).
REDIRECT_SCRIPTS = {
    "away": "#!/bin/sh\nprintf 'Status: 302 Found\\r\\nLocation: http://elsewhere.invalid/\\r\\n\\r\\ngone away'\n",
    "home": "#!/bin/sh\nprintf 'Status: 302 Found\\r\\nLocation: /cgi-bin/landed\\r\\n\\r\\n'\n",
    "landed": "#!/bin/sh\ntouch /tmp/landed\nprintf 'Content-Type: text/plain\\r\\n\\r\\nlanded'\n",
}


def test_http_probe_redirects_as_upstream(agent_cluster, ns):
    """A redirect to another host ends the probe as a success with a `ProbeWarning` event; a
    redirect to the pod itself is followed."""
    configmap = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cgi"}, "data": REDIRECT_SCRIPTS}
    kubectl(agent_cluster, ns, "apply", "-f", "-", input=json.dumps(configmap))
    serve = "exec httpd -f -p 8080 -h /www"
    pod = json.loads(manifest(
        "redirects", serve,
        readinessProbe={"httpGet": {"path": "/cgi-bin/away", "port": 8080}, "periodSeconds": 1,
                        "initialDelaySeconds": 2},
        livenessProbe={"httpGet": {"path": "/cgi-bin/home", "port": 8080}, "periodSeconds": 1,
                       "initialDelaySeconds": 2},
        volumeMounts=[{"name": "cgi", "mountPath": "/www/cgi-bin"}],
    ))
    pod["spec"]["volumes"] = [{"name": "cgi", "configMap": {"name": "cgi", "defaultMode": 0o755}}]
    kubectl(agent_cluster, ns, "apply", "-f", "-", input=json.dumps(pod))

    eventually(lambda: (status_of(agent_cluster, ns, "redirects")).get("ready"), timeout=60,
               what="ready although its readiness probe is redirected elsewhere")
    warning = eventually(lambda: next((e for e in events(agent_cluster, ns, "redirects")
                                       if e["reason"] == "ProbeWarning"), None), what="ProbeWarning event")
    assert warning["type"] == "Warning", warning
    assert warning["message"] == "Readiness probe warning: Probe terminated redirects, Response body: gone away", warning
    # The liveness probe's redirect to the pod itself was followed to its target.
    eventually(lambda: kubectl(agent_cluster, ns, "exec", "redirects", "--", "test", "-f", "/tmp/landed",
                               check=False).returncode == 0, what="liveness redirect followed")
    assert status_of(agent_cluster, ns, "redirects").get("restartCount", 0) == 0
    # A probe may still beat httpd to its port on a busy machine; what must never fail is a redirect.
    assert not [e for e in events(agent_cluster, ns, "redirects")
                if e["reason"] == "Unhealthy" and "connection refused" not in e.get("message", "")]
