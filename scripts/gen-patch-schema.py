#!/usr/bin/env python3
"""Generate skiff's strategic-merge-patch schema table from Kubernetes' Go type definitions.

Reads the versioned API packages of kubernetes/api and meta/v1 of kubernetes/apimachinery
(from git checkouts, at HEAD), extracts for every struct reachable from a top-level kind the
fields' JSON names, value shapes, `patchStrategy` and `patchMergeKey` tags, and prints the
compact table that `crates/skiff-apiserver/src/strategic/schema.rs` loads.

Usage:
    python3 scripts/gen-patch-schema.py --api /work/.mirror/kubernetes+api/repo \
        --apimachinery /work/.mirror/kubernetes+apimachinery/repo \
        > crates/skiff-apiserver/src/strategic/schema.txt

Output format (one record per line, fields separated by single spaces):
    # comment
    kind <group or -> <Kind> <type>
    type <type> <field>...
    atomic <type>
    union <type> <discriminator or -> <json>=<GoName>...
where each <field> is `json:shape[:strategy[:mergeKey[:markers]]]` and a shape is `-` (scalar),
`*` (free-form JSON, merged without schema), `[shape` (list of), `{shape` (map of string to)
or a type name such as `core.v1.Container`. `markers` are the server-side-apply markers from
the field's Go comment, `;`-separated: `listType=map|set|atomic`, `listMapKey=a,b` (every
`+listMapKey` in order), `mapType=atomic|granular`, `structType=atomic|granular`, and
`default=<json scalar>` from `+default=` (the OpenAPI default server-side apply uses for a
list-map key field the applied item omits). An `atomic`
record names a struct type whose Go comment says `+structType=atomic`. A `union` record names a
struct type whose Go comment says `+union`: the JSON name of its `+unionDiscriminator` field (`-`
without one) and every other field's JSON and Go names (kube-openapi's `x-kubernetes-unions`).
"""

import argparse
import re
import subprocess
import sys

# (package id, repository, directory) in preference order: for a group served in several
# versions, the first package providing a kind wins.
API_PACKAGES = [
    ("core.v1", "api", "core/v1"),
    ("apps.v1", "api", "apps/v1"),
    ("batch.v1", "api", "batch/v1"),
    ("autoscaling.v2", "api", "autoscaling/v2"),
    ("autoscaling.v1", "api", "autoscaling/v1"),
    ("networking.v1", "api", "networking/v1"),
    ("discovery.v1", "api", "discovery/v1"),
    ("rbac.v1", "api", "rbac/v1"),
    ("coordination.v1", "api", "coordination/v1"),
    ("storage.v1", "api", "storage/v1"),
    ("events.v1", "api", "events/v1"),
    ("policy.v1", "api", "policy/v1"),
    ("scheduling.v1", "api", "scheduling/v1"),
    ("admissionregistration.v1", "api", "admissionregistration/v1"),
    ("certificates.v1", "api", "certificates/v1"),
    ("meta.v1", "apimachinery", "pkg/apis/meta/v1"),
]

# API group of each package (meta/v1 has no kinds of its own here).
GROUPS = {
    "core.v1": "",
    "apps.v1": "apps",
    "batch.v1": "batch",
    "autoscaling.v2": "autoscaling",
    "autoscaling.v1": "autoscaling",
    "networking.v1": "networking.k8s.io",
    "discovery.v1": "discovery.k8s.io",
    "rbac.v1": "rbac.authorization.k8s.io",
    "coordination.v1": "coordination.k8s.io",
    "storage.v1": "storage.k8s.io",
    "events.v1": "events.k8s.io",
    "policy.v1": "policy",
    "scheduling.v1": "scheduling.k8s.io",
    "admissionregistration.v1": "admissionregistration.k8s.io",
    "certificates.v1": "certificates.k8s.io",
}

# Go import path → package id, for the packages parsed above.
IMPORT_PATHS = {
    "k8s.io/api/" + d: pid for pid, repo, d in API_PACKAGES if repo == "api"
}
IMPORT_PATHS["k8s.io/apimachinery/pkg/apis/meta/v1"] = "meta.v1"

