"""Jobs and CronJobs end to end: a `skiff server` with its agent runs the Jobs' pods as real
busybox containers; the Job controller counts them through the tracking finalizer and the
CronJob controller creates Jobs on schedule. Checked with kubectl 1.32 and 1.20 and the Python
client."""

from __future__ import annotations

import json
import time

import pytest
from kubernetes import client as k8s

from conftest import Cluster, eventually, running_agent_cluster, unique

NODE = "e2e-jobs"
TRACKING = "batch.kubernetes.io/job-tracking"


@pytest.fixture(scope="module")
def jc():
    with running_agent_cluster(NODE) as c:
        yield c


@pytest.fixture
def ns(jc):
    name = unique("jobs")
    jc.kubectl("create", "namespace", name)
    yield name
    jc.kubectl("delete", "namespace", name, "--wait=false", check=False)


def job_manifest(name: str, command: str, **spec) -> str:
    pod = {
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": 1,
        "containers": [{"name": "main", "image": "busybox", "imagePullPolicy": "IfNotPresent",
                        "command": ["sh", "-c", command]}],
    }
    return json.dumps({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
                       "spec": {**spec, "template": {"spec": pod}}})


def pods_of(c: Cluster, ns: str, job: str) -> list[dict]:
    return c.kubectl_json("-n", ns, "get", "pods", "-l", f"batch.kubernetes.io/job-name={job}")["items"]


def events_of(c: Cluster, ns: str, name: str) -> list[dict]:
    items = c.kubectl_json("-n", ns, "get", "events", "--field-selector", f"involvedObject.name={name}")["items"]
    return items


def reasons(c: Cluster, ns: str, name: str) -> set[str]:
    return {e.get("reason") for e in events_of(c, ns, name)}


def test_job_runs_to_completion(jc, ns):
    jc.kubectl("-n", ns, "apply", "-f", "-",
               input=job_manifest("three", "sleep 2; echo done", completions=3, parallelism=2))
    max_active = 0

    def active_within_parallelism():
        nonlocal max_active
        pods = [p for p in pods_of(jc, ns, "three") if p.get("status", {}).get("phase") in ("Pending", "Running")]
        max_active = max(max_active, len(pods))
        return len([p for p in pods_of(jc, ns, "three") if p["status"].get("phase") == "Succeeded"]) >= 3

    eventually(active_within_parallelism, timeout=90, interval=0.3, what="three pods succeeded")
    assert max_active <= 2, f"parallelism 2 was exceeded: {max_active} pods active at once"
    jc.kubectl("-n", ns, "wait", "--for=condition=complete", "job/three", "--timeout=60s")
    job = jc.kubectl_json("-n", ns, "get", "job", "three")
    st = job["status"]
    assert st["succeeded"] == 3 and st.get("failed", 0) == 0 and st.get("active", 0) == 0, st
    assert st["startTime"] and st["completionTime"], st
    types = [(c["type"], c["status"], c.get("reason")) for c in st["conditions"]]
    assert ("SuccessCriteriaMet", "True", "CompletionsReached") in types, types
    assert ("Complete", "True", "CompletionsReached") in types, types
    assert not st.get("uncountedTerminatedPods", {}).get("succeeded"), st
    # Every pod was counted once and released: no tracking finalizer is left behind.
    pods = eventually(lambda: (p := pods_of(jc, ns, "three")) and all(TRACKING not in p_.get("metadata", {}).get(
        "finalizers", []) for p_ in p) and p, what="finalizers removed")
    assert len(pods) == 3, [p["metadata"]["name"] for p in pods]
    labels = pods[0]["metadata"]["labels"]
    assert labels["batch.kubernetes.io/job-name"] == "three" and labels["job-name"] == "three"
    assert labels["controller-uid"] == job["metadata"]["uid"]
    eventually(lambda: {"SuccessfulCreate", "Completed"} <= reasons(jc, ns, "three"), what="job events")
    table = jc.kubectl("-n", ns, "get", "job", "three").stdout
    assert table.split("\n")[0].split() == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"], table
    assert table.split("\n")[1].split()[1:3] == ["Complete", "3/3"], table
    old = jc.kubectl("-n", ns, "get", "job", "three", version="1.20").stdout
    assert old.split("\n")[1].split()[2] == "3/3", old
    # A finished Job is left alone: no status rewrites while the checks above ran.
    after = jc.kubectl_json("-n", ns, "get", "job", "three")
    assert after["metadata"]["resourceVersion"] == job["metadata"]["resourceVersion"], after["status"]


