//! Tests for [`decode_object`]: hand-encoded bodies (with a tiny test-only encoder) asserting exact
//! JSON, error cases, and bodies captured from a real kubectl 1.32 compared with kubectl's own JSON
//! rendering of the same object (`--dry-run=client -o json`).

use serde_json::{Value, json};

use super::{ProtoError, decode_object};

/// A minimal protobuf encoder for building request bodies.
#[derive(Default, Clone)]
struct Enc(Vec<u8>);

impl Enc {
    fn new() -> Self {
        Self::default()
    }

    fn raw_varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn tag(&mut self, field: u32, wire: u8) {
        self.raw_varint(u64::from(field) << 3 | u64::from(wire));
    }

    /// A varint field; negative values are sign-extended to ten bytes, as Go writes int32.
    fn int(mut self, field: u32, v: i64) -> Self {
        self.tag(field, 0);
        self.raw_varint(v as u64);
        self
    }

    fn bytes(mut self, field: u32, b: &[u8]) -> Self {
        self.tag(field, 2);
        self.raw_varint(b.len() as u64);
        self.0.extend_from_slice(b);
        self
    }

    fn str(self, field: u32, s: &str) -> Self {
        self.bytes(field, s.as_bytes())
    }

    fn msg(self, field: u32, m: Enc) -> Self {
        self.bytes(field, &m.0)
    }

    /// A `map<string, string>` entry.
    fn entry(self, field: u32, k: &str, v: &str) -> Self {
        self.msg(field, Enc::new().str(1, k).str(2, v))
    }

    /// A `map<string, bytes>` entry.
    fn entry_bytes(self, field: u32, k: &str, v: &[u8]) -> Self {
        self.msg(field, Enc::new().str(1, k).bytes(2, v))
    }

    /// A `map<string, Message>` entry.
    fn entry_msg(self, field: u32, k: &str, v: Enc) -> Self {
        self.msg(field, Enc::new().str(1, k).msg(2, v))
    }
}

/// Wraps a message in the `k8s\0` + `runtime.Unknown` envelope.
fn envelope(api_version: &str, kind: &str, raw: Enc) -> Vec<u8> {
    let mut body = b"k8s\0".to_vec();
    let unknown = Enc::new().msg(1, Enc::new().str(1, api_version).str(2, kind)).msg(2, raw);
    body.extend_from_slice(&unknown.0);
    body
}

/// `ObjectMeta` as Go writes it: name, namespace and an empty (zero) creationTimestamp.
fn meta(name: &str) -> Enc {
    Enc::new().str(1, name).str(3, "default").msg(8, Enc::new())
}

fn quantity(s: &str) -> Enc {
    Enc::new().str(1, s)
}

#[test]
fn configmap_with_data_labels_and_immutable_false() {
    let cm = Enc::new().msg(1, meta("cm").entry(11, "app", "web")).entry(2, "b", "2").entry(2, "a", "1").int(4, 0); // immutable: *bool present and false
    let got = decode_object(&envelope("v1", "ConfigMap", cm)).expect("decode");
    assert_eq!(
        got,
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "cm", "namespace": "default", "creationTimestamp": null, "labels": {"app": "web"}},
            "data": {"a": "1", "b": "2"},
            "immutable": false
        })
    );
}

#[test]
fn secret_binary_data_is_base64() {
    let secret = Enc::new()
        .msg(1, meta("s"))
        .entry_bytes(2, "bin", &[0, 1, 2, 0xff])
        .entry_bytes(2, "empty", &[])
        .str(3, "Opaque")
        .entry(4, "plain", "text");
    let got = decode_object(&envelope("v1", "Secret", secret)).expect("decode");
    assert_eq!(
        got,
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "s", "namespace": "default", "creationTimestamp": null},
            "data": {"bin": "AAEC/w==", "empty": ""},
            "stringData": {"plain": "text"},
            "type": "Opaque"
        })
    );
}