# Types whose JSON form is a scalar (custom marshalling), by package id or import path.
SCALAR_TYPES = {
    "meta.v1.Time",
    "meta.v1.MicroTime",
    "meta.v1.Duration",
    "k8s.io/apimachinery/pkg/api/resource.Quantity",
    "k8s.io/apimachinery/pkg/util/intstr.IntOrString",
    "k8s.io/apimachinery/pkg/types.UID",
    "k8s.io/apimachinery/pkg/types.NodeName",
}
# Types whose JSON form is arbitrary JSON.
FREE_TYPES = {
    "meta.v1.FieldsV1",
    "k8s.io/apimachinery/pkg/runtime.RawExtension",
    "k8s.io/apimachinery/pkg/runtime.Unknown",
}
GO_SCALARS = {
    "string", "bool", "byte", "rune", "int", "int8", "int16", "int32", "int64",
    "uint", "uint8", "uint16", "uint32", "uint64", "float32", "float64",
}

FIELD_RE = re.compile(r"^\s*(?:(\w+)\s+)?([^`\s][^`]*?)\s*`([^`]*)`")
TAG_RE = re.compile(r'(\w+):"([^"]*)"')


def git(repo, *args):
    return subprocess.run(["git", "-C", repo, *args], check=True, capture_output=True, text=True).stdout


def list_go_files(repo, directory):
    names = git(repo, "ls-tree", "--name-only", "HEAD", directory + "/").split()
    return [
        n for n in names
        if n.endswith(".go") and not n.endswith("_test.go") and "generated" not in n and "fuzz" not in n
    ]


MARKER_RE = re.compile(r"^\s*//\s*\+(listType|listMapKey|mapType|structType)=(\w+)\s*$")
# `+default=<literal>` with a JSON scalar literal (a quoted string without spaces, a number or a
# boolean); `ref(...)` defaults and anything that would not fit the line format are skipped.
DEFAULT_RE = re.compile(r'^\s*//\s*\+default=("[^"\s:;]*"|-?[0-9][0-9.]*|true|false)\s*$')
# Markers without a value: a union struct and its discriminator field.
FLAG_RE = re.compile(r"^\s*//\s*\+(union|unionDiscriminator)\s*$")
# Markers recorded for `union` records rather than in a field's marker list.
UNION_MARKERS = ("union", "unionDiscriminator")
MARKER_PREFIX = "@@marker "


def strip_comments(src):
    """Drops comments, keeping server-side-apply markers as `@@marker key=value` lines."""
    src = re.sub(r"/\*.*?\*/", "", src, flags=re.S)
    out = []
    for line in src.split("\n"):
        m = MARKER_RE.match(line)
        flag = FLAG_RE.match(line)
        if m:
            out.append(f"{MARKER_PREFIX}{m.group(1)}={m.group(2)}")
        elif DEFAULT_RE.match(line):
            out.append(f"{MARKER_PREFIX}default={DEFAULT_RE.match(line).group(1)}")
        elif flag:
            out.append(f"{MARKER_PREFIX}{flag.group(1)}=true")
        elif not line.lstrip().startswith("//"):
            out.append(line)
    return "\n".join(out)


def take_marker(line, markers):
    """Records a marker line into `markers` (listMapKey accumulates); whether it was one."""
    if not line.startswith(MARKER_PREFIX):
        return False
    key, value = line[len(MARKER_PREFIX):].split("=", 1)
    if key == "listMapKey":
        markers.setdefault(key, []).append(value)
    else:
        markers[key] = value
    return True


def parse_imports(src):
    imports = {}
    for block in re.findall(r"^import\s*\((.*?)^\)", src, flags=re.S | re.M):
        for line in block.split("\n"):
            m = re.match(r'\s*(\w+)?\s*"([^"]+)"', line)
            if m:
                alias = m.group(1) or m.group(2).rsplit("/", 1)[-1]
                imports[alias] = m.group(2)
    for m in re.finditer(r'^import\s+(\w+)?\s*"([^"]+)"', src, flags=re.M):
        imports[m.group(1) or m.group(2).rsplit("/", 1)[-1]] = m.group(2)
    return imports


class Package:
    """Type declarations of one Go package."""

    def __init__(self, pid):
        self.pid = pid
        self.structs = {}  # name -> list of (name, gotype, tags, markers), file imports
        self.type_markers = {}  # struct name -> markers of its type comment
        self.named = {}  # name -> (gotype, imports) for non-struct named types


