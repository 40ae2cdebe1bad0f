//! The Pod Security Standards checks (upstream `pod-security-admission/policy`): one function per
//! check and version, the registry that picks the checks of a level at a policy version, and
//! the aggregation of their results into upstream's messages.
//!
//! Versions are minor versions of 1.x. Checks introduced after the Kubernetes version skiff
//! implements (1.33: probe/lifecycle hosts from 1.34, user-namespace relaxations from 1.35) are
//! not registered, so `latest` means v1.33, as on an upstream 1.33 API server.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{ContainerPort, PodSpec, SELinuxOptions, SecurityContext, Volume};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// The newest policy version skiff knows (its Kubernetes minor version).
pub const MAX_MINOR: u32 = 33;

/// A policy level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// No restrictions.
    Privileged,
    /// Prevents known privilege escalations.
    Baseline,
    /// Hardening best practices.
    Restricted,
}

impl Level {
    /// The level's label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Privileged => "privileged",
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        }
    }
}

/// Why one check refused a pod: upstream's `ForbiddenReason` and optional `ForbiddenDetail`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Short reason ("host namespaces").
    pub reason: String,
    /// Specific values, may be empty ("hostNetwork=true").
    pub detail: String,
}

fn violation(reason: &str, detail: String) -> Option<Violation> {
    Some(Violation { reason: reason.to_string(), detail })
}

type CheckFn = fn(&ObjectMeta, &PodSpec) -> Option<Violation>;

