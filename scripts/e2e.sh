#!/usr/bin/env bash
# End-to-end suite: builds the release binary and runs tests/e2e with pytest (as root: the tests
# create network namespaces). Extra arguments go to pytest, e.g. scripts/e2e.sh -k apply; when the
# first one is a path under tests/ only those paths run (scripts/e2e.sh tests/e2e/test_pods.py).
#
# Environment handed to the tests:
#   SKIFF_BIN    the skiff binary under test
#   SKIFF_INCLUSTER_BIN  the kube-rs in-cluster client the token tests run in a pod
#   KUBECTL_132  current kubectl (/usr/bin/kubectl if present; tests for it skip otherwise)
#   KUBECTL_120  kubectl 1.20 from scripts/deps.sh (tests for it skip if missing)
set -euo pipefail
cd "$(dirname "$0")/.."

SKIFF_TOOLS=${SKIFF_TOOLS:-/opt/skiff-tools}
PYTHON="$SKIFF_TOOLS/venv/bin/python"
[ -x "$PYTHON" ] || { echo "[e2e] no Python venv at $SKIFF_TOOLS/venv; run scripts/deps.sh" >&2; exit 1; }

cargo build --release --bin skiff --example incluster
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
export SKIFF_BIN="$target_dir/release/skiff"
export SKIFF_INCLUSTER_BIN="$target_dir/release/examples/incluster"
[ -x "$SKIFF_BIN" ] || { echo "[e2e] no binary at $SKIFF_BIN" >&2; exit 1; }

# /usr/bin/kubectl may be gcloud's dispatcher, which picks a client version to match the server;
# prefer its pinned 1.32 binary so the suite really runs kubectl 1.32.
if [ -z "${KUBECTL_132:-}" ]; then
  for candidate in /usr/lib/google-cloud-sdk/bin/kubectl.1.32 /usr/bin/kubectl; do
    if [ -x "$candidate" ]; then KUBECTL_132=$candidate; break; fi
  done
fi
export KUBECTL_132=${KUBECTL_132:-}
export KUBECTL_120=${KUBECTL_120:-$SKIFF_TOOLS/kubectl-1.20/kubectl}

echo "[e2e] SKIFF_BIN=$SKIFF_BIN KUBECTL_132=${KUBECTL_132:-none} KUBECTL_120=$KUBECTL_120"
paths=(tests/e2e)
if [ $# -gt 0 ] && [[ "$1" == tests/* ]]; then paths=(); fi
exec "$PYTHON" -m pytest -x -q "${paths[@]}" "$@"