def parse_package(pid, repo, directory):
    pkg = Package(pid)
    for path in list_go_files(repo, directory):
        src = strip_comments(git(repo, "show", "HEAD:" + path))
        imports = parse_imports(src)
        lines = src.split("\n")
        i = 0
        markers = {}
        while i < len(lines):
            line = lines[i]
            if take_marker(line, markers):
                i += 1
                continue
            m = re.match(r"^type\s+(\w+)\s+struct\s*\{\s*(\}?)", line)
            if m:
                name, fields, depth = m.group(1), [], 1
                pkg.type_markers[name], markers = markers, {}
                if m.group(2):
                    pkg.structs[name] = (fields, imports)
                    i += 1
                    continue
                i += 1
                while i < len(lines) and depth > 0:
                    body = lines[i]
                    if depth == 1 and take_marker(body, markers):
                        i += 1
                        continue
                    depth += body.count("{") - body.count("}")
                    if depth == 1:
                        fm = FIELD_RE.match(body)
                        if fm:
                            tags = dict(TAG_RE.findall(fm.group(3)))
                            fields.append((fm.group(1), fm.group(2).strip(), tags, markers))
                            markers = {}
                        elif not body.strip():
                            markers = {}
                    i += 1
                markers = {}
                pkg.structs[name] = (fields, imports)
                continue
            m = re.match(r"^type\s+(\w+)\s+=?\s*(\S.*?)\s*$", line)
            if m and not m.group(2).startswith(("struct", "interface", "func")):
                pkg.named[m.group(1)] = (m.group(2), imports)
            if line.strip():
                markers = {}
            i += 1
    return pkg


class Generator:
    def __init__(self, packages, repos):
        self.packages = packages
        self.repos = repos
        self.out_types = {}  # full type name -> list of field strings
        self.pending = []

    def shape(self, gotype, pid, imports):
        """The shape string of a Go type expression used in package `pid`."""
        t = gotype.strip()
        while t.startswith("*"):
            t = t[1:]
        if t == "[]byte":
            return "-"
        if t.startswith("[]"):
            return "[" + self.shape(t[2:], pid, imports)
        if t.startswith("map["):
            depth, j = 0, 3
            for j in range(3, len(t)):
                if t[j] == "[":
                    depth += 1
                elif t[j] == "]":
                    depth -= 1
                    if depth == 0:
                        break
            return "{" + self.shape(t[j + 1:], pid, imports)
        if t in GO_SCALARS:
            return "-"
        if t in ("interface{}", "any"):
            return "*"
        if "." in t:
            alias, name = t.split(".", 1)
            path = imports.get(alias)
            if path is None:
                raise SystemExit(f"unknown import alias {alias!r} in {pid}: {gotype}")
            target = self.package_for(path)
            if target is None:
                full = path + "." + name
                if full in SCALAR_TYPES:
                    return "-"
                if full in FREE_TYPES:
                    return "*"
                raise SystemExit(f"unmapped external type {full} used in {pid}")
            return self.named_shape(target, name)
        return self.named_shape(pid, t)

    def package_for(self, import_path):
        """Package id of a Go import path, parsing further kubernetes/api packages on demand."""
        pid = IMPORT_PATHS.get(import_path)
        if pid is None and import_path.startswith("k8s.io/api/"):
            directory = import_path[len("k8s.io/api/"):]
            pid = directory.replace("/", ".")
            IMPORT_PATHS[import_path] = pid
            self.packages[pid] = parse_package(pid, self.repos["api"], directory)
        return pid

    def named_shape(self, pid, name):
        full = pid + "." + name
        if full in SCALAR_TYPES:
            return "-"
        if full in FREE_TYPES:
            return "*"
        pkg = self.packages[pid]
        if name in pkg.structs:
            if full not in self.out_types:
                self.out_types[full] = None
                self.pending.append((pid, name))
            return full
        if name in pkg.named:
            gotype, imports = pkg.named[name]
            return self.shape(gotype, pid, imports)
        raise SystemExit(f"unknown type {full}")

    def fields_of(self, pid, name):
        """Flattened field records of a struct (inline embeddings expanded)."""
        fields, imports = self.packages[pid].structs[name]
        out = []
        for fname, gotype, tags, markers in fields:
            parts = tags["json"].split(",") if "json" in tags else [""]
            if parts == ["-"]:
                continue
            if fname is None and parts[0] == "":
                # An embedded struct without a JSON name: its fields are inlined.
                t = gotype.lstrip("*")
                if "." in t:
                    alias, tname = t.split(".", 1)
                    target = self.package_for(imports.get(alias, ""))
                    if target is None:
                        raise SystemExit(f"unmapped embedded type {t} in {pid}.{name}")
                else:
                    target, tname = pid, t
                out.extend(self.fields_of(target, tname))
                continue
            json_name = parts[0] or fname or gotype.lstrip("*").rsplit(".", 1)[-1]
            shape = self.shape(gotype, pid, imports)
            spec = json_name + ":" + shape
            strategy = tags.get("patchStrategy", "")
            key = tags.get("patchMergeKey", "")
            marks = ";".join(
                f"{k}={','.join(v) if isinstance(v, list) else v}"
                for k, v in sorted(markers.items())
                if k not in UNION_MARKERS
            )
            if strategy or key or marks:
                spec += ":" + strategy
                if key or marks:
                    spec += ":" + key
                if marks:
                    spec += ":" + marks
            out.append(spec)
        return out

    def union_of(self, pid, name):
        """The `union` record fields of a `+union` struct: discriminator and `json=GoName` members."""
        fields, _ = self.packages[pid].structs[name]
        discriminator, members = "-", []
        for fname, _, tags, markers in fields:
            json_name = tags["json"].split(",")[0] if "json" in tags else fname
            if not json_name or json_name == "-" or fname is None:
                continue
            if "unionDiscriminator" in markers:
                discriminator = json_name
            else:
                members.append(f"{json_name}={fname}")
        return [discriminator, *sorted(members)]

    def run(self):
        while self.pending:
            pid, name = self.pending.pop()
            self.out_types[pid + "." + name] = self.fields_of(pid, name)