/// One check: its id, level, and its versions (minimum minor version, function, baseline checks
/// it replaces at the restricted level), in increasing order.
struct Check {
    id: &'static str,
    level: Level,
    versions: &'static [(u32, CheckFn, &'static [&'static str])],
}

/// Every check, baseline ids sorted then restricted ids sorted (upstream's evaluation order).
const CHECKS: &[Check] = &[
    Check { id: "appArmorProfile", level: Level::Baseline, versions: &[(0, app_armor, &[])] },
    Check { id: "capabilities_baseline", level: Level::Baseline, versions: &[(0, capabilities_baseline, &[])] },
    Check { id: "hostNamespaces", level: Level::Baseline, versions: &[(0, host_namespaces, &[])] },
    Check { id: "hostPathVolumes", level: Level::Baseline, versions: &[(0, host_path_volumes, &[])] },
    Check { id: "hostPorts", level: Level::Baseline, versions: &[(0, host_ports, &[])] },
    Check { id: "privileged", level: Level::Baseline, versions: &[(0, privileged, &[])] },
    Check { id: "procMount", level: Level::Baseline, versions: &[(0, proc_mount, &[])] },
    Check {
        id: "seLinuxOptions",
        level: Level::Baseline,
        versions: &[(0, se_linux_options_1_0, &[]), (31, se_linux_options_1_31, &[])],
    },
    Check {
        id: "seccompProfile_baseline",
        level: Level::Baseline,
        versions: &[(0, seccomp_annotations, &[]), (19, seccomp_baseline, &[])],
    },
    Check {
        id: "sysctls",
        level: Level::Baseline,
        versions: &[(0, sysctls_1_0, &[]), (27, sysctls_1_27, &[]), (29, sysctls_1_29, &[]), (32, sysctls_1_32, &[])],
    },
    Check { id: "windowsHostProcess", level: Level::Baseline, versions: &[(0, windows_host_process, &[])] },
    Check {
        id: "allowPrivilegeEscalation",
        level: Level::Restricted,
        versions: &[(8, allow_privilege_escalation, &[]), (25, allow_privilege_escalation_1_25, &[])],
    },
    Check {
        id: "capabilities_restricted",
        level: Level::Restricted,
        versions: &[
            (22, capabilities_restricted, &["capabilities_baseline"]),
            (25, capabilities_restricted_1_25, &["capabilities_baseline"]),
        ],
    },
    Check {
        id: "restrictedVolumes",
        level: Level::Restricted,
        versions: &[(0, restricted_volumes, &["hostPathVolumes"])],
    },
    Check { id: "runAsNonRoot", level: Level::Restricted, versions: &[(0, run_as_non_root, &[])] },
    Check { id: "runAsUser", level: Level::Restricted, versions: &[(23, run_as_user, &[])] },
    Check {
        id: "seccompProfile_restricted",
        level: Level::Restricted,
        versions: &[
            (19, seccomp_restricted, &["seccompProfile_baseline"]),
            (25, seccomp_restricted_1_25, &["seccompProfile_baseline"]),
        ],
    },
];

/// From policy version 1.25 some restricted checks do not apply to Windows pods.
fn is_windows(spec: &PodSpec) -> bool {
    spec.os.as_ref().is_some_and(|os| os.name == "windows")
}

fn allow_privilege_escalation_1_25(meta: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    if is_windows(spec) { None } else { allow_privilege_escalation(meta, spec) }
}

fn capabilities_restricted_1_25(meta: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    if is_windows(spec) { None } else { capabilities_restricted(meta, spec) }
}

fn seccomp_restricted_1_25(meta: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    if is_windows(spec) { None } else { seccomp_restricted(meta, spec) }
}

/// The violations of `level` at policy version `1.<minor>` (newer versions evaluate as
/// [`MAX_MINOR`]), in upstream's order. Empty when allowed.
pub fn evaluate(level: Level, minor: u32, meta: &ObjectMeta, spec: &PodSpec) -> Vec<Violation> {
    if level == Level::Privileged {
        return Vec::new();
    }
    let minor = minor.min(MAX_MINOR);
    let at_version = |c: &Check| c.versions.iter().rev().find(|(min, _, _)| *min <= minor).copied();
    let overridden: Vec<&str> = if level == Level::Restricted {
        CHECKS
            .iter()
            .filter(|c| c.level == Level::Restricted)
            .filter_map(at_version)
            .flat_map(|(_, _, overrides)| overrides.iter().copied())
            .collect()
    } else {
        Vec::new()
    };
    CHECKS
        .iter()
        .filter(|c| c.level <= level && !overridden.contains(&c.id))
        .filter_map(|c| at_version(c).and_then(|(_, f, _)| f(meta, spec)))
        .collect()
}

/// `reason (detail), reason, …` (upstream `ForbiddenDetail`).
pub fn detail(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(|v| if v.detail.is_empty() { v.reason.clone() } else { format!("{} ({})", v.reason, v.detail) })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `reason, reason, …` (upstream `ForbiddenReason`, used for existing pods).
pub fn reasons(violations: &[Violation]) -> String {
    violations.iter().map(|v| v.reason.as_str()).collect::<Vec<_>>().join(", ")
}

// --- helpers --------------------------------------------------------------------------------

/// A container of any of the three lists, as the checks see it.
struct Container<'a> {
    name: &'a str,
    security: Option<&'a SecurityContext>,
    ports: &'a [ContainerPort],
}

/// Init containers, containers, then ephemeral containers (upstream's visiting order).
fn containers(spec: &PodSpec) -> Vec<Container<'_>> {
    let mut out = Vec::new();
    for c in spec.init_containers.iter().flatten().chain(spec.containers.iter()) {
        out.push(Container {
            name: &c.name,
            security: c.security_context.as_ref(),
            ports: c.ports.as_deref().unwrap_or_default(),
        });
    }
    for c in spec.ephemeral_containers.iter().flatten() {
        out.push(Container {
            name: &c.name,
            security: c.security_context.as_ref(),
            ports: c.ports.as_deref().unwrap_or_default(),
        });
    }
    out
}

/// Names of the containers whose securityContext (if any) satisfies `bad`, in visiting order.
fn containers_where(spec: &PodSpec, mut bad: impl FnMut(Option<&SecurityContext>) -> bool) -> Vec<&str> {
    containers(spec).into_iter().filter(|c| bad(c.security)).map(|c| c.name).collect()
}