#[test]
fn configmap_binary_data_is_base64() {
    let cm = Enc::new().msg(1, meta("cm")).entry_bytes(3, "blob", b"hello");
    let got = decode_object(&envelope("v1", "ConfigMap", cm)).expect("decode");
    assert_eq!(got["binaryData"], json!({"blob": "aGVsbG8="}));
}

#[test]
fn deployment_replicas_zero_is_kept() {
    let container = Enc::new().str(1, "app").str(2, "nginx").msg(8, Enc::new());
    let pod_spec = Enc::new().msg(2, container);
    let template = Enc::new().msg(1, Enc::new().msg(8, Enc::new()).entry(11, "app", "web")).msg(2, pod_spec);
    let spec = Enc::new()
        .int(1, 0) // replicas: *int32 present and zero
        .msg(2, Enc::new().entry(1, "app", "web"))
        .msg(3, template)
        .msg(4, Enc::new());
    let deploy = Enc::new().msg(1, meta("d")).msg(2, spec).msg(3, Enc::new());
    let got = decode_object(&envelope("apps/v1", "Deployment", deploy)).expect("decode");
    assert_eq!(
        got,
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "d", "namespace": "default", "creationTimestamp": null},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"creationTimestamp": null, "labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "app", "image": "nginx", "resources": {}}]}
                },
                "strategy": {}
            },
            "status": {}
        })
    );
}

#[test]
fn deployment_without_replicas_omits_it() {
    let deploy = Enc::new().msg(1, meta("d")).msg(2, Enc::new().msg(3, Enc::new())).msg(3, Enc::new());
    let got = decode_object(&envelope("apps/v1", "Deployment", deploy)).expect("decode");
    assert!(got["spec"].get("replicas").is_none(), "{got}");
}

#[test]
fn service_target_port_int_and_string() {
    let port_int = Enc::new().str(2, "TCP").int(3, 80).msg(4, Enc::new().int(1, 0).int(2, 8080));
    let port_str = Enc::new().str(1, "http").str(2, "TCP").int(3, 81).msg(4, Enc::new().int(1, 1).str(3, "web"));
    let spec = Enc::new().msg(1, port_int).msg(1, port_str).entry(2, "app", "web").str(4, "ClusterIP");
    let svc = Enc::new().msg(1, meta("web")).msg(2, spec).msg(3, Enc::new().msg(1, Enc::new()));
    let got = decode_object(&envelope("v1", "Service", svc)).expect("decode");
    assert_eq!(
        got,
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": "default", "creationTimestamp": null},
            "spec": {
                "ports": [
                    {"protocol": "TCP", "port": 80, "targetPort": 8080},
                    {"name": "http", "protocol": "TCP", "port": 81, "targetPort": "web"}
                ],
                "selector": {"app": "web"},
                "type": "ClusterIP"
            },
            "status": {"loadBalancer": {}}
        })
    );
}

#[test]
fn pod_resources_timestamp_and_negative_int32() {
    // 2026-01-01T00:00:00Z; the nanos are dropped, as Go's metav1.Time does.
    let created = Enc::new().int(1, 1_767_225_600).int(2, 123);
    let resources = Enc::new().entry_msg(1, "cpu", quantity("500m")).entry_msg(2, "cpu", quantity("100m")).entry_msg(
        2,
        "memory",
        quantity("64Mi"),
    );
    let container = Enc::new().str(1, "app").str(2, "busybox").msg(8, resources);
    let spec = Enc::new()
        .msg(2, container)
        .int(25, -5) // priority: *int32, a ten-byte varint on the wire
        .int(4, -1); // terminationGracePeriodSeconds: *int64
    let pod = Enc::new()
        .msg(1, Enc::new().str(1, "p").str(3, "default").msg(8, created).int(7, 0))
        .msg(2, spec)
        .msg(3, Enc::new());
    let body = envelope("v1", "Pod", pod);
    assert!(body.windows(10).any(|w| w == [0xfb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]));
    let got = decode_object(&body).expect("decode");
    assert_eq!(
        got,
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p", "namespace": "default", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {
                "containers": [{
                    "name": "app",
                    "image": "busybox",
                    "resources": {"limits": {"cpu": "500m"}, "requests": {"cpu": "100m", "memory": "64Mi"}}
                }],
                "terminationGracePeriodSeconds": -1,
                "priority": -5
            },
            "status": {}
        })
    );
}