def test_failing_job_hits_backoff_limit(jc, ns):
    jc.kubectl("-n", ns, "apply", "-f", "-", input=job_manifest("fails", "exit 3", backoffLimit=1))
    jc.kubectl("-n", ns, "wait", "--for=condition=failed", "job/fails", "--timeout=90s")
    st = jc.kubectl_json("-n", ns, "get", "job", "fails")["status"]
    assert st["failed"] == 2 and st.get("succeeded", 0) == 0, st
    failed = [c for c in st["conditions"] if c["type"] == "Failed"][0]
    assert failed["reason"] == "BackoffLimitExceeded"
    assert failed["message"] == "Job has reached the specified backoff limit"
    assert any(c["type"] == "FailureTarget" for c in st["conditions"]), st
    pods = pods_of(jc, ns, "fails")
    assert len(pods) == 2 and all(p["status"]["phase"] == "Failed" for p in pods), pods
    # The second pod waited out the back-off (10 s) after the first failure.
    def at(p, path):
        v = p
        for k in path:
            v = v[k]
        return time.mktime(time.strptime(v, "%Y-%m-%dT%H:%M:%SZ"))

    pods.sort(key=lambda p: p["metadata"]["creationTimestamp"])
    finished = at(pods[0], ["status", "containerStatuses", 0, "state", "terminated", "finishedAt"])
    gap = at(pods[1], ["metadata", "creationTimestamp"]) - finished
    assert gap >= 9, f"the second pod came {gap}s after the first failure"

    eventually(lambda: "BackoffLimitExceeded" in reasons(jc, ns, "fails"), what="BackoffLimitExceeded event")
    row = jc.kubectl("-n", ns, "get", "job", "fails").stdout.split("\n")[1].split()
    assert row[1:3] == ["Failed", "0/1"], row


def test_indexed_job(jc, ns):
    jc.kubectl("-n", ns, "apply", "-f", "-", input=job_manifest(
        "idx", 'echo "index=$JOB_COMPLETION_INDEX host=$(hostname)"', completions=3, parallelism=3,
        completionMode="Indexed"))
    jc.kubectl("-n", ns, "wait", "--for=condition=complete", "job/idx", "--timeout=90s")
    st = jc.kubectl_json("-n", ns, "get", "job", "idx")["status"]
    assert st["completedIndexes"] == "0-2" and st["succeeded"] == 3, st
    pods = pods_of(jc, ns, "idx")
    seen = set()
    for p in pods:
        i = p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
        assert p["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"] == i
        assert p["metadata"]["name"].startswith(f"idx-{i}-")
        out = jc.kubectl("-n", ns, "logs", p["metadata"]["name"]).stdout.strip()
        assert out == f"index={i} host=idx-{i}", out
        seen.add(i)
    assert seen == {"0", "1", "2"}



def test_backoff_limit_per_index(jc, ns):
    jc.kubectl("-n", ns, "apply", "-f", "-", input=job_manifest(
        "perindex", '[ "$JOB_COMPLETION_INDEX" = 1 ] && exit 1; true', completions=3, parallelism=3,
        completionMode="Indexed", backoffLimitPerIndex=1))
    jc.kubectl("-n", ns, "wait", "--for=condition=failed", "job/perindex", "--timeout=90s")
    st = jc.kubectl_json("-n", ns, "get", "job", "perindex")["status"]
    assert (st["completedIndexes"], st["failedIndexes"], st["failed"], st["succeeded"]) == ("0,2", "1", 2, 2), st
    failed = [c for c in st["conditions"] if c["type"] == "Failed"][0]
    assert (failed["reason"], failed["message"]) == ("FailedIndexes", "Job has failed indexes")
    counts = sorted(p["metadata"]["annotations"]["batch.kubernetes.io/job-index-failure-count"]
                    for p in pods_of(jc, ns, "perindex")
                    if p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] == "1")
    assert counts == ["0", "1"], counts

def test_python_client_sees_status_fields(jc, ns):
    jc.kubectl("-n", ns, "apply", "-f", "-", input=job_manifest("py", "true", completions=2, parallelism=2))
    api = k8s.BatchV1Api(jc.python_client())

    def done():
        j = api.read_namespaced_job_status("py", ns)
        return j if any(c.type == "Complete" and c.status == "True" for c in j.status.conditions or []) else None

    j = eventually(done, timeout=90, what="job complete")
    assert j.status.succeeded == 2 and j.status.ready in (0, None) and j.status.terminating in (0, None)
    assert j.status.active in (None, 0)
    assert j.status.uncounted_terminated_pods.succeeded in (None, [])
    assert j.status.completion_time >= j.status.start_time
    assert j.spec.selector.match_labels["batch.kubernetes.io/controller-uid"] == j.metadata.uid


