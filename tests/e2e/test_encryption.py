"""Encryption at rest: Secrets never reach the store in plain text.

A server of its own (no agent) with the default, generated EncryptionConfiguration: the raw
redb file is grepped for a Secret's value after create, update and a key rotation
(`skiff secrets-encrypt rotate`, then a restart that re-encrypts); ConfigMaps, not configured,
stay plain (the same grep finds them, so the grep can fail). A second server uses a
`--encryption-provider-config` file (secretbox for ConfigMaps) and reads its data back after a
restart; an invalid file stops the server with the field named.
"""

import base64
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import SKIFF_BIN, Cluster, Netns, unique


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


def test_rotation_re_encrypts_with_the_new_key_at_restart(enc_cluster):
    c = enc_cluster
    name = unique("rot")
    value = unique("rotated-value")
    c.kubectl("create", "secret", "generic", name, f"--from-literal=v={value}")
    out = secrets_encrypt(c, "rotate")
    new_key = out.split()[2]
    assert new_key.startswith("aescbckey-"), out
    assert "reencrypt_request" in secrets_encrypt(c, "status")
    c.restart()
    assert secret_value(c, "default", name) == value
    assert f"k8s:enc:aescbc:v1:{new_key}:".encode() in raw_store(c)
    assert_absent(c, value)
    status = secrets_encrypt(c, "status")
    assert new_key in status and "Current Rotation Stage: start" in status
    assert status.count("AES-CBC") == 1, status
    # Written after the rotation: the new key again.
    name2, value2 = unique("rot2"), unique("after-rotation")
    c.kubectl("create", "secret", "generic", name2, f"--from-literal=v={value2}")
    assert secret_value(c, "default", name2) == value2
    assert_absent(c, value2)


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
