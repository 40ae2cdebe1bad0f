"""The disruption controller counts expected pods through any owner's `/scale`, on the shared
no-agent cluster: pods controlled by a custom resource whose CRD has a scale subresource give a
PodDisruptionBudget `expectedPods` equal to the resource's `spec.replicas` (for `maxUnavailable`
and a percentage `minAvailable`); pods controlled by a custom resource without `/scale` leave the
budget at zero disruptions with upstream's `SyncFailed` condition and a
`CalculateExpectedPodCountFailed` event. Pods stay Pending (no agent): they are marked Ready
through the status subresource, which is all the controller reads."""

from __future__ import annotations

import json

from conftest import Cluster, eventually, unique


def crd(group: str, kind: str, plural: str, scale: bool) -> str:
    version = {"name": "v1", "served": True, "storage": True,
               "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}
    if scale:
        version["subresources"] = {"scale": {"specReplicasPath": ".spec.replicas",
                                             "statusReplicasPath": ".status.replicas"}}
    return json.dumps({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {"group": group, "scope": "Namespaced", "versions": [version],
                 "names": {"plural": plural, "singular": kind.lower(), "kind": kind}},
    })


def established(c: Cluster, name: str) -> bool:
    conds = c.kubectl_json("get", "crd", name).get("status", {}).get("conditions", [])
    return any(cd["type"] == "Established" and cd["status"] == "True" for cd in conds)


def owned_ready_pods(c: Cluster, ns: str, app: str, owner: dict, indexes: range) -> None:
    """Creates pods `<app>-<i>` labelled `app` with a controller reference to `owner`, marked Ready."""
    ref = {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
           "uid": owner["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}
    for i in indexes:
        name = f"{app}-{i}"
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "labels": {"app": app}, "ownerReferences": [ref]},
               "spec": {"containers": [{"name": "main", "image": "busybox"}]}}
        c.kubectl("-n", ns, "create", "-f", "-", input=json.dumps(pod))
        ready = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
        c.kubectl("-n", ns, "patch", "pod", name, "--subresource=status", "--type=merge", "-p", json.dumps(ready))


def pdb(name: str, app: str, **spec) -> str:
    return json.dumps({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": name},
                       "spec": {"selector": {"matchLabels": {"app": app}}, **spec}})


def pdb_status(c: Cluster, ns: str, name: str) -> dict:
    return c.kubectl_json("-n", ns, "get", "pdb", name).get("status", {})


def condition(status: dict) -> dict:
    return next((cd for cd in status.get("conditions", []) if cd["type"] == "DisruptionAllowed"), {})


def test_expected_pods_come_from_a_custom_resource_scale(cluster, namespace):
    c, ns = cluster, namespace
    group = f"{unique('scale')}.e2e.skiff.io"
    c.kubectl("create", "-f", "-", input=crd(group, "Widget", "widgets", scale=True))
    try:
        eventually(lambda: established(c, f"widgets.{group}"), what="CRD established")
        widget = {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w"},
                  "spec": {"replicas": 3}}
        eventually(lambda: c.kubectl("-n", ns, "create", "-f", "-", input=json.dumps(widget), check=False)
                   .returncode == 0, what="widget created")
        owner = c.kubectl_json("-n", ns, "get", f"widgets.{group}", "w")
        # Only two of the widget's three replicas exist: a count of pods would say 2.
        owned_ready_pods(c, ns, "w", owner, range(2))
        c.kubectl("-n", ns, "create", "-f", "-", input=pdb("max", "w", maxUnavailable=1))
        c.kubectl("-n", ns, "create", "-f", "-", input=pdb("pct", "w", minAvailable="50%"))
        s = eventually(lambda: (s := pdb_status(c, ns, "max")).get("expectedPods") == 3 and s,
                       what="expectedPods from the widget's /scale")
        assert (s["desiredHealthy"], s["currentHealthy"], s["disruptionsAllowed"]) == (2, 2, 0), s
        assert condition(s)["reason"] == "InsufficientPods", s
        s = eventually(lambda: (s := pdb_status(c, ns, "pct")).get("expectedPods") == 3 and s,
                       what="percentage budget over the widget's scale")
        assert (s["desiredHealthy"], s["currentHealthy"], s["disruptionsAllowed"]) == (2, 2, 0), "50% of 3 rounds up"
        # The third replica appears: one disruption is allowed.
        owned_ready_pods(c, ns, "w", owner, range(2, 3))
        s = eventually(lambda: (s := pdb_status(c, ns, "max")).get("disruptionsAllowed") == 1 and s,
                       what="one disruption allowed")
        assert (s["expectedPods"], s["desiredHealthy"], s["currentHealthy"]) == (3, 2, 3), s
        assert (condition(s)["status"], condition(s)["reason"]) == ("True", "SufficientPods"), s
    finally:
        c.kubectl("delete", "crd", f"widgets.{group}", "--wait=false", check=False)


def test_an_owner_without_scale_fails_the_budget_as_upstream(cluster, namespace):
    c, ns = cluster, namespace
    group = f"{unique('noscale')}.e2e.skiff.io"
    c.kubectl("create", "-f", "-", input=crd(group, "Gadget", "gadgets", scale=False))
    try:
        eventually(lambda: established(c, f"gadgets.{group}"), what="CRD established")
        gadget = {"apiVersion": f"{group}/v1", "kind": "Gadget", "metadata": {"name": "g"}, "spec": {"replicas": 2}}
        eventually(lambda: c.kubectl("-n", ns, "create", "-f", "-", input=json.dumps(gadget), check=False)
                   .returncode == 0, what="gadget created")
        owned_ready_pods(c, ns, "g", c.kubectl_json("-n", ns, "get", f"gadgets.{group}", "g"), range(2))
        c.kubectl("-n", ns, "create", "-f", "-", input=pdb("budget", "g", maxUnavailable=1))
        message = f"gadgets.{group} does not implement the scale subresource"
        s = eventually(lambda: (s := pdb_status(c, ns, "budget")) and condition(s).get("reason") == "SyncFailed"
                       and s, what="SyncFailed condition")
        cond = condition(s)
        assert (cond["status"], cond["message"], s.get("disruptionsAllowed", 0)) == ("False", message, 0), s
        events = eventually(lambda: [e for e in c.kubectl_json("-n", ns, "get", "events")["items"]
                                     if e["reason"] == "CalculateExpectedPodCountFailed"], what="event")
        assert events[0]["type"] == "Warning"
        assert events[0]["message"] == f"Failed to calculate the number of expected pods: {message}"
        assert events[0]["involvedObject"]["kind"] == "PodDisruptionBudget"
        # An integer minAvailable counts the selected pods and needs no scale: the budget recovers.
        c.kubectl("-n", ns, "patch", "pdb", "budget", "--type=merge", "-p",
                  json.dumps({"spec": {"maxUnavailable": None, "minAvailable": 1}}))
        s = eventually(lambda: (s := pdb_status(c, ns, "budget")).get("disruptionsAllowed") == 1 and s,
                       what="integer minAvailable recovers")
        assert (s["expectedPods"], condition(s)["reason"]) == (2, "SufficientPods"), s
    finally:
        c.kubectl("delete", "crd", f"gadgets.{group}", "--wait=false", check=False)