#[test]
fn lease_micro_time_has_six_fraction_digits() {
    let spec = Enc::new()
        .str(1, "holder")
        .int(2, 15)
        .msg(3, Enc::new().int(1, 1_767_225_600)) // acquireTime
        .msg(4, Enc::new().int(1, 1_767_225_601).int(2, 1_234_567)); // renewTime
    let lease = Enc::new().msg(1, meta("l")).msg(2, spec);
    let got = decode_object(&envelope("coordination.k8s.io/v1", "Lease", lease)).expect("decode");
    assert_eq!(
        got["spec"],
        json!({
            "holderIdentity": "holder",
            "leaseDurationSeconds": 15,
            "acquireTime": "2026-01-01T00:00:00.000000Z",
            "renewTime": "2026-01-01T00:00:01.001234Z"
        })
    );
}

#[test]
fn repeated_ints_accept_packed_and_unpacked() {
    // PodSecurityContext.supplementalGroups (field 4, repeated int64): a packed run, then one unpacked.
    let sc = Enc::new().bytes(4, &[1, 2]).int(4, 3);
    let pod = Enc::new().msg(1, meta("p")).msg(2, Enc::new().msg(14, sc)).msg(3, Enc::new());
    let got = decode_object(&envelope("v1", "Pod", pod)).expect("decode");
    assert_eq!(got["spec"]["securityContext"], json!({"supplementalGroups": [1, 2, 3]}));
}

#[test]
fn volume_source_is_inlined() {
    let volume = Enc::new().str(1, "data").msg(2, Enc::new().msg(2, Enc::new()));
    let pod = Enc::new().msg(1, meta("p")).msg(2, Enc::new().msg(1, volume)).msg(3, Enc::new());
    let got = decode_object(&envelope("v1", "Pod", pod)).expect("decode");
    assert_eq!(got["spec"]["volumes"], json!([{"name": "data", "emptyDir": {}}]));
}

#[test]
fn unknown_fields_are_skipped() {
    let cm = Enc::new().msg(1, meta("cm")).str(99, "future").int(98, 7).entry(2, "a", "b");
    let got = decode_object(&envelope("v1", "ConfigMap", cm)).expect("decode");
    assert_eq!(got["data"], json!({"a": "b"}));
    assert!(got.get("99").is_none());
}

#[test]
fn bad_magic_is_rejected() {
    let err = decode_object(b"{\"kind\":\"ConfigMap\"}").expect_err("bad magic");
    assert!(matches!(err, ProtoError::BadMagic { .. }), "{err}");
}

#[test]
fn truncated_body_names_the_path() {
    let body = envelope("v1", "ConfigMap", Enc::new().msg(1, meta("cm")).entry(2, "a", "b"));
    // Corrupt the raw length of the envelope's raw field by dropping the last bytes.
    let err = decode_object(&body[..body.len() - 3]).expect_err("truncated");
    assert!(matches!(err, ProtoError::Truncated { .. }), "{err}");
    // A nested truncation: a data entry claims more bytes than it holds.
    let mut raw = Enc::new().msg(1, meta("cm"));
    raw.0.extend_from_slice(&[0x12, 0x05, 0x0a, 0x09, b'a']);
    let err = decode_object(&envelope("v1", "ConfigMap", raw)).expect_err("truncated entry");
    assert!(err.to_string().contains("data"), "{err}");
}

