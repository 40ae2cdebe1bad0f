#!/usr/bin/env python3
"""Generate skiff's Kubernetes protobuf wire schema.

Reads the `generated.proto` files of the API groups skiff serves (from a kubernetes/api git
directory) and of apimachinery (meta/v1, runtime, resource, intstr), plus the Go `types.go`
struct tags next to them, and writes a compact line-oriented schema that
`crates/skiff-apiserver/src/protobuf/schema.rs` parses at startup.

The proto files give field numbers and wire types; the Go struct tags give what the proto files
cannot: the JSON name, `omitempty`, whether the Go field is a pointer (presence matters), and
whether an embedded struct is inlined into its parent in JSON.

Usage:
    python3 scripts/gen-proto-schema.py --api <kubernetes/api git dir> \
        --apimachinery <kubernetes/apimachinery git dir> --rev v0.36.3 \
        > crates/skiff-apiserver/src/protobuf/schema.txt

Output format (one record per line, space separated):
    # comment / header
    P <alias> <proto package>
    M <alias>.<Message> [W]          W: Go slice type wrapped in a message (+protobuf.nullable)
    F <number> <json name|-> <type> <flags>
      type:  a scalar (string bool int32 int64 uint32 uint64 double float bytes)
             | <alias>.<Message> | map:<key type>:<value type>
      flags: any of r (repeated) p (Go pointer) o (omitempty) i (inlined embedded struct), or -
"""

import argparse
import re
import subprocess
import sys

API_PACKAGES = [
    "core/v1", "apps/v1", "batch/v1", "autoscaling/v1", "autoscaling/v2", "networking/v1",
    "discovery/v1", "rbac/v1", "coordination/v1", "storage/v1", "events/v1", "policy/v1",
    "scheduling/v1", "admissionregistration/v1", "authentication/v1", "authorization/v1",
    "certificates/v1",
]
MACHINERY_PACKAGES = [
    "pkg/apis/meta/v1", "pkg/runtime", "pkg/runtime/schema", "pkg/api/resource", "pkg/util/intstr",
]
ALIASES = {
    "k8s.io.api.core.v1": "core",
    "k8s.io.api.apps.v1": "apps",
    "k8s.io.api.batch.v1": "batch",
    "k8s.io.api.autoscaling.v1": "as1",
    "k8s.io.api.autoscaling.v2": "as2",
    "k8s.io.api.networking.v1": "net",
    "k8s.io.api.discovery.v1": "disc",
    "k8s.io.api.rbac.v1": "rbac",
    "k8s.io.api.coordination.v1": "coord",
    "k8s.io.api.storage.v1": "stor",
    "k8s.io.api.events.v1": "ev",
    "k8s.io.api.policy.v1": "pol",
    "k8s.io.api.scheduling.v1": "sched",
    "k8s.io.api.admissionregistration.v1": "admreg",
    "k8s.io.api.authentication.v1": "authn",
    "k8s.io.api.authorization.v1": "authz",
    "k8s.io.api.certificates.v1": "cert",
    "k8s.io.apimachinery.pkg.apis.meta.v1": "meta",
    "k8s.io.apimachinery.pkg.runtime": "rt",
    "k8s.io.apimachinery.pkg.runtime.schema": "rts",
    "k8s.io.apimachinery.pkg.api.resource": "res",
    "k8s.io.apimachinery.pkg.util.intstr": "intstr",
}
SCALARS = {"string", "bool", "int32", "int64", "uint32", "uint64", "double", "float", "bytes"}
# Messages whose JSON form is custom (decoded specially by skiff); their Go fields are not needed.
SPECIAL = {
    "k8s.io.apimachinery.pkg.apis.meta.v1.Time",
    "k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime",
    "k8s.io.apimachinery.pkg.apis.meta.v1.Duration",
    "k8s.io.apimachinery.pkg.apis.meta.v1.FieldsV1",
    "k8s.io.apimachinery.pkg.runtime.RawExtension",
    "k8s.io.apimachinery.pkg.api.resource.Quantity",
    "k8s.io.apimachinery.pkg.api.resource.QuantityValue",
    "k8s.io.apimachinery.pkg.util.intstr.IntOrString",
}
# Extra roots outside the k8s.io.api packages (every message in those is a root). The
# runtime.Unknown envelope is decoded by hand, so it is not needed.
EXTRA_ROOTS = [
    "k8s.io.apimachinery.pkg.apis.meta.v1.DeleteOptions",
]