fn join_quote<S: AsRef<str>>(items: &[S]) -> String {
    if items.is_empty() {
        return String::new();
    }
    format!("\"{}\"", items.iter().map(AsRef::as_ref).collect::<Vec<_>>().join("\", \""))
}

fn plural<'a>(singular: &'a str, plural: &'a str, n: usize) -> &'a str {
    if n == 1 { singular } else { plural }
}

/// `container "a"` / `containers "a", "b"`.
fn containers_phrase(names: &[&str]) -> String {
    format!("{} {}", plural("container", "containers", names.len()), join_quote(names))
}

fn sorted(set: BTreeSet<String>) -> Vec<String> {
    set.into_iter().collect()
}

fn pod_security(spec: &PodSpec) -> Option<&k8s_openapi::api::core::v1::PodSecurityContext> {
    spec.security_context.as_ref()
}

// --- baseline -------------------------------------------------------------------------------

const APPARMOR_ANNOTATION_PREFIX: &str = "container.apparmor.security.beta.kubernetes.io/";

fn app_armor(meta: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    let allowed_type = |t: &str| matches!(t, "RuntimeDefault" | "Localhost");
    let mut setters = Vec::new();
    let mut bad_values = BTreeSet::new();
    if let Some(p) = pod_security(spec).and_then(|s| s.app_armor_profile.as_ref())
        && !allowed_type(&p.type_)
    {
        setters.push("pod".to_string());
        bad_values.insert(p.type_.clone());
    }
    let mut bad = Vec::new();
    for c in containers(spec) {
        if let Some(p) = c.security.and_then(|s| s.app_armor_profile.as_ref())
            && !allowed_type(&p.type_)
        {
            bad.push(c.name);
            bad_values.insert(p.type_.clone());
        }
    }
    if !bad.is_empty() {
        setters.push(containers_phrase(&bad));
    }
    let mut annotations: Vec<String> = meta
        .annotations
        .iter()
        .flatten()
        .filter(|(k, v)| {
            k.starts_with(APPARMOR_ANNOTATION_PREFIX)
                && !(v.is_empty() || *v == "runtime/default" || v.starts_with("localhost/"))
        })
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect();
    let mut values = sorted(bad_values);
    if !annotations.is_empty() {
        annotations.sort();
        setters.push(plural("annotation", "annotations", annotations.len()).to_string());
        values.extend(annotations);
    }
    if setters.is_empty() {
        return None;
    }
    violation(
        plural("forbidden AppArmor profile", "forbidden AppArmor profiles", values.len()),
        format!("{} must not set AppArmor profile type to {}", setters.join(" and "), join_quote(&values)),
    )
}

const DEFAULT_CAPABILITIES: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

fn capabilities_baseline(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    let mut bad = Vec::new();
    let mut caps = BTreeSet::new();
    for c in containers(spec) {
        let added = c.security.and_then(|s| s.capabilities.as_ref()).and_then(|k| k.add.as_ref());
        let mut valid = true;
        for cap in added.into_iter().flatten() {
            if !DEFAULT_CAPABILITIES.contains(&cap.as_str()) {
                valid = false;
                caps.insert(cap.clone());
            }
        }
        if !valid {
            bad.push(c.name);
        }
    }
    if bad.is_empty() {
        return None;
    }
    violation(
        "non-default capabilities",
        format!(
            "{} must not include {} in securityContext.capabilities.add",
            containers_phrase(&bad),
            join_quote(&sorted(caps))
        ),
    )
}

fn host_namespaces(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    let shared: Vec<&str> =
        [(spec.host_network, "hostNetwork=true"), (spec.host_pid, "hostPID=true"), (spec.host_ipc, "hostIPC=true")]
            .into_iter()
            .filter(|(on, _)| *on == Some(true))
            .map(|(_, s)| s)
            .collect();
    if shared.is_empty() {
        return None;
    }
    violation("host namespaces", shared.join(", "))
}

