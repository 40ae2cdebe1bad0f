"""`skiff images import|ls|rm` against a real image store, with busybox images built from the
host's busybox-static in every archive format the store accepts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SKIFF_BIN, run

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "scripts" / "build-busybox-image.py"


def build(out: Path, *args: str) -> Path:
    run(sys.executable, str(BUILD), str(out), *args)
    return out


def images(data_dir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run(SKIFF_BIN, "images", "--data-dir", str(data_dir), *args, check=check)


def listed(data_dir: Path) -> list[tuple[str, str]]:
    lines = images(data_dir, "ls").stdout.splitlines()
    assert lines[0].split()[:3] == ["IMAGE", "TAG", "IMAGE"]
    return [tuple(line.split()[:2]) for line in lines[1:]]


def test_import_every_format_list_and_remove(tmp_path):
    oci = build(tmp_path / "oci.tar", "docker.io/library/busybox:latest")
    zst = build(tmp_path / "zst.tar", "--zstd", "registry.local:5000/tools/busybox:zstd")
    docker = build(tmp_path / "docker.tar", "--format", "docker", "busybox:docker", "team/app:2")
    gz = tmp_path / "docker.tar.gz"
    subprocess.run(["gzip", "-k", "-c", str(docker)], check=True, stdout=gz.open("wb"))

    data = tmp_path / "data"
    out = images(data, "import", str(oci), str(zst)).stdout
    assert "imported docker.io/library/busybox:latest (sha256:" in out
    assert "imported registry.local:5000/tools/busybox:zstd" in out
    out = images(data, "import", str(gz)).stdout
    assert "docker.io/library/busybox:docker" in out and "docker.io/team/app:2" in out

    assert sorted(listed(data)) == sorted([
        ("docker.io/library/busybox", "latest"),
        ("docker.io/library/busybox", "docker"),
        ("docker.io/team/app", "2"),
        ("registry.local:5000/tools/busybox", "zstd"),
    ])
    blobs = data / "agent" / "images" / "blobs" / "sha256"
    # Three manifests (the docker one synthesised), one config (all three builds share it), and
    # three layer blobs (gzip, zstd, plain tar): nothing else of the archives is kept.
    assert len(list(blobs.iterdir())) == 7

    assert images(data, "rm", "busybox:docker").stdout.strip() == "deleted docker.io/library/busybox:docker"
    assert ("docker.io/team/app", "2") in listed(data)
    images(data, "rm", "team/app:2", "registry.local:5000/tools/busybox:zstd")
    assert listed(data) == [("docker.io/library/busybox", "latest")]
    before = len(list(blobs.iterdir()))
    images(data, "rm", "busybox")
    assert listed(data) == []
    assert before == 3 and list(blobs.iterdir()) == [], "blobs of removed images are collected"


@pytest.mark.parametrize("args, message", [
    (["rm", "nope:1"], 'image "nope:1" not found'),
    (["rm", "Bad:Name"], "invalid image name"),
    (["import", "/etc/hostname"], "not an image tarball"),
    (["import", "/does/not/exist"], "No such file or directory"),
])
def test_bad_input_is_a_plain_error(tmp_path, args, message):
    result = images(tmp_path / "data", *args, check=False)
    assert result.returncode == 1
    assert message in result.stderr, result.stderr
    assert "panicked" not in result.stderr