def git(gitdir, *args):
    return subprocess.run(["git", "-C", gitdir, *args], check=True, capture_output=True, text=True).stdout


def strip_block_comments(text):
    return re.sub(r"/\*.*?\*/", "", text, flags=re.S)


FIELD_RE = re.compile(r"^(optional|repeated|required)\s+([\w.]+)\s+(\w+)\s*=\s*(\d+)\s*;")
MAP_RE = re.compile(r"^map<\s*([\w.]+)\s*,\s*([\w.]+)\s*>\s+(\w+)\s*=\s*(\d+)\s*;")


def parse_proto(text):
    """Returns (package, {message: {"fields": [...], "nullable": bool}})."""
    text = strip_block_comments(text)
    package = None
    messages = {}
    current = None
    depth = 0
    pending_comments = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("//"):
            pending_comments.append(line)
            continue
        if not line:
            if depth == 0:
                pending_comments = []
            continue
        m = re.match(r"^package\s+([\w.]+)\s*;", line)
        if m:
            package = m.group(1)
            continue
        m = re.match(r"^message\s+(\w+)\s*\{", line)
        if m:
            if depth != 0:
                sys.exit(f"nested message {m.group(1)} in {package} is not supported")
            nullable = any("+protobuf.nullable=true" in c for c in pending_comments)
            current = {"fields": [], "nullable": nullable}
            messages[m.group(1)] = current
            depth = 1
            pending_comments = []
            continue
        if re.match(r"^(enum|oneof|extend|service)\b", line):
            sys.exit(f"unsupported construct in {package}: {line}")
        if line == "}":
            depth -= 1
            current = None if depth == 0 else current
            continue
        pending_comments = []
        if current is None:
            continue  # syntax, import, option
        m = FIELD_RE.match(line)
        if m:
            label, typ, name, num = m.groups()
            current["fields"].append({"label": label, "type": typ, "name": name, "num": int(num)})
            continue
        m = MAP_RE.match(line)
        if m:
            k, v, name, num = m.groups()
            current["fields"].append({"label": "map", "key": k, "type": v, "name": name, "num": int(num)})
            continue
        if line.startswith("reserved") or line.startswith("option"):
            continue
        sys.exit(f"cannot parse line in {package}: {line}")
    return package, messages


TAG_RE = re.compile(r'(\w+):"([^"]*)"')