def test_suspended_job_runs_no_pods(jc, ns):
    jc.kubectl("-n", ns, "apply", "-f", "-", input=job_manifest("held", "true", suspend=True))
    st = eventually(lambda: (s := jc.kubectl_json("-n", ns, "get", "job", "held").get("status", {})).get(
        "conditions") and s, what="Suspended condition")
    cond = [c for c in st["conditions"] if c["type"] == "Suspended"][0]
    assert (cond["status"], cond["reason"], cond["message"]) == ("True", "JobSuspended", "Job suspended")
    assert pods_of(jc, ns, "held") == []
    jc.kubectl("-n", ns, "patch", "job", "held", "--type=merge", "-p", '{"spec":{"suspend":false}}')
    jc.kubectl("-n", ns, "wait", "--for=condition=complete", "job/held", "--timeout=90s")
    conds = {c["type"]: c for c in jc.kubectl_json("-n", ns, "get", "job", "held")["status"]["conditions"]}
    assert conds["Suspended"]["status"] == "False" and conds["Suspended"]["reason"] == "JobResumed"



def test_pod_failure_policy_fails_the_job(jc, ns):
    policy = {"rules": [{"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In", "values": [42]}}]}
    jc.kubectl("-n", ns, "apply", "-f", "-", input=job_manifest("pfp", "exit 42", podFailurePolicy=policy))
    jc.kubectl("-n", ns, "wait", "--for=condition=failed", "job/pfp", "--timeout=90s")
    st = jc.kubectl_json("-n", ns, "get", "job", "pfp")["status"]
    pod = pods_of(jc, ns, "pfp")[0]["metadata"]["name"]
    failed = [c for c in st["conditions"] if c["type"] == "Failed"][0]
    assert failed["reason"] == "PodFailurePolicy"
    assert failed["message"] == f"Container main for pod {ns}/{pod} failed with exit code 42 matching FailJob rule at index 0"
    assert st["failed"] == 1, st


def test_active_deadline_and_ttl(jc, ns):
    jc.kubectl("-n", ns, "apply", "-f", "-",
               input=job_manifest("slow", "sleep 60", activeDeadlineSeconds=3, ttlSecondsAfterFinished=5))
    jc.kubectl("-n", ns, "wait", "--for=condition=failed", "job/slow", "--timeout=60s")
    job = jc.kubectl_json("-n", ns, "get", "job", "slow")
    failed = [c for c in job["status"]["conditions"] if c["type"] == "Failed"][0]
    assert (failed["reason"], failed["message"]) == ("DeadlineExceeded", "Job was active longer than specified deadline")
    assert "DeadlineExceeded" in reasons(jc, ns, "slow")
    # ttlSecondsAfterFinished: the finished Job (and its pods) go away.
    eventually(lambda: jc.kubectl("-n", ns, "get", "job", "slow", check=False).returncode != 0, timeout=40,
               what="job deleted after its TTL")
    eventually(lambda: pods_of(jc, ns, "slow") == [], timeout=30, what="pods deleted with the job")

CRON = """apiVersion: batch/v1
kind: CronJob
metadata:
  name: tick
spec:
  schedule: "*/1 * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          terminationGracePeriodSeconds: 1
          containers:
          - name: main
            image: busybox
            imagePullPolicy: IfNotPresent
            command: ["sh", "-c", "echo tick"]
"""


def test_cronjob_fires_every_minute(jc, ns):
    jc.kubectl("-n", ns, "apply", "-f", "-", input=CRON, version="1.20")
    cj = jc.kubectl_json("-n", ns, "get", "cronjob", "tick")
    manual = jc.kubectl("-n", ns, "create", "job", "--from=cronjob/tick", "tick-manual").stdout
    assert "tick-manual created" in manual
    m = jc.kubectl_json("-n", ns, "get", "job", "tick-manual")
    assert m["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"
    jc.kubectl("-n", ns, "wait", "--for=condition=complete", "job/tick-manual", "--timeout=60s")

    def scheduled():
        jobs = jc.kubectl_json("-n", ns, "get", "jobs")["items"]
        return [j for j in jobs if j["metadata"]["name"] != "tick-manual"]

    jobs = eventually(scheduled, timeout=75, interval=1, what="a scheduled job")
    job = jobs[0]
    stamp = job["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"]
    minute = int(job["metadata"]["name"].rsplit("-", 1)[1])
    assert stamp == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(minute * 60)), (stamp, minute)
    ref = job["metadata"]["ownerReferences"][0]
    assert (ref["kind"], ref["name"], ref["uid"], ref["controller"]) == ("CronJob", "tick", cj["metadata"]["uid"], True)
    st = eventually(lambda: (s := jc.kubectl_json("-n", ns, "get", "cronjob", "tick").get("status", {})).get(
        "lastScheduleTime") and s, what="lastScheduleTime")
    assert st["lastScheduleTime"] == stamp
    eventually(lambda: "SuccessfulCreate" in reasons(jc, ns, "tick"), what="SuccessfulCreate event")
    jc.kubectl("-n", ns, "wait", "--for=condition=complete", f"job/{job['metadata']['name']}", "--timeout=40s")
    eventually(lambda: jc.kubectl_json("-n", ns, "get", "cronjob", "tick").get("status", {}).get(
        "lastSuccessfulTime"), what="lastSuccessfulTime")
    for version in ("1.32", "1.20"):
        out = jc.kubectl("-n", ns, "get", "jobs,cronjobs", version=version).stdout
        assert "cronjob.batch/tick" in out and "job.batch/tick-manual" in out, out
        header = [line for line in out.split("\n") if line.startswith("NAME") and "SCHEDULE" in line][0].split()
        assert header[:2] == ["NAME", "SCHEDULE"], header
        row = [line for line in out.split("\n") if line.startswith("cronjob.batch/tick")][0]
        assert "*/1 * * * *" in row, row


