#!/usr/bin/env python3
"""Builds a busybox OCI image tarball from the host's static busybox (apt busybox-static).

Usage: build-busybox-image.py OUT.tar [NAME ...]
Default name: docker.io/library/busybox:latest. Also accepts --format docker for a legacy
`docker save` archive, and --zstd to compress the layer with zstd (python3-zstandard or the
zstd CLI must exist). The image has /bin/busybox with one symlink per applet, /etc/passwd,
/etc/group (root and nobody), /tmp, and Cmd ["sh"].
"""
import argparse
import gzip
import hashlib
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile

BUSYBOX = "/bin/busybox"
MTIME = 1_700_000_000


def add_dir(tar, name, mode=0o755):
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = mode
    info.mtime = MTIME
    tar.addfile(info)


def add_file(tar, name, data, mode=0o644):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = MTIME
    tar.addfile(info, io.BytesIO(data))


def add_symlink(tar, name, target):
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    info.mtime = MTIME
    tar.addfile(info)


def build_layer():
    applets = subprocess.run([BUSYBOX, "--list"], check=True, capture_output=True, text=True).stdout.split()
    with open(BUSYBOX, "rb") as f:
        binary = f.read()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in ["bin", "etc", "root", "home", "var", "var/www"]:
            add_dir(tar, d)
        add_dir(tar, "tmp", 0o1777)
        add_file(tar, "bin/busybox", binary, 0o755)
        for applet in sorted(set(applets)):
            if applet != "busybox":
                add_symlink(tar, f"bin/{applet}", "busybox")
        add_file(tar, "etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n")
        add_file(tar, "etc/group", b"root:x:0:\nnobody:x:65534:\n")
    return buf.getvalue()


def digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def compress(layer, use_zstd):
    if not use_zstd:
        return gzip.compress(layer, mtime=0), "application/vnd.oci.image.layer.v1.tar+gzip"
    zstd = shutil.which("zstd")
    if not zstd:
        sys.exit("zstd CLI not found")
    out = subprocess.run([zstd, "-q", "-c"], input=layer, check=True, capture_output=True).stdout
    return out, "application/vnd.oci.image.layer.v1.tar+zstd"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("names", nargs="*", default=["docker.io/library/busybox:latest"])
    ap.add_argument("--format", choices=["oci", "docker"], default="oci")
    ap.add_argument("--zstd", action="store_true")
    args = ap.parse_intermixed_args()

    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    layer = build_layer()
    config = json.dumps({
        "architecture": arch, "os": "linux", "created": "2023-11-14T22:13:20Z",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [digest(layer)]},
    }, sort_keys=True).encode()

    tmp = args.out + ".tmp"
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        if args.format == "docker":
            add_file(tar, digest(config)[7:] + ".json", config)
            add_dir(tar, "layer0")
            add_file(tar, "layer0/layer.tar", layer)
            manifest = [{"Config": digest(config)[7:] + ".json", "RepoTags": args.names, "Layers": ["layer0/layer.tar"]}]
            add_file(tar, "manifest.json", json.dumps(manifest).encode())
        else:
            blob, media_type = compress(layer, args.zstd)
            manifest = json.dumps({
                "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(config), "size": len(config)},
                "layers": [{"mediaType": media_type, "digest": digest(blob), "size": len(blob)}],
            }, sort_keys=True).encode()
            add_file(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
            add_dir(tar, "blobs")
            add_dir(tar, "blobs/sha256")
            for data in (blob, config, manifest):
                add_file(tar, "blobs/sha256/" + digest(data)[7:], data)
            index = {"schemaVersion": 2, "manifests": [
                {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest(manifest), "size": len(manifest),
                 "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": name}}
                for name in args.names]}
            add_file(tar, "index.json", json.dumps(index).encode())
    os.replace(tmp, args.out)


if __name__ == "__main__":
    main()