#[test]
fn wire_type_mismatch_names_the_field_path() {
    // spec.replicas (field 1, int32) sent as a length-delimited value.
    let deploy = Enc::new().msg(2, Enc::new().str(1, "three"));
    let err = decode_object(&envelope("apps/v1", "Deployment", deploy)).expect_err("mismatch");
    assert!(matches!(err, ProtoError::WireType { .. }), "{err}");
    assert!(err.to_string().contains("spec.replicas"), "{err}");
}

#[test]
fn unknown_group_version_and_kind_are_rejected() {
    let err = decode_object(&envelope("example.com/v1", "Widget", Enc::new())).expect_err("group");
    assert!(matches!(err, ProtoError::UnknownGroupVersion { .. }), "{err}");
    let err = decode_object(&envelope("v1", "Widget", Enc::new())).expect_err("kind");
    assert!(matches!(err, ProtoError::UnknownKind { .. }), "{err}");
    // Helper messages are not kinds.
    let err = decode_object(&envelope("v1", "..Time", Enc::new())).expect_err("kind");
    assert!(matches!(err, ProtoError::UnknownKind { .. }), "{err}");
}

#[test]
fn invalid_int_or_string_type_is_rejected() {
    let port = Enc::new().int(3, 80).msg(4, Enc::new().int(1, 7));
    let svc = Enc::new().msg(2, Enc::new().msg(1, port));
    let err = decode_object(&envelope("v1", "Service", svc)).expect_err("type 7");
    assert!(err.to_string().contains("spec.ports[0].targetPort"), "{err}");
}

#[test]
fn delete_options_decode_under_meta_and_group_versions() {
    let opts = Enc::new().int(1, 0).str(4, "Foreground");
    for api_version in ["meta.k8s.io/v1", "v1", "apps/v1"] {
        let got = decode_object(&envelope(api_version, "DeleteOptions", opts.clone())).expect("decode");
        assert_eq!(got["gracePeriodSeconds"], json!(0), "{api_version}");
        assert_eq!(got["propagationPolicy"], json!("Foreground"));
    }
}

/// Bodies captured from `kubectl` v1.32.4 (`kubectl create ...` against a recording HTTPS server),
/// compared with kubectl's own JSON for the same command (`--dry-run=client -o json`).
#[test]
fn real_kubectl_bodies_decode_like_kubectl_json() {
    let fixtures: &[(&str, &[u8], &str)] = &[
        ("configmap", include_bytes!("testdata/configmap.pb"), include_str!("testdata/configmap.json")),
        ("secret", include_bytes!("testdata/secret.pb"), include_str!("testdata/secret.json")),
        ("namespace", include_bytes!("testdata/namespace.pb"), include_str!("testdata/namespace.json")),
        ("deployment", include_bytes!("testdata/deployment.pb"), include_str!("testdata/deployment.json")),
        ("service", include_bytes!("testdata/service.pb"), include_str!("testdata/service.json")),
        ("job", include_bytes!("testdata/job.pb"), include_str!("testdata/job.json")),
        ("cronjob", include_bytes!("testdata/cronjob.pb"), include_str!("testdata/cronjob.json")),
        ("role", include_bytes!("testdata/role.pb"), include_str!("testdata/role.json")),
        ("ingress", include_bytes!("testdata/ingress.pb"), include_str!("testdata/ingress.json")),
        ("pdb", include_bytes!("testdata/pdb.pb"), include_str!("testdata/pdb.json")),
        ("priorityclass", include_bytes!("testdata/priorityclass.pb"), include_str!("testdata/priorityclass.json")),
        ("quota", include_bytes!("testdata/quota.pb"), include_str!("testdata/quota.json")),
    ];
    for (name, body, want) in fixtures {
        let want: Value = serde_json::from_str(want).expect("fixture JSON");
        let got = decode_object(body).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn real_kubectl_configmap_exact_json() {
    let got = decode_object(include_bytes!("testdata/configmap.pb")).expect("decode");
    assert_eq!(
        got,
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "t", "namespace": "default", "creationTimestamp": null},
            "data": {"a": "b"}
        })
    );
}