fn host_path_volumes(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    let names: Vec<&str> =
        spec.volumes.iter().flatten().filter(|v| v.host_path.is_some()).map(|v| v.name.as_str()).collect();
    if names.is_empty() {
        return None;
    }
    violation("hostPath volumes", format!("{} {}", plural("volume", "volumes", names.len()), join_quote(&names)))
}

fn host_ports(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    let mut bad = Vec::new();
    let mut ports = BTreeSet::new();
    for c in containers(spec) {
        let mut valid = true;
        for p in c.ports {
            if let Some(hp) = p.host_port.filter(|hp| *hp != 0) {
                valid = false;
                ports.insert(hp.to_string());
            }
        }
        if !valid {
            bad.push(c.name);
        }
    }
    if bad.is_empty() {
        return None;
    }
    let ports = sorted(ports);
    violation(
        "hostPort",
        format!(
            "{} {} {} {}",
            containers_phrase(&bad),
            plural("uses", "use", bad.len()),
            plural("hostPort", "hostPorts", ports.len()),
            ports.join(", ")
        ),
    )
}

fn privileged(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    let bad = containers_where(spec, |security| security.and_then(|s| s.privileged) == Some(true));
    if bad.is_empty() {
        return None;
    }
    violation("privileged", format!("{} must not set securityContext.privileged=true", containers_phrase(&bad)))
}

fn proc_mount(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    let mut bad = Vec::new();
    let mut kinds = BTreeSet::new();
    for c in containers(spec) {
        if let Some(pm) = c.security.and_then(|s| s.proc_mount.as_ref())
            && pm != "Default"
        {
            bad.push(c.name);
            kinds.insert(pm.clone());
        }
    }
    if bad.is_empty() {
        return None;
    }
    violation(
        "procMount",
        format!("{} must not set securityContext.procMount to {}", containers_phrase(&bad), join_quote(&sorted(kinds))),
    )
}

fn se_linux_options_1_0(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    se_linux_options(spec, &["", "container_t", "container_init_t", "container_kvm_t"])
}