def parse_go_structs(text):
    """Returns {struct: {proto number: go field info}} for fields carrying a protobuf tag."""
    structs = {}
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        m = re.match(r"^type\s+(\w+)\s+struct\s*\{\s*$", line)
        if m:
            current = {}
            structs[m.group(1)] = current
            continue
        if current is None:
            continue
        if line == "}":
            current = None
            continue
        if line.startswith("//") or "`" not in line:
            continue
        decl, tagstr = line.split("`", 1)
        tags = dict(TAG_RE.findall(tagstr))
        if "protobuf" not in tags:
            continue
        parts = decl.split()
        if len(parts) == 1:
            name, gotype, embedded = None, parts[0], True
        elif len(parts) == 2:
            name, gotype, embedded = parts[0], parts[1], False
        else:
            sys.exit(f"cannot parse Go field: {line}")
        pb = tags["protobuf"].split(",")
        if len(pb) < 3:
            continue  # e.g. protobuf:"-"
        num = int(pb[1])
        pbname = next((p[5:] for p in pb if p.startswith("name=")), None)
        jparts = tags.get("json", "").split(",")
        jname = jparts[0]
        if jname == "-":
            continue
        inline = embedded and (jname == "" or "inline" in jparts[1:])
        if not embedded and jname == "":
            jname = name
        current[num] = {
            "json": jname,
            "omitempty": "omitempty" in jparts[1:],
            "pointer": gotype.startswith("*"),
            "inline": inline,
            "pbname": pbname,
        }
    return structs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--api", required=True, help="kubernetes/api git directory")
    ap.add_argument("--apimachinery", required=True, help="kubernetes/apimachinery git directory")
    ap.add_argument("--rev", default="v0.36.3", help="revision (tag) to read in both repositories")
    args = ap.parse_args()

    sources = [(args.api, p) for p in API_PACKAGES] + [(args.apimachinery, p) for p in MACHINERY_PACKAGES]
    messages = {}  # full name -> message
    go = {}  # full name -> go struct fields
    packages = []
    for gitdir, path in sources:
        package, msgs = parse_proto(git(gitdir, "show", f"{args.rev}:{path}/generated.proto"))
        if package not in ALIASES:
            sys.exit(f"no alias for package {package}")
        packages.append(package)
        structs = {}
        files = git(gitdir, "ls-tree", "--name-only", args.rev, f"{path}/").split()
        for f in files:
            base = f.rsplit("/", 1)[-1]
            if not base.endswith(".go") or base.endswith("_test.go") or base.startswith(("zz_", "generated")):
                continue
            structs.update(parse_go_structs(git(gitdir, "show", f"{args.rev}:{f}")))
        for name, msg in msgs.items():
            full = f"{package}.{name}"
            messages[full] = msg
            msg["package"] = package
            if name in structs:
                go[full] = structs[name]

    def resolve(typ, package):
        if typ in SCALARS:
            return typ
        if typ.startswith("."):
            full = typ[1:]
        elif "." in typ:
            full = typ
        else:
            full = f"{package}.{typ}"
        if full not in messages:
            sys.exit(f"unknown type {typ} referenced from {package}")
        return full

    # Reachability from the roots keeps the schema small.
    roots = [n for n, m in messages.items() if m["package"].startswith("k8s.io.api.")] + EXTRA_ROOTS
    seen = set()
    stack = list(roots)
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        msg = messages[name]
        for f in msg["fields"]:
            for t in [f["type"]] + ([f["key"]] if "key" in f else []):
                r = resolve(t, msg["package"])
                if r not in SCALARS:
                    stack.append(r)

    def ref(full):
        if full in SCALARS:
            return full
        package, name = full.rsplit(".", 1)
        return f"{ALIASES[package]}.{name}"

    out = []
    api_rev = git(args.api, "rev-parse", f"{args.rev}^{{commit}}").strip()
    mach_rev = git(args.apimachinery, "rev-parse", f"{args.rev}^{{commit}}").strip()
    out.append(
        f"# skiff protobuf schema. Source: github.com/kubernetes/api@{api_rev} and "
        f"github.com/kubernetes/apimachinery@{mach_rev} ({args.rev}; generated.proto + Go struct tags). "
        "Regenerate: python3 scripts/gen-proto-schema.py --api <api git dir> --apimachinery <apimachinery git dir> "
        f"--rev {args.rev} > crates/skiff-apiserver/src/protobuf/schema.txt"
    )
    for package in packages:
        out.append(f"P {ALIASES[package]} {package}")
    missing_go = []
    for full in sorted(seen):
        msg = messages[full]
        wrapper = msg["nullable"]
        if wrapper:
            fs = msg["fields"]
            if len(fs) != 1 or fs[0]["label"] != "repeated":
                sys.exit(f"nullable message {full} is not a single repeated field")
        out.append(f"M {ref(full)}" + (" W" if wrapper else ""))
        gofields = go.get(full)
        if gofields is None and full not in SPECIAL and not wrapper:
            missing_go.append(full)
        for f in msg["fields"]:
            g = (gofields or {}).get(f["num"])
            if gofields is not None and full not in SPECIAL and not wrapper:
                if g is None:
                    sys.exit(f"{full}: field {f['name']} = {f['num']} has no Go struct field")
                if g["pbname"] not in (None, f["name"]):
                    sys.exit(f"{full}: proto name {f['name']} != Go protobuf tag name {g['pbname']}")
            typ = ref(resolve(f["type"], msg["package"]))
            if f["label"] == "map":
                typ = f"map:{ref(resolve(f['key'], msg['package']))}:{typ}"
            flags = ""
            if f["label"] == "repeated":
                flags += "r"
            if g is None:
                # No Go tags (special or wrapper messages): only present fields are emitted.
                jname = f["name"]
                flags += "po"
            else:
                jname = g["json"] or "-"
                flags += ("p" if g["pointer"] else "") + ("o" if g["omitempty"] else "") + ("i" if g["inline"] else "")
                if g["inline"] and f["label"] != "optional":
                    sys.exit(f"{full}: inlined field {f['name']} is not a singular message")
            out.append(f"F {f['num']} {jname} {typ} {flags or '-'}")
    for full in missing_go:
        print(f"warning: no Go struct for {full}; fields treated as pointers", file=sys.stderr)
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
