#!/usr/bin/env bash
# Installs what building, running and testing skiff needs on Debian bookworm (run as root).
# Idempotent: each step checks first and only acts when something is missing.
#
#   apt packages     busybox-static nftables iproute2 ca-certificates curl python3-venv pkg-config
#                    libseccomp-dev zstd
#   kubectl 1.20     Debian's kubernetes-client, unpacked (not installed) into $SKIFF_TOOLS/kubectl-1.20/
#   Python venv      $SKIFF_TOOLS/venv with the kubernetes client and pytest
#   Rust             cargo must already be on PATH
#
# SKIFF_TOOLS defaults to /opt/skiff-tools.
set -euo pipefail

SKIFF_TOOLS=${SKIFF_TOOLS:-/opt/skiff-tools}
APT_PACKAGES=(busybox-static nftables iproute2 ca-certificates curl python3-venv pkg-config libseccomp-dev zstd)
PIP_PACKAGES=(kubernetes pytest kopf)

say() { echo "[deps] $*"; }
die() { echo "[deps] error: $*" >&2; exit 1; }

export DEBIAN_FRONTEND=noninteractive
apt_updated=0
apt_update_once() {
  if [ "$apt_updated" -eq 0 ]; then
    say "apt-get update"
    apt-get update -q >/dev/null
    apt_updated=1
  fi
}

if [ "$(id -u)" -ne 0 ]; then
  die "run as root (apt-get, network namespaces and the server's default paths need it)"
fi

# 1. Rust toolchain: not installed here, only checked.
if ! command -v cargo >/dev/null 2>&1; then
  die "cargo not found on PATH. Install a Rust toolchain (1.90 or newer), e.g. with rustup, then run again."
fi
say "rust: $(cargo --version)"

# 2. apt packages, only the missing ones.
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  apt_update_once
  say "apt-get install ${missing[*]}"
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
else
  say "apt packages: all present"
fi

# 3. kubectl 1.20 from Debian's kubernetes-client, extracted next to (not over) the system kubectl.
KUBECTL_120="$SKIFF_TOOLS/kubectl-1.20/kubectl"
if [ -x "$KUBECTL_120" ]; then
  say "kubectl 1.20: present at $KUBECTL_120"
else
  apt_update_once
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  # apt fetches as the _apt user; let it write into the download dir.
  if id _apt >/dev/null 2>&1; then chown _apt "$work"; fi
  (cd "$work" && apt-get download -q kubernetes-client >/dev/null)
  deb=$(find "$work" -maxdepth 1 -name 'kubernetes-client_*.deb' | head -n 1)
  [ -n "$deb" ] || die "apt-get download kubernetes-client produced no .deb"
  dpkg -x "$deb" "$work/root"
  [ -x "$work/root/usr/bin/kubectl" ] || die "no usr/bin/kubectl in $(basename "$deb")"
  mkdir -p "$(dirname "$KUBECTL_120")"
  install -m 0755 "$work/root/usr/bin/kubectl" "$KUBECTL_120"
  say "kubectl 1.20: extracted $(basename "$deb") to $KUBECTL_120"
fi

# 4. Python venv with the Kubernetes client and pytest.
VENV="$SKIFF_TOOLS/venv"
if [ ! -x "$VENV/bin/python" ]; then
  mkdir -p "$SKIFF_TOOLS"
  python3 -m venv "$VENV"
  say "python venv: created $VENV"
fi
missing_pip=()
for pkg in "${PIP_PACKAGES[@]}"; do
  if ! "$VENV/bin/python" -m pip show -q "$pkg" >/dev/null 2>&1; then
    missing_pip+=("$pkg")
  fi
done
if [ "${#missing_pip[@]}" -gt 0 ]; then
  say "pip install ${missing_pip[*]}"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "${missing_pip[@]}"
else
  say "python packages: all present in $VENV"
fi

# 5. What the tests will use.
if [ -x /usr/bin/kubectl ]; then
  say "kubectl (current): $(/usr/bin/kubectl version --client 2>/dev/null | head -n 1)"
else
  say "kubectl (current): /usr/bin/kubectl not present; e2e tests for it will be skipped"
fi
say "done"