fn se_linux_options_1_31(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    se_linux_options(spec, &["", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"])
}

fn se_linux_options(spec: &PodSpec, allowed: &[&str]) -> Option<Violation> {
    let mut bad_types = BTreeSet::new();
    let (mut set_user, mut set_role) = (false, false);
    let mut valid = |o: &SELinuxOptions| {
        let ty = o.type_.as_deref().unwrap_or("");
        let mut ok = true;
        if !allowed.contains(&ty) {
            ok = false;
            bad_types.insert(ty.to_string());
        }
        if o.user.as_deref().is_some_and(|u| !u.is_empty()) {
            ok = false;
            set_user = true;
        }
        if o.role.as_deref().is_some_and(|r| !r.is_empty()) {
            ok = false;
            set_role = true;
        }
        ok
    };
    let mut setters = Vec::new();
    if let Some(o) = pod_security(spec).and_then(|s| s.se_linux_options.as_ref())
        && !valid(o)
    {
        setters.push("pod".to_string());
    }
    let bad = containers_where(spec, |security| {
        security.and_then(|s| s.se_linux_options.as_ref()).is_some_and(|o| !valid(o))
    });
    if !bad.is_empty() {
        setters.push(containers_phrase(&bad));
    }
    if setters.is_empty() {
        return None;
    }
    let mut data = Vec::new();
    if !bad_types.is_empty() {
        data.push(format!("{} {}", plural("type", "types", bad_types.len()), join_quote(&sorted(bad_types))));
    }
    if set_user {
        data.push("user may not be set".to_string());
    }
    if set_role {
        data.push("role may not be set".to_string());
    }
    violation(
        "seLinuxOptions",
        format!("{} set forbidden securityContext.seLinuxOptions: {}", setters.join(" and "), data.join("; ")),
    )
}

const SECCOMP_POD_ANNOTATION: &str = "seccomp.security.alpha.kubernetes.io/pod";
const SECCOMP_CONTAINER_ANNOTATION_PREFIX: &str = "container.seccomp.security.alpha.kubernetes.io/";

/// Policy versions before 1.19 judged the seccomp annotations.
fn seccomp_annotations(meta: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    let valid = |v: &str| v == "runtime/default" || v == "docker/default" || v.starts_with("localhost/");
    let annotations = meta.annotations.clone().unwrap_or_default();
    let mut bad = BTreeSet::new();
    let mut check = |key: String| {
        if let Some(v) = annotations.get(&key)
            && !valid(v)
        {
            bad.insert(format!("{key}={v:?}"));
        }
    };
    check(SECCOMP_POD_ANNOTATION.to_string());
    for c in containers(spec) {
        check(format!("{SECCOMP_CONTAINER_ANNOTATION_PREFIX}{}", c.name));
    }
    if bad.is_empty() {
        return None;
    }
    let bad = sorted(bad);
    violation(
        "seccompProfile",
        format!("forbidden {} {}", plural("annotation", "annotations", bad.len()), bad.join(", ")),
    )
}

fn valid_seccomp(t: &str) -> bool {
    t == "Localhost" || t == "RuntimeDefault"
}

/// Explicitly bad seccomp types: `(setters, bad values)`, plus the containers that set none.
fn seccomp_setters(spec: &PodSpec) -> (Vec<String>, BTreeSet<String>, bool, Vec<&str>) {
    let mut setters = Vec::new();
    let mut values = BTreeSet::new();
    let mut pod_set = false;
    if let Some(p) = pod_security(spec).and_then(|s| s.seccomp_profile.as_ref()) {
        if valid_seccomp(&p.type_) {
            pod_set = true;
        } else {
            setters.push("pod".to_string());
            values.insert(p.type_.clone());
        }
    }
    let mut explicit = Vec::new();
    let mut implicit = Vec::new();
    for c in containers(spec) {
        match c.security.and_then(|s| s.seccomp_profile.as_ref()) {
            Some(p) if !valid_seccomp(&p.type_) => {
                explicit.push(c.name);
                values.insert(p.type_.clone());
            }
            Some(_) => {}
            None => implicit.push(c.name),
        }
    }
    if !explicit.is_empty() {
        setters.push(containers_phrase(&explicit));
    }
    (setters, values, pod_set, implicit)
}

fn seccomp_baseline(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    let (setters, values, _, _) = seccomp_setters(spec);
    if setters.is_empty() {
        return None;
    }
    violation(
        "seccompProfile",
        format!(
            "{} must not set securityContext.seccompProfile.type to {}",
            setters.join(" and "),
            join_quote(&sorted(values))
        ),
    )
}

const SAFE_SYSCTLS_1_0: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_unprivileged_port_start",
];
const SAFE_SYSCTLS_1_27: &[&str] = &["net.ipv4.ip_local_reserved_ports"];
const SAFE_SYSCTLS_1_29: &[&str] = &[
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
];
const SAFE_SYSCTLS_1_32: &[&str] = &["net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"];

fn sysctls_1_0(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    sysctls(spec, &[SAFE_SYSCTLS_1_0])
}
fn sysctls_1_27(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    sysctls(spec, &[SAFE_SYSCTLS_1_0, SAFE_SYSCTLS_1_27])
}
fn sysctls_1_29(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    sysctls(spec, &[SAFE_SYSCTLS_1_0, SAFE_SYSCTLS_1_27, SAFE_SYSCTLS_1_29])
}
fn sysctls_1_32(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    sysctls(spec, &[SAFE_SYSCTLS_1_0, SAFE_SYSCTLS_1_27, SAFE_SYSCTLS_1_29, SAFE_SYSCTLS_1_32])
}

fn sysctls(spec: &PodSpec, allowed: &[&[&str]]) -> Option<Violation> {
    let bad: Vec<&str> = pod_security(spec)
        .and_then(|s| s.sysctls.as_ref())
        .into_iter()
        .flatten()
        .map(|s| s.name.as_str())
        .filter(|name| !allowed.iter().any(|set| set.contains(name)))
        .collect();
    if bad.is_empty() {
        return None;
    }
    violation("forbidden sysctls", bad.join(", "))
}

fn windows_host_process(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    let mut setters = Vec::new();
    if pod_security(spec).and_then(|s| s.windows_options.as_ref()).and_then(|w| w.host_process) == Some(true) {
        setters.push("pod".to_string());
    }
    let bad = containers_where(spec, |security| {
        security.and_then(|s| s.windows_options.as_ref()).and_then(|w| w.host_process) == Some(true)
    });
    if !bad.is_empty() {
        setters.push(containers_phrase(&bad));
    }
    if setters.is_empty() {
        return None;
    }
    violation(
        "hostProcess",
        format!("{} must not set securityContext.windowsOptions.hostProcess=true", setters.join(" and ")),
    )
}

// --- restricted -----------------------------------------------------------------------------

fn allow_privilege_escalation(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    let bad = containers_where(spec, |security| security.and_then(|s| s.allow_privilege_escalation) != Some(false));
    if bad.is_empty() {
        return None;
    }
    violation(
        "allowPrivilegeEscalation != false",
        format!("{} must set securityContext.allowPrivilegeEscalation=false", containers_phrase(&bad)),
    )
}

fn capabilities_restricted(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    let mut missing_drop = Vec::new();
    let mut adding = Vec::new();
    let mut caps = BTreeSet::new();
    for c in containers(spec) {
        let Some(k) = c.security.and_then(|s| s.capabilities.as_ref()) else {
            missing_drop.push(c.name);
            continue;
        };
        if !k.drop.iter().flatten().any(|d| d == "ALL") {
            missing_drop.push(c.name);
        }
        let mut forbidden = false;
        for cap in k.add.iter().flatten().filter(|cap| *cap != "NET_BIND_SERVICE") {
            forbidden = true;
            caps.insert(cap.clone());
        }
        if forbidden {
            adding.push(c.name);
        }
    }
    let mut details = Vec::new();
    if !missing_drop.is_empty() {
        details
            .push(format!("{} must set securityContext.capabilities.drop=[\"ALL\"]", containers_phrase(&missing_drop)));
    }
    if !adding.is_empty() {
        details.push(format!(
            "{} must not include {} in securityContext.capabilities.add",
            containers_phrase(&adding),
            join_quote(&sorted(caps))
        ));
    }
    if details.is_empty() {
        return None;
    }
    violation("unrestricted capabilities", details.join("; "))
}

/// The type name upstream reports for a volume source the restricted level refuses.
fn restricted_volume_type(v: &Volume) -> Option<&'static str> {
    let allowed = v.config_map.is_some()
        || v.csi.is_some()
        || v.downward_api.is_some()
        || v.empty_dir.is_some()
        || v.ephemeral.is_some()
        || v.image.is_some()
        || v.persistent_volume_claim.is_some()
        || v.projected.is_some()
        || v.secret.is_some();
    if allowed {
        return None;
    }
    let kinds: [(bool, &'static str); 21] = [
        (v.host_path.is_some(), "hostPath"),
        (v.gce_persistent_disk.is_some(), "gcePersistentDisk"),
        (v.aws_elastic_block_store.is_some(), "awsElasticBlockStore"),
        (v.git_repo.is_some(), "gitRepo"),
        (v.nfs.is_some(), "nfs"),
        (v.iscsi.is_some(), "iscsi"),
        (v.glusterfs.is_some(), "glusterfs"),
        (v.rbd.is_some(), "rbd"),
        (v.flex_volume.is_some(), "flexVolume"),
        (v.cinder.is_some(), "cinder"),
        (v.cephfs.is_some(), "cephfs"),
        (v.flocker.is_some(), "flocker"),
        (v.fc.is_some(), "fc"),
        (v.azure_file.is_some(), "azureFile"),
        (v.vsphere_volume.is_some(), "vsphereVolume"),
        (v.quobyte.is_some(), "quobyte"),
        (v.azure_disk.is_some(), "azureDisk"),
        (v.photon_persistent_disk.is_some(), "photonPersistentDisk"),
        (v.portworx_volume.is_some(), "portworxVolume"),
        (v.scale_io.is_some(), "scaleIO"),
        (v.storageos.is_some(), "storageos"),
    ];
    Some(kinds.iter().find(|(set, _)| *set).map(|(_, name)| *name).unwrap_or("unknown"))
}

fn restricted_volumes(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    let mut bad = Vec::new();
    let mut kinds = BTreeSet::new();
    for v in spec.volumes.iter().flatten() {
        if let Some(kind) = restricted_volume_type(v) {
            bad.push(v.name.as_str());
            kinds.insert(kind.to_string());
        }
    }
    if bad.is_empty() {
        return None;
    }
    violation(
        "restricted volume types",
        format!(
            "{} {} {} {} {}",
            plural("volume", "volumes", bad.len()),
            join_quote(&bad),
            plural("uses", "use", bad.len()),
            plural("restricted volume type", "restricted volume types", kinds.len()),
            join_quote(&sorted(kinds))
        ),
    )
}

fn run_as_non_root(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    let mut setters = Vec::new();
    let mut pod_non_root = false;
    match pod_security(spec).and_then(|s| s.run_as_non_root) {
        Some(false) => setters.push("pod".to_string()),
        Some(true) => pod_non_root = true,
        None => {}
    }
    let mut explicit = Vec::new();
    let mut implicit = Vec::new();
    for c in containers(spec) {
        match c.security.and_then(|s| s.run_as_non_root) {
            Some(false) => explicit.push(c.name),
            Some(true) => {}
            None if !pod_non_root => implicit.push(c.name),
            None => {}
        }
    }
    if !explicit.is_empty() {
        setters.push(containers_phrase(&explicit));
    }
    if !setters.is_empty() {
        return violation(
            "runAsNonRoot != true",
            format!("{} must not set securityContext.runAsNonRoot=false", setters.join(" and ")),
        );
    }
    if !implicit.is_empty() {
        return violation(
            "runAsNonRoot != true",
            format!("pod or {} must set securityContext.runAsNonRoot=true", containers_phrase(&implicit)),
        );
    }
    None
}

fn run_as_user(_: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    let mut setters = Vec::new();
    if pod_security(spec).and_then(|s| s.run_as_user) == Some(0) {
        setters.push("pod".to_string());
    }
    let bad = containers_where(spec, |security| security.and_then(|s| s.run_as_user) == Some(0));
    if !bad.is_empty() {
        setters.push(containers_phrase(&bad));
    }
    if setters.is_empty() {
        return None;
    }
    violation("runAsUser=0", format!("{} must not set runAsUser=0", setters.join(" and ")))
}

fn seccomp_restricted(meta: &ObjectMeta, spec: &PodSpec) -> Option<Violation> {
    if let Some(v) = seccomp_baseline(meta, spec) {
        return Some(v);
    }
    let (_, _, pod_set, implicit) = seccomp_setters(spec);
    if pod_set || implicit.is_empty() {
        return None;
    }
    violation(
        "seccompProfile",
        format!(
            "pod or {} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\"",
            containers_phrase(&implicit)
        ),
    )
}

#[cfg(test)]
mod tests;
