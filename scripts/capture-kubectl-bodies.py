#!/usr/bin/env python3
"""Record the request bodies kubectl sends, for protobuf test fixtures.

A tiny HTTPS server that answers kubectl's discovery minimally and saves every POST body to
OUT_DIR/<path>.bin (with the Content-Type in <path>.ct), replying 201 with a stub object.

Usage:
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=localhost \
        -addext subjectAltName=IP:127.0.0.1 -keyout key.pem -out cert.pem
    python3 scripts/capture-kubectl-bodies.py 18443 OUT_DIR cert.pem key.pem &
    kubectl --server https://127.0.0.1:18443 --insecure-skip-tls-verify --token x -n default \
        create configmap t --from-literal=a=b
    # expected JSON for the same object: add --dry-run=client -o json
"""

import http.server, ssl, json, sys, os
OUT = sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        sys.stderr.write("%s %s ct=%s\n" % (self.command, self.path, self.headers.get("Content-Type")))
    def reply(self, code, obj):
        b = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)
    def do_GET(self):
        if self.path.startswith("/api?") or self.path == "/api":
            return self.reply(200, {"kind": "APIVersions", "versions": ["v1"]})
        if self.path.startswith("/apis?") or self.path == "/apis":
            return self.reply(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [{"name": "rbac.authorization.k8s.io", "versions": [{"groupVersion": "rbac.authorization.k8s.io/v1", "version": "v1"}], "preferredVersion": {"groupVersion": "rbac.authorization.k8s.io/v1", "version": "v1"}}]})
        if self.path.startswith("/api/v1?") or self.path == "/api/v1":
            return self.reply(200, {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "v1", "resources": [
                {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod", "verbs": ["create", "get"]}]})
        if self.path.startswith("/apis/rbac.authorization.k8s.io/v1"):
            return self.reply(200, {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "rbac.authorization.k8s.io/v1", "resources": [
                {"name": "roles", "singularName": "role", "namespaced": True, "kind": "Role", "verbs": ["create", "get"]}]})
        self.reply(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404, "reason": "NotFound"})
    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        name = self.path.split("?")[0].strip("/").replace("/", "_")
        with open(os.path.join(OUT, name + ".bin"), "wb") as f:
            f.write(body)
        with open(os.path.join(OUT, name + ".ct"), "w") as f:
            f.write(self.headers.get("Content-Type", ""))
        obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "t", "namespace": "default"}}
        self.reply(201, obj)
s = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[3], sys.argv[4])
s.socket = ctx.wrap_socket(s.socket, server_side=True)
s.serve_forever()
