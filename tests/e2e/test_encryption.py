"""Encryption at rest: Secrets never reach the store in plain text.

A server of its own (no agent) with the default, generated EncryptionConfiguration: the raw
redb file is grepped for a Secret's value after create, update and key rotations; ConfigMaps,
not configured, stay plain (the same grep finds them, so the grep can fail). Rotation
(`skiff secrets-encrypt rotate`) runs on the running server (same pid): it reloads the file,
re-encrypts, compacts history and drops the old key, after which no file of the data dir holds a
value under the old key; a server stopped during `rotate` finishes at its start. A broken file
is refused by the running server (status says why) and the previous configuration stays. A
second server uses a `--encryption-provider-config` file (secretbox for ConfigMaps) and reads
its data back after a restart; an invalid file stops it at start with the field named.
"""

import base64
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import SKIFF_BIN, Cluster, Netns, eventually, unique


def raw_store(c: Cluster) -> bytes:
    return (c.data_dir / "server" / "db" / "state.redb").read_bytes()


def assert_absent(c: Cluster, value: str) -> None:
    raw = raw_store(c)
    for form in (value.encode(), base64.b64encode(value.encode())):
        assert form not in raw, f"{form!r} found in the raw store"


def secrets_encrypt(c: Cluster, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKIFF_")}
    r = subprocess.run([SKIFF_BIN, "secrets-encrypt", "--data-dir", str(c.data_dir), *args],
                       capture_output=True, text=True, env=env, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.fixture(scope="module")
def enc_cluster():
    if os.geteuid() != 0:
        pytest.skip("the e2e suite needs root (network namespaces)")
    workdir = Path(tempfile.mkdtemp(prefix="skiff-enc."))
    netns = Netns()
    c = Cluster(workdir, netns)
    try:
        c.start()
        yield c
    finally:
        c.stop()
        netns.delete()
        if not os.environ.get("KEEP_E2E_WORKDIR"):
            shutil.rmtree(workdir, ignore_errors=True)


def config_path(c: Cluster) -> Path:
    return c.data_dir / "server" / "cred" / "encryption-config.json"


def key_names(text: bytes) -> list[str]:
    """The aescbc key names of an encryption configuration file's first rule."""
    cfg = json.loads(text)
    return [k["name"] for k in cfg["resources"][0]["providers"][0]["aescbc"]["keys"]]


def replace_file(path: Path, data: bytes) -> None:
    """Replaces a file at once (the server polls it and must never read half of it)."""
    tmp = path.with_name(path.name + ".new")
    tmp.write_bytes(data)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def wait_for_stage(c: Cluster, stage: str) -> str:
    """Polls `status` until it shows `stage`; returns that output."""
    return eventually(lambda: (out := secrets_encrypt(c, "status"))
                      and f"Current Rotation Stage: {stage}\n" in out and out,
                      timeout=120, interval=1, what=f"rotation stage {stage}")


def secret_value(c: Cluster, ns: str, name: str) -> str:
    data = c.kubectl_json("get", "secret", name, "-n", ns)["data"]["v"]
    return base64.b64decode(data).decode()


def test_generated_configuration_is_private_and_encrypts_secrets(enc_cluster):
    path = enc_cluster.data_dir / "server" / "cred" / "encryption-config.json"
    assert path.stat().st_mode & 0o777 == 0o600
    out = secrets_encrypt(enc_cluster, "status")
    assert "Encryption Status: Enabled" in out
    assert "AES-CBC" in out and "Current Rotation Stage: start" in out


def test_secret_values_never_reach_the_store_in_plain_text(enc_cluster):
    c = enc_cluster
    ns = "default"
    name = unique("enc")
    first, second = unique("first-value"), unique("second-value")
    c.kubectl("create", "secret", "generic", name, "-n", ns, f"--from-literal=v={first}")
    assert secret_value(c, ns, name) == first
    assert b"k8s:enc:aescbc:v1:" in raw_store(c)
    assert_absent(c, first)
    # Update through a patch and through apply.
    c.kubectl("patch", "secret", name, "-n", ns, "-p", f'{{"stringData":{{"v":"{second}"}}}}')
    assert secret_value(c, ns, name) == second
    assert_absent(c, second)
    # A watch and a LIST see plain values (the caches hold decrypted JSON).
    items = c.kubectl_json("get", "secrets", "-n", ns)["items"]
    assert any(base64.b64decode(i["data"]["v"]).decode() == second for i in items if i["metadata"]["name"] == name)


def test_configmaps_are_not_encrypted_by_default(enc_cluster):
    c = enc_cluster
    value = unique("plain-config")
    name = unique("cm")
    c.kubectl("create", "configmap", name, f"--from-literal=v={value}")
    assert value.encode() in raw_store(c)


def test_rotation_on_the_running_server_re_encrypts_compacts_and_drops_the_old_key(enc_cluster):
    c = enc_cluster
    pid = c.proc.pid
    old_keys = key_names(config_path(c).read_bytes())
    values = {unique("live"): unique("live-value") for _ in range(5)}
    for name, value in values.items():
        c.kubectl("create", "secret", "generic", name, f"--from-literal=v={value}")
    # An older version of one Secret, kept in the store's history under the old key.
    changed = next(iter(values))
    values[changed] = unique("changed-value")
    c.kubectl("patch", "secret", changed, "-p", f'{{"stringData":{{"v":"{values[changed]}"}}}}')
    assert any(f"k8s:enc:aescbc:v1:{k}:".encode() in raw_store(c) for k in old_keys)

    out = secrets_encrypt(c, "rotate")
    new_key = out.split()[2]
    assert new_key.startswith("aescbckey-") and new_key not in old_keys, out
    status = wait_for_stage(c, "reencrypt_finished")
    assert "Server Configuration: in use" in status, status
    assert new_key in status and status.count("AES-CBC") == 1, status

    for name, value in values.items():
        assert secret_value(c, "default", name) == value
    assert key_names(config_path(c).read_bytes()) == [new_key]
    assert f"k8s:enc:aescbc:v1:{new_key}:".encode() in raw_store(c)
    # Every live value was re-written and the history compacted past the old versions. (Pages
    # the database file freed may still hold old ciphertext until they are reused, as etcd's do
    # until a defrag; plaintext is never there, as checked below.)
    done = re.search(r"finished, (\d+) values re-written with key (\S+), history compacted up to revision (\d+)",
                     status)
    assert done, status
    assert int(done[1]) >= len(values) and done[2] == new_key and int(done[3]) > 0, status
    for value in values.values():
        assert_absent(c, value)
    assert c.proc.pid == pid and c.proc.poll() is None, "the server restarted"
    # Written after the rotation: the new key.
    name, value = unique("after"), unique("after-rotation")
    c.kubectl("create", "secret", "generic", name, f"--from-literal=v={value}")
    assert secret_value(c, "default", name) == value
    assert_absent(c, value)


def test_a_broken_configuration_is_refused_by_the_running_server(enc_cluster):
    c = enc_cluster
    pid = c.proc.pid
    path = config_path(c)
    good = path.read_bytes()
    try:
        replace_file(path, b'{"apiVersion": "apiserver.config.k8s.io/v1", "kind": "EncryptionConfiguration", "resources": []}')
        status = eventually(lambda: (out := secrets_encrypt(c, "status")) and "refused" in out and out,
                            timeout=60, what="the broken file refused")
        assert "resources: Required value" in status, status
        name, value = unique("still"), unique("still-encrypted")
        c.kubectl("create", "secret", "generic", name, f"--from-literal=v={value}")
        assert secret_value(c, "default", name) == value
        assert_absent(c, value)
        assert f"k8s:enc:aescbc:v1:{key_names(good)[0]}:".encode() in raw_store(c)
    finally:
        replace_file(path, good)
    eventually(lambda: "Server Configuration: in use" in secrets_encrypt(c, "status"), timeout=60,
               what="the fixed file in use")
    assert c.proc.pid == pid


def test_a_server_stopped_during_rotate_finishes_at_start(enc_cluster):
    c = enc_cluster
    name = unique("rot")
    value = unique("rotated-value")
    c.kubectl("create", "secret", "generic", name, f"--from-literal=v={value}")
    c.stop()
    out = secrets_encrypt(c, "rotate")
    new_key = out.split()[2]
    assert "reencrypt_request" in secrets_encrypt(c, "status")
    c.start()
    status = wait_for_stage(c, "reencrypt_finished")
    assert new_key in status and status.count("AES-CBC") == 1, status
    assert secret_value(c, "default", name) == value
    assert f"k8s:enc:aescbc:v1:{new_key}:".encode() in raw_store(c)
    assert_absent(c, value)


CUSTOM = """apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
- resources: [configmaps, secrets]
  providers:
  - secretbox:
      keys:
      - name: box1
        secret: {key}
  - identity: {{}}
"""


def test_custom_configuration_encrypts_configmaps_and_survives_restart():
    if os.geteuid() != 0:
        pytest.skip("the e2e suite needs root (network namespaces)")
    workdir = Path(tempfile.mkdtemp(prefix="skiff-enc2."))
    conf = workdir / "enc.yaml"
    conf.write_text(CUSTOM.format(key=base64.b64encode(os.urandom(32)).decode()))
    netns = Netns()
    c = Cluster(workdir, netns, server_args=["--encryption-provider-config", str(conf)])
    try:
        c.start()
        value = unique("boxed-config")
        c.kubectl("create", "configmap", "boxed", f"--from-literal=v={value}")
        assert b"k8s:enc:secretbox:v1:box1:" in raw_store(c)
        assert value.encode() not in raw_store(c)
        c.restart()
        assert c.kubectl_json("get", "configmap", "boxed")["data"]["v"] == value
        assert not (c.data_dir / "server" / "cred" / "encryption-config.json").exists()
        # A broken file stops the server with the field named.
        c.stop()
        conf.write_text(CUSTOM.format(key=base64.b64encode(b"short").decode()))
        with pytest.raises(RuntimeError) as err:
            c.start()
        assert "secretbox.keys[0].secret" in str(err.value) and "expected length" in str(err.value)
    finally:
        c.stop()
        netns.delete()
        if not os.environ.get("KEEP_E2E_WORKDIR"):
            shutil.rmtree(workdir, ignore_errors=True)