def is_kind(pkg, name):
    fields, _ = pkg.structs[name]
    has_type_meta = any(f[0] is None and f[1].endswith("TypeMeta") for f in fields)
    has_object_meta = any(f[2].get("json", "").startswith("metadata") and f[1].endswith(".ObjectMeta") for f in fields)
    return has_type_meta and has_object_meta


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--api", required=True, help="git checkout of kubernetes/api")
    ap.add_argument("--apimachinery", required=True, help="git checkout of kubernetes/apimachinery")
    args = ap.parse_args()
    repos = {"api": args.api, "apimachinery": args.apimachinery}

    packages = {pid: parse_package(pid, repos[repo], d) for pid, repo, d in API_PACKAGES}
    gen = Generator(packages, repos)
    kinds = {}
    for pid, _, _ in API_PACKAGES:
        if pid not in GROUPS:
            continue
        pkg = packages[pid]
        for name in sorted(pkg.structs):
            key = (GROUPS[pid], name)
            if key in kinds or not is_kind(pkg, name):
                continue
            kinds[key] = gen.named_shape(pid, name)
    gen.run()

    commits = {r: git(p, "rev-parse", "HEAD").strip() for r, p in repos.items()}
    w = sys.stdout.write
    w(
        "# skiff strategic-merge-patch and server-side-apply schema: field facts (JSON names, shapes, patchStrategy, "
        "patchMergeKey, +listType/+listMapKey/+mapType/+structType, literal +default, +union) "
        f"generated from kubernetes/api@{commits['api']} and kubernetes/apimachinery@{commits['apimachinery']}.\n"
    )
    w(
        "# Do not edit. Regenerate: python3 scripts/gen-patch-schema.py --api <kubernetes/api checkout> "
        "--apimachinery <kubernetes/apimachinery checkout> > crates/skiff-apiserver/src/strategic/schema.txt\n"
    )
    for (group, kind), tname in sorted(kinds.items()):
        w(f"kind {group or '-'} {kind} {tname}\n")
    for tname in sorted(gen.out_types):
        fields = gen.out_types[tname]
        w(" ".join(["type", tname, *fields]) + "\n")
    for tname in sorted(gen.out_types):
        pid, name = tname.rsplit(".", 1)
        if gen.packages[pid].type_markers.get(name, {}).get("structType") == "atomic":
            w(f"atomic {tname}\n")
    for tname in sorted(gen.out_types):
        pid, name = tname.rsplit(".", 1)
        if "union" in gen.packages[pid].type_markers.get(name, {}):
            w(" ".join(["union", tname, *gen.union_of(pid, name)]) + "\n")


if __name__ == "__main__":
    main()
