"""Strategic merge patch as kubectl uses it: client-side apply's three-way merge, `patch`'s
default type, `set image|env|resources`, and `rollout pause|resume|restart`.

Each test runs once per available kubectl version; the expected objects are what upstream
produces for the same commands.
"""

from __future__ import annotations

import json
import stat

APP = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
spec:
  replicas: 1
  selector:
    matchLabels: {{app: app}}
  template:
    metadata:
      labels: {{app: app}}
    spec:
      containers:
      - name: main
        image: busybox:{tag}
        command: [sleep, "3600"]
        env:
{env}
        ports:
{ports}
      - name: side
        image: busybox:side
        command: [sleep, "3600"]
"""


def app(tag: str, env: list[str], ports: list[int]) -> str:
    env_yaml = "\n".join(f"        - {{name: {e}, value: v-{e}}}" for e in env) or "        []"
    ports_yaml = "\n".join(f"        - {{containerPort: {p}}}" for p in ports) or "        []"
    return APP.format(tag=tag, env=env_yaml, ports=ports_yaml)


def containers(k) -> dict[str, dict]:
    spec = k.json("get", "deployment", "app")["spec"]["template"]["spec"]
    return {c["name"]: c for c in spec["containers"]}


def test_apply_three_way_merge_removes_what_left_the_manifest(k):
    k("apply", "-f", "-", input=app("1", ["A", "B"], [80, 81]))
    # Another writer adds an env var the manifest never mentioned: apply must keep it.
    k("set", "env", "deployment/app", "-c", "main", "EXTRA=kept")
    out = k.out("apply", "-f", "-", input=app("2", ["A"], [80]))
    assert "deployment.apps/app configured" in out
    main = containers(k)["main"]
    assert main["image"] == "busybox:2"
    assert [e["name"] for e in main["env"]] == ["A", "EXTRA"]
    assert [p["containerPort"] for p in main["ports"]] == [80]
    assert "side" in containers(k), "the untouched container survives"


def test_patch_default_type_is_strategic(k):
    k("apply", "-f", "-", input=app("1", ["A"], [80]))
    k("patch", "deployment", "app", "-p",
      json.dumps({"spec": {"template": {"spec": {"containers": [{"name": "side", "image": "busybox:patched"}]}}}}))
    c = containers(k)
    assert c["side"]["image"] == "busybox:patched"
    assert c["main"]["image"] == "busybox:1", "merging by name keeps the other container"


def test_set_image_env_resources(k):
    k("apply", "-f", "-", input=app("1", ["A"], [80]))
    assert "image updated" in k.out("set", "image", "deployment/app", "main=busybox:3")
    k("set", "env", "deployment/app", "-c", "side", "MODE=fast")
    k("set", "resources", "deployment/app", "-c", "main", "--limits=cpu=200m,memory=64Mi")
    c = containers(k)
    assert c["main"]["image"] == "busybox:3"
    assert c["side"]["env"] == [{"name": "MODE", "value": "fast"}]
    assert c["main"]["resources"]["limits"] == {"cpu": "200m", "memory": "64Mi"}
    k("set", "env", "deployment/app", "-c", "side", "MODE-")
    assert "env" not in containers(k)["side"] or containers(k)["side"]["env"] == []


def test_rollout_pause_resume_restart(k):
    k("apply", "-f", "-", input=app("1", ["A"], [80]))
    gen = k.json("get", "deployment", "app")["metadata"]["generation"]
    k("rollout", "pause", "deployment/app")
    assert k.json("get", "deployment", "app")["spec"]["paused"] is True
    k("rollout", "resume", "deployment/app")
    assert not k.json("get", "deployment", "app")["spec"].get("paused", False)
    k("rollout", "restart", "deployment/app")
    d = k.json("get", "deployment", "app")
    assert "kubectl.kubernetes.io/restartedAt" in d["spec"]["template"]["metadata"]["annotations"]
    assert d["metadata"]["generation"] > gen


def test_edit_deployment_keeps_other_containers(k, tmp_path):
    k("apply", "-f", "-", input=app("1", ["A"], [80]))
    editor = tmp_path / "editor.sh"
    editor.write_text("#!/bin/sh\nsed -i 's/busybox:side/busybox:edited/' \"$1\"\n")
    editor.chmod(editor.stat().st_mode | stat.S_IXUSR)
    out = k.out("edit", "deployment", "app", env={"KUBE_EDITOR": str(editor), "EDITOR": str(editor)})
    assert "deployment.apps/app edited" in out
    c = containers(k)
    assert (c["side"]["image"], c["main"]["image"]) == ("busybox:edited", "busybox:1")