def test_job_managed_by_another_controller_is_left_alone(jc, ns):
    jc.kubectl("-n", ns, "apply", "-f", "-", input=job_manifest("elsewhere", "true", managedBy="example.com/other"))
    jc.kubectl("-n", ns, "apply", "-f", "-", input=job_manifest("here", "true"))
    # By the time a Job of the same controller has run to completion, the other one would have
    # pods and a status if the controller looked at it.
    jc.kubectl("-n", ns, "wait", "--for=condition=complete", "job/here", "--timeout=90s")
    job = jc.kubectl_json("-n", ns, "get", "job", "elsewhere")
    assert job["spec"]["managedBy"] == "example.com/other"
    assert not job.get("status"), job.get("status")
    assert pods_of(jc, ns, "elsewhere") == []
    for name, value in (("elsewhere", "example.com/another"), ("here", "example.com/other")):
        r = jc.kubectl("-n", ns, "patch", "job", name, "--type=merge", "-p",
                       json.dumps({"spec": {"managedBy": value}}), check=False)
        assert r.returncode != 0
        assert f'spec.managedBy: Invalid value: "{value}": field is immutable' in r.stderr, r.stderr
    r = jc.kubectl("-n", ns, "apply", "-f", "-", check=False,
                   input=job_manifest("badowner", "true", managedBy="not a path"))
    assert 'spec.managedBy: Invalid value: "not a path": must be a domain-prefixed path (such as "acme.io/foo")' \
        in r.stderr, r.stderr


def test_success_policy_finishes_an_indexed_job_early(jc, ns):
    policy = {"rules": [{"succeededIndexes": "0"}]}
    jc.kubectl("-n", ns, "apply", "-f", "-", input=job_manifest(
        "early", '[ "$JOB_COMPLETION_INDEX" = 0 ] && exit 0; sleep 300', completions=5, parallelism=5,
        completionMode="Indexed", successPolicy=policy))
    jc.kubectl("-n", ns, "wait", "--for=condition=complete", "job/early", "--timeout=120s")
    st = jc.kubectl_json("-n", ns, "get", "job", "early")["status"]
    conds = {c["type"]: c for c in st["conditions"]}
    for t in ("SuccessCriteriaMet", "Complete"):
        c = conds[t]
        assert (c["status"], c["reason"], c["message"]) == ("True", "SuccessPolicy", "Matched rules at index 0"), c
    assert conds["SuccessCriteriaMet"]["lastTransitionTime"] <= conds["Complete"]["lastTransitionTime"]
    assert st["completedIndexes"] == "0" and st["succeeded"] == 1, st
    assert st["completionTime"] and st.get("active", 0) == 0 and st.get("terminating", 0) == 0, st
    # Complete came only once the sleeping pods had stopped; they are deleted, index 0 stays.
    assert all(p["status"].get("phase") in ("Succeeded", "Failed") for p in pods_of(jc, ns, "early"))
    left = eventually(lambda: ps if len(ps := pods_of(jc, ns, "early")) == 1 else None, what="only index 0 left")
    assert left[0]["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] == "0"
    assert left[0]["status"]["phase"] == "Succeeded"


def test_success_policy_validation(jc, ns):
    r = jc.kubectl("-n", ns, "apply", "-f", "-", check=False, input=job_manifest(
        "badpolicy", "true", completions=3, completionMode="Indexed",
        successPolicy={"rules": [{"succeededIndexes": "2,1"}]}))
    assert ('spec.successPolicy.rules[0].succeededIndexes: Invalid value: "2,1": error parsing succeededIndexes: '
            "non-increasing order, previous: 2, current: 1") in r.stderr, r.stderr
    r = jc.kubectl("-n", ns, "apply", "-f", "-", check=False, input=job_manifest(
        "nonindexed", "true", successPolicy={"rules": [{"succeededCount": 1}]}))
    assert "requires indexed completion mode" in r.stderr, r.stderr
