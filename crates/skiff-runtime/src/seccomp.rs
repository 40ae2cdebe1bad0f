//! seccomp profiles: the model of a profile file (the Docker/containerd format, a superset of the
//! OCI runtime spec's `linux.seccomp`), skiff's built-in `RuntimeDefault` profile as data, and the
//! rendering of a profile for one container (its capabilities, the host's architecture and
//! kernel) into the OCI `linux.seccomp` object that libcontainer loads.
//!
//! The default profile has the effect of containerd's and Docker's defaults: every syscall fails
//! with `EPERM` unless allowed; the allow list holds what ordinary programs use, and syscalls that
//! need a capability are allowed only when the container holds it (`mount` with
//! `CAP_SYS_ADMIN`, `reboot` with `CAP_SYS_BOOT`, …). Namespace-creating `clone` flags, `clone3`
//! (answered with `ENOSYS` so libc falls back to `clone`), `AF_VSOCK` sockets and unusual
//! `personality` values are refused without `CAP_SYS_ADMIN`; the keyring, `userfaultfd`,
//! `io_uring`, kexec, swap and module syscalls are never allowed.
//!
//! What does not live here: which profile a Kubernetes container gets (the agent decides from its
//! `seccompProfile`), and loading the filter (libcontainer, in the shim).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Why a profile cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SeccompError {
    /// The file is not a seccomp profile.
    #[error("decoding seccomp profile: {0}")]
    Decode(String),
    /// An action the kernel does not know.
    #[error("unknown seccomp action {0:?}")]
    UnknownAction(String),
    /// A comparison operator libseccomp does not know.
    #[error("unknown seccomp operator {0:?}")]
    UnknownOperator(String),
}

/// A seccomp profile as written in a profile file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    /// What happens to a syscall no rule matches (`SCMP_ACT_ERRNO`, `SCMP_ACT_ALLOW`, …).
    pub default_action: String,
    /// The errno of an `SCMP_ACT_ERRNO` default (EPERM when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_errno_ret: Option<u32>,
    /// Architectures the filter covers (`SCMP_ARCH_X86_64`, …), when no `archMap` is given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub architectures: Vec<String>,
    /// Per native architecture, the architectures to cover (the Docker format).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arch_map: Vec<ArchMap>,
    /// Filter flags (`SECCOMP_FILTER_FLAG_LOG`, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
    /// The rules.
    #[serde(default)]
    pub syscalls: Vec<Syscall>,
}

/// One `archMap` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchMap {
    /// The native architecture.
    pub architecture: String,
    /// Architectures whose syscalls the native one also accepts.
    #[serde(default)]
    pub sub_architectures: Vec<String>,
}

/// A rule: an action for some syscalls, maybe only for some arguments, capabilities,
/// architectures or kernels.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Syscall {
    /// Syscall names.
    #[serde(default)]
    pub names: Vec<String>,
    /// A single syscall name (older Docker profiles).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The action.
    pub action: String,
    /// The errno of an `SCMP_ACT_ERRNO` action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno_ret: Option<u32>,
    /// Argument comparisons, all of which must hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<Arg>,
    /// The rule applies only when all of these hold.
    #[serde(default, skip_serializing_if = "Filter::is_empty")]
    pub includes: Filter,
    /// The rule does not apply when any of these holds.
    #[serde(default, skip_serializing_if = "Filter::is_empty")]
    pub excludes: Filter,
}

/// Conditions on the container and the host (`includes`/`excludes` of a rule).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    /// Go architecture names (`amd64`, `arm64`, `x32`, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arches: Vec<String>,
    /// Capabilities (`CAP_SYS_ADMIN`) of the container's bounding set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub caps: Vec<String>,
    /// The oldest kernel (`4.8`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_kernel: Option<String>,
}

impl Filter {
    fn is_empty(&self) -> bool {
        self.arches.is_empty() && self.caps.is_empty() && self.min_kernel.is_none()
    }
}

/// An argument comparison.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Arg {
    /// Which argument (0-5).
    pub index: u32,
    /// The value compared with.
    pub value: u64,
    /// The second value (the mask's result of `SCMP_CMP_MASKED_EQ`).
    #[serde(default)]
    pub value_two: u64,
    /// `SCMP_CMP_EQ`, `SCMP_CMP_NE`, `SCMP_CMP_MASKED_EQ`, …
    pub op: String,
}

impl Profile {
    /// Reads a profile file's contents.
    pub fn parse(bytes: &[u8]) -> Result<Self, SeccompError> {
        let profile: Self = serde_json::from_slice(bytes).map_err(|e| SeccompError::Decode(e.to_string()))?;
        check_action(&profile.default_action)?;
        for rule in &profile.syscalls {
            check_action(&rule.action)?;
            for arg in &rule.args {
                if !OPERATORS.contains(&arg.op.as_str()) {
                    return Err(SeccompError::UnknownOperator(arg.op.clone()));
                }
            }
        }
        Ok(profile)
    }
}

const ACTIONS: [&str; 9] = [
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_LOG",
    "SCMP_ACT_NOTIFY",
];
const OPERATORS: [&str; 7] =
    ["SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ"];

fn check_action(action: &str) -> Result<(), SeccompError> {
    if ACTIONS.contains(&action) { Ok(()) } else { Err(SeccompError::UnknownAction(action.to_string())) }
}

/// The host a profile is rendered for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// Go name of the native architecture (`amd64`, `arm64`, …).
    pub arch: String,
    /// Kernel version (major, minor).
    pub kernel: (u32, u32),
}

impl Host {
    /// This machine.
    pub fn current() -> Self {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        Self { arch: go_arch(std::env::consts::ARCH).to_string(), kernel: kernel_version(&release).unwrap_or((0, 0)) }
    }
}

/// Go's name of a Rust target architecture (the names profile files use).
pub fn go_arch(rust_arch: &str) -> &str {
    match rust_arch {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    }
}

/// The seccomp architectures a filter for the native `arch` covers by default.
fn native_architectures(arch: &str) -> Vec<&'static str> {
    match arch {
        "amd64" => vec!["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "386" => vec!["SCMP_ARCH_X86"],
        "arm64" => vec!["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
        "arm" => vec!["SCMP_ARCH_ARM"],
        "ppc64le" => vec!["SCMP_ARCH_PPC64LE"],
        "s390x" => vec!["SCMP_ARCH_S390X", "SCMP_ARCH_S390"],
        "riscv64" => vec!["SCMP_ARCH_RISCV64"],
        "loong64" => vec!["SCMP_ARCH_LOONGARCH64"],
        _ => vec![],
    }
}

/// `6.18.44-foo` → (6, 18).
pub fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// Renders `profile` for a container whose bounding set is `caps` on `host`: the OCI
/// `linux.seccomp` object, with the rules that do not apply left out.
pub fn render(profile: &Profile, caps: &[String], host: &Host) -> Value {
    let has = |cap: &String| caps.iter().any(|c| c == cap);
    let applies = |rule: &Syscall| {
        let inc = &rule.includes;
        let exc = &rule.excludes;
        let kernel_ok = |v: &Option<String>| v.as_deref().and_then(kernel_version).is_none_or(|min| host.kernel >= min);
        inc.caps.iter().all(has)
            && (inc.arches.is_empty() || inc.arches.contains(&host.arch))
            && kernel_ok(&inc.min_kernel)
            && !exc.caps.iter().any(has)
            && !exc.arches.contains(&host.arch)
            && exc.min_kernel.as_deref().and_then(kernel_version).is_none_or(|v| host.kernel < v)
    };
    let architectures: Vec<String> = match profile
        .arch_map
        .iter()
        .find(|m| native_architectures(&host.arch).first().is_some_and(|native| m.architecture == *native))
    {
        Some(map) => std::iter::once(map.architecture.clone()).chain(map.sub_architectures.iter().cloned()).collect(),
        None => profile.architectures.clone(),
    };
    let syscalls: Vec<Value> = profile
        .syscalls
        .iter()
        .filter(|rule| applies(rule))
        .map(|rule| {
            let names: Vec<&String> = rule.names.iter().chain(rule.name.iter()).collect();
            let mut out = json!({"names": names, "action": rule.action});
            if let Some(errno) = rule.errno_ret {
                out["errnoRet"] = json!(errno);
            }
            if !rule.args.is_empty() {
                out["args"] = json!(
                    rule.args
                        .iter()
                        .map(|a| json!({"index": a.index, "value": a.value, "valueTwo": a.value_two, "op": a.op}))
                        .collect::<Vec<_>>()
                );
            }
            out
        })
        .collect();
    let mut out = json!({"defaultAction": profile.default_action, "syscalls": syscalls});
    if let Some(errno) = profile.default_errno_ret {
        out["defaultErrnoRet"] = json!(errno);
    }
    if !architectures.is_empty() {
        out["architectures"] = json!(architectures);
    }
    if !profile.flags.is_empty() {
        out["flags"] = json!(profile.flags);
    }
    out
}

/// `EPERM`, what refused syscalls return.
const EPERM: u32 = 1;
/// `ENOSYS`, what `clone3` returns without `CAP_SYS_ADMIN` (libc then uses `clone`).
const ENOSYS: u32 = 38;
/// `AF_VSOCK`, the socket family refused to containers.
const AF_VSOCK: u64 = 40;
/// Every `CLONE_NEW*` flag (`CLONE_NEWNS|CLONE_NEWCGROUP|CLONE_NEWUTS|CLONE_NEWIPC|CLONE_NEWUSER|
/// CLONE_NEWPID|CLONE_NEWNET`).
const CLONE_NAMESPACES: u64 = 0x7E02_0000;
/// `personality` values programs legitimately set: `PER_LINUX`, `PER_LINUX32`, `UNAME26`,
/// `PER_LINUX32|UNAME26`, and the query `0xffffffff`.
const PERSONALITIES: [u64; 5] = [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

/// What an ordinary process does: files, memory, processes and signals, time, sockets, IPC,
/// scheduling of itself. Allowed to every container.
const ALWAYS_ALLOWED: &[&[&str]] = &[
    // Files and directories.
    &[
        "access",
        "chdir",
        "chmod",
        "chown",
        "chown32",
        "close",
        "close_range",
        "copy_file_range",
        "creat",
        "dup",
        "dup2",
        "dup3",
        "faccessat",
        "faccessat2",
        "fadvise64",
        "fadvise64_64",
        "fallocate",
        "fchdir",
        "fchmod",
        "fchmodat",
        "fchmodat2",
        "fchown",
        "fchown32",
        "fchownat",
        "fcntl",
        "fcntl64",
        "fdatasync",
        "fgetxattr",
        "flistxattr",
        "flock",
        "fremovexattr",
        "fsetxattr",
        "fstat",
        "fstat64",
        "fstatat64",
        "fstatfs",
        "fstatfs64",
        "fsync",
        "ftruncate",
        "ftruncate64",
        "futimesat",
        "getcwd",
        "getdents",
        "getdents64",
        "getxattr",
        "lchown",
        "lchown32",
        "lgetxattr",
        "link",
        "linkat",
        "listxattr",
        "llistxattr",
        "_llseek",
        "lremovexattr",
        "lseek",
        "lsetxattr",
        "lstat",
        "lstat64",
        "mkdir",
        "mkdirat",
        "mknod",
        "mknodat",
        "name_to_handle_at",
        "newfstatat",
        "open",
        "openat",
        "openat2",
        "pread64",
        "preadv",
        "preadv2",
        "pwrite64",
        "pwritev",
        "pwritev2",
        "read",
        "readahead",
        "readlink",
        "readlinkat",
        "readv",
        "removexattr",
        "rename",
        "renameat",
        "renameat2",
        "rmdir",
        "sendfile",
        "sendfile64",
        "setxattr",
        "splice",
        "stat",
        "stat64",
        "statfs",
        "statfs64",
        "statx",
        "symlink",
        "symlinkat",
        "sync",
        "sync_file_range",
        "syncfs",
        "tee",
        "truncate",
        "truncate64",
        "umask",
        "unlink",
        "unlinkat",
        "utime",
        "utimensat",
        "utimensat_time64",
        "utimes",
        "vmsplice",
        "write",
        "writev",
    ],
    // Waiting for and multiplexing I/O, notifications.
    &[
        "epoll_create",
        "epoll_create1",
        "epoll_ctl",
        "epoll_ctl_old",
        "epoll_pwait",
        "epoll_pwait2",
        "epoll_wait",
        "epoll_wait_old",
        "eventfd",
        "eventfd2",
        "fanotify_mark",
        "inotify_add_watch",
        "inotify_init",
        "inotify_init1",
        "inotify_rm_watch",
        "io_cancel",
        "io_destroy",
        "io_getevents",
        "io_pgetevents",
        "io_pgetevents_time64",
        "io_setup",
        "io_submit",
        "ioctl",
        "_newselect",
        "pipe",
        "pipe2",
        "poll",
        "ppoll",
        "ppoll_time64",
        "pselect6",
        "pselect6_time64",
        "select",
        "signalfd",
        "signalfd4",
        "timerfd_create",
        "timerfd_gettime",
        "timerfd_gettime64",
        "timerfd_settime",
        "timerfd_settime64",
    ],
    // Memory.
    &[
        "brk",
        "cachestat",
        "madvise",
        "map_shadow_stack",
        "membarrier",
        "memfd_create",
        "memfd_secret",
        "mincore",
        "mlock",
        "mlock2",
        "mlockall",
        "mmap",
        "mmap2",
        "mprotect",
        "mremap",
        "msync",
        "munlock",
        "munlockall",
        "munmap",
        "pkey_alloc",
        "pkey_free",
        "pkey_mprotect",
        "remap_file_pages",
    ],
    // Processes, threads, identities, limits.
    &[
        "capget",
        "capset",
        "execve",
        "execveat",
        "exit",
        "exit_group",
        "fork",
        "futex",
        "futex_requeue",
        "futex_time64",
        "futex_wait",
        "futex_waitv",
        "futex_wake",
        "get_robust_list",
        "get_thread_area",
        "getcpu",
        "getegid",
        "getegid32",
        "geteuid",
        "geteuid32",
        "getgid",
        "getgid32",
        "getgroups",
        "getgroups32",
        "getpgid",
        "getpgrp",
        "getpid",
        "getppid",
        "getpriority",
        "getrandom",
        "getresgid",
        "getresgid32",
        "getresuid",
        "getresuid32",
        "getrlimit",
        "getrusage",
        "getsid",
        "gettid",
        "getuid",
        "getuid32",
        "ioprio_get",
        "ioprio_set",
        "landlock_add_rule",
        "landlock_create_ruleset",
        "landlock_restrict_self",
        "pidfd_open",
        "pidfd_send_signal",
        "prctl",
        "prlimit64",
        "process_mrelease",
        "restart_syscall",
        "rseq",
        "seccomp",
        "set_robust_list",
        "set_thread_area",
        "set_tid_address",
        "setfsgid",
        "setfsgid32",
        "setfsuid",
        "setfsuid32",
        "setgid",
        "setgid32",
        "setgroups",
        "setgroups32",
        "setpgid",
        "setpriority",
        "setregid",
        "setregid32",
        "setresgid",
        "setresgid32",
        "setresuid",
        "setresuid32",
        "setreuid",
        "setreuid32",
        "setrlimit",
        "setsid",
        "setuid",
        "setuid32",
        "ugetrlimit",
        "uname",
        "vfork",
        "wait4",
        "waitid",
        "waitpid",
    ],
    // Scheduling of its own threads.
    &[
        "sched_get_priority_max",
        "sched_get_priority_min",
        "sched_getaffinity",
        "sched_getattr",
        "sched_getparam",
        "sched_getscheduler",
        "sched_rr_get_interval",
        "sched_rr_get_interval_time64",
        "sched_setaffinity",
        "sched_setattr",
        "sched_setparam",
        "sched_setscheduler",
        "sched_yield",
    ],
    // Signals.
    &[
        "alarm",
        "kill",
        "pause",
        "rt_sigaction",
        "rt_sigpending",
        "rt_sigprocmask",
        "rt_sigqueueinfo",
        "rt_sigreturn",
        "rt_sigsuspend",
        "rt_sigtimedwait",
        "rt_sigtimedwait_time64",
        "rt_tgsigqueueinfo",
        "sigaltstack",
        "sigprocmask",
        "sigreturn",
        "tgkill",
        "tkill",
    ],
    // Time (reading it; setting it needs CAP_SYS_TIME).
    &[
        "adjtimex",
        "clock_adjtime",
        "clock_adjtime64",
        "clock_getres",
        "clock_getres_time64",
        "clock_gettime",
        "clock_gettime64",
        "clock_nanosleep",
        "clock_nanosleep_time64",
        "getitimer",
        "gettimeofday",
        "nanosleep",
        "setitimer",
        "sysinfo",
        "time",
        "timer_create",
        "timer_delete",
        "timer_getoverrun",
        "timer_gettime",
        "timer_gettime64",
        "timer_settime",
        "timer_settime64",
        "times",
    ],
    // Sockets (`socket` itself is below: not AF_VSOCK).
    &[
        "accept",
        "accept4",
        "bind",
        "connect",
        "getpeername",
        "getsockname",
        "getsockopt",
        "listen",
        "recv",
        "recvfrom",
        "recvmmsg",
        "recvmmsg_time64",
        "recvmsg",
        "send",
        "sendmmsg",
        "sendmsg",
        "sendto",
        "setsockopt",
        "shutdown",
        "socketcall",
        "socketpair",
    ],
    // System V and POSIX IPC.
    &[
        "ipc",
        "mq_getsetattr",
        "mq_notify",
        "mq_open",
        "mq_timedreceive",
        "mq_timedreceive_time64",
        "mq_timedsend",
        "mq_timedsend_time64",
        "mq_unlink",
        "msgctl",
        "msgget",
        "msgrcv",
        "msgsnd",
        "semctl",
        "semget",
        "semop",
        "semtimedop",
        "semtimedop_time64",
        "shmat",
        "shmctl",
        "shmdt",
        "shmget",
    ],
];

/// Syscalls a container may make only when its bounding set holds the capability.
const BY_CAPABILITY: &[(&str, &[&str])] = &[
    (
        "CAP_SYS_ADMIN",
        &[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "mount",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ],
    ),
    ("CAP_DAC_READ_SEARCH", &["open_by_handle_at"]),
    ("CAP_SYS_BOOT", &["reboot"]),
    ("CAP_SYS_CHROOT", &["chroot"]),
    ("CAP_SYS_MODULE", &["delete_module", "init_module", "finit_module"]),
    ("CAP_SYS_PACCT", &["acct"]),
    ("CAP_SYS_PTRACE", &["kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev", "ptrace"]),
    ("CAP_SYS_RAWIO", &["iopl", "ioperm"]),
    ("CAP_SYS_TIME", &["settimeofday", "stime", "clock_settime", "clock_settime64"]),
    ("CAP_SYS_TTY_CONFIG", &["vhangup"]),
    ("CAP_SYS_NICE", &["get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"]),
    ("CAP_SYSLOG", &["syslog"]),
    ("CAP_BPF", &["bpf"]),
    ("CAP_PERFMON", &["perf_event_open"]),
];

/// Architecture-specific syscalls (Go architecture names).
const BY_ARCH: &[(&[&str], &[&str])] = &[
    (&["amd64", "x32"], &["arch_prctl"]),
    (&["amd64", "x32", "386"], &["modify_ldt"]),
    (
        &["arm", "arm64"],
        &["arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint", "cacheflush", "set_tls"],
    ),
    (&["ppc64le"], &["sync_file_range2", "swapcontext"]),
    (&["s390", "s390x"], &["s390_pci_mmio_read", "s390_pci_mmio_write", "s390_runtime_instr"]),
    (&["riscv64"], &["riscv_flush_icache"]),
];

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn allow(names: &[&str]) -> Syscall {
    Syscall { names: strings(names), action: "SCMP_ACT_ALLOW".into(), ..Default::default() }
}

fn arg(index: u32, op: &str, value: u64, value_two: u64) -> Arg {
    Arg { index, value, value_two, op: op.into() }
}

/// skiff's `RuntimeDefault` profile (see the module doc).
pub fn runtime_default() -> Profile {
    let mut syscalls: Vec<Syscall> = ALWAYS_ALLOWED.iter().map(|group| allow(group)).collect();
    syscalls.push(Syscall {
        includes: Filter { min_kernel: Some("4.8".into()), ..Default::default() },
        ..allow(&["process_vm_readv", "process_vm_writev", "ptrace"])
    });
    syscalls.push(Syscall { args: vec![arg(0, "SCMP_CMP_NE", AF_VSOCK, 0)], ..allow(&["socket"]) });
    // One rule per value: the comparisons of one rule must all hold.
    for value in PERSONALITIES {
        syscalls.push(Syscall { args: vec![arg(0, "SCMP_CMP_EQ", value, 0)], ..allow(&["personality"]) });
    }
    for (arches, names) in BY_ARCH {
        syscalls.push(Syscall { includes: Filter { arches: strings(arches), ..Default::default() }, ..allow(names) });
    }
    for (cap, names) in BY_CAPABILITY {
        syscalls
            .push(Syscall { includes: Filter { caps: vec![cap.to_string()], ..Default::default() }, ..allow(names) });
    }
    let without_sys_admin = Filter { caps: vec!["CAP_SYS_ADMIN".into()], ..Default::default() };
    // New threads and processes, but no new namespaces (s390 swaps clone's first two arguments).
    syscalls.push(Syscall {
        args: vec![arg(0, "SCMP_CMP_MASKED_EQ", CLONE_NAMESPACES, 0)],
        excludes: Filter { arches: strings(&["s390", "s390x"]), ..without_sys_admin.clone() },
        ..allow(&["clone"])
    });
    syscalls.push(Syscall {
        args: vec![arg(1, "SCMP_CMP_MASKED_EQ", CLONE_NAMESPACES, 0)],
        includes: Filter { arches: strings(&["s390", "s390x"]), ..Default::default() },
        excludes: without_sys_admin.clone(),
        ..allow(&["clone"])
    });
    // clone3 passes its flags in memory seccomp cannot read: make libc fall back to clone.
    syscalls.push(Syscall {
        names: strings(&["clone3"]),
        action: "SCMP_ACT_ERRNO".into(),
        errno_ret: Some(ENOSYS),
        excludes: without_sys_admin,
        ..Default::default()
    });
    Profile {
        default_action: "SCMP_ACT_ERRNO".into(),
        default_errno_ret: Some(EPERM),
        arch_map: ["amd64", "arm64", "ppc64le", "s390x"]
            .into_iter()
            .map(|arch| {
                let all = native_architectures(arch);
                ArchMap { architecture: all[0].to_string(), sub_architectures: strings(&all[1..]) }
            })
            .collect(),
        syscalls,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amd64() -> Host {
        Host { arch: "amd64".into(), kernel: (6, 1) }
    }

    fn allowed(rendered: &Value) -> Vec<String> {
        rendered["syscalls"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["action"] == "SCMP_ACT_ALLOW" && r.get("args").is_none())
            .flat_map(|r| r["names"].as_array().into_iter().flatten().filter_map(|n| n.as_str().map(String::from)))
            .collect()
    }

    fn caps(names: &[&str]) -> Vec<String> {
        strings(names)
    }

    #[test]
    fn the_default_refuses_with_eperm_and_covers_the_compat_architectures() {
        let out = render(&runtime_default(), &caps(&["CAP_CHOWN"]), &amd64());
        assert_eq!(out["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(out["defaultErrnoRet"], 1);
        assert_eq!(out["architectures"], json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]));
        let arm = render(&runtime_default(), &[], &Host { arch: "arm64".into(), kernel: (6, 1) });
        assert_eq!(arm["architectures"], json!(["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]));
        let names = allowed(&out);
        for name in ["read", "openat", "execve", "futex", "arch_prctl", "ptrace", "accept4", "shmget"] {
            assert!(names.contains(&name.to_string()), "{name} is allowed");
        }
        for name in [
            "keyctl",
            "add_key",
            "request_key",
            "userfaultfd",
            "kexec_load",
            "io_uring_setup",
            "swapon",
            "pivot_root",
            "mount",
            "unshare",
            "setns",
            "reboot",
            "init_module",
            "bpf",
        ] {
            assert!(!names.contains(&name.to_string()), "{name} is refused");
        }
        // ptrace needs a kernel without the seccomp bypass.
        let old = render(&runtime_default(), &[], &Host { arch: "amd64".into(), kernel: (4, 4) });
        assert!(!allowed(&old).contains(&"ptrace".to_string()));
    }

    #[test]
    fn capabilities_open_their_syscalls_and_close_the_fallbacks() {
        let plain = render(&runtime_default(), &caps(&["CAP_CHOWN"]), &amd64());
        let admin = render(&runtime_default(), &caps(&["CAP_SYS_ADMIN", "CAP_SYS_TIME"]), &amd64());
        for name in ["mount", "unshare", "setns", "clone", "clone3", "settimeofday"] {
            assert!(allowed(&admin).contains(&name.to_string()), "{name} with the capability");
        }
        let rules = plain["syscalls"].as_array().expect("rules");
        let clone = rules.iter().find(|r| r["names"] == json!(["clone"])).expect("conditional clone");
        assert_eq!(
            clone["args"],
            json!([{"index": 0, "value": CLONE_NAMESPACES, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}])
        );
        let clone3 = rules.iter().find(|r| r["names"] == json!(["clone3"])).expect("clone3 fallback");
        assert_eq!((clone3["action"].as_str(), clone3["errnoRet"].as_u64()), (Some("SCMP_ACT_ERRNO"), Some(38)));
        let admin_rules = admin["syscalls"].as_array().expect("rules");
        assert!(!admin_rules.iter().any(|r| r["names"] == json!(["clone3"]) && r["action"] == "SCMP_ACT_ERRNO"));
        let socket = rules.iter().find(|r| r["names"] == json!(["socket"])).expect("socket");
        assert_eq!(socket["args"][0]["op"], "SCMP_CMP_NE");
        assert_eq!(rules.iter().filter(|r| r["names"] == json!(["personality"])).count(), PERSONALITIES.len());
    }

    #[test]
    fn docker_and_oci_profile_files_parse_and_render() {
        let docker = br#"{
            "defaultAction": "SCMP_ACT_ERRNO",
            "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]}],
            "syscalls": [
                {"name": "read", "action": "SCMP_ACT_ALLOW"},
                {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
                {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13, "excludes": {"arches": ["arm64"]}}
            ]
        }"#;
        let profile = Profile::parse(docker).expect("docker format");
        let out = render(&profile, &[], &amd64());
        assert_eq!(out["architectures"], json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]));
        assert_eq!(
            out["syscalls"],
            json!([{"names": ["read"], "action": "SCMP_ACT_ALLOW"}, {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}])
        );
        assert!(out.get("defaultErrnoRet").is_none());
        let oci = br#"{"defaultAction": "SCMP_ACT_LOG", "architectures": ["SCMP_ARCH_X86_64"], "flags": ["SECCOMP_FILTER_FLAG_LOG"],
                       "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}]}"#;
        let out = render(&Profile::parse(oci).expect("oci format"), &[], &amd64());
        assert_eq!(out["architectures"], json!(["SCMP_ARCH_X86_64"]));
        assert_eq!(out["flags"], json!(["SECCOMP_FILTER_FLAG_LOG"]));
        assert_eq!(out["syscalls"][0]["args"][0], json!({"index": 0, "value": 8, "valueTwo": 0, "op": "SCMP_CMP_EQ"}));
        // The rendering is what libcontainer reads.
        let _: oci_spec::runtime::LinuxSeccomp = serde_json::from_value(out).expect("an OCI seccomp object");
        let _: oci_spec::runtime::LinuxSeccomp =
            serde_json::from_value(render(&runtime_default(), &[], &amd64())).expect("the default is one too");

        assert!(matches!(Profile::parse(b"{}"), Err(SeccompError::Decode(_))));
        assert_eq!(
            Profile::parse(br#"{"defaultAction": "SCMP_ACT_NOPE"}"#),
            Err(SeccompError::UnknownAction("SCMP_ACT_NOPE".into()))
        );
        let bad_op = br#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "LIKE"}]}]}"#;
        assert_eq!(Profile::parse(bad_op), Err(SeccompError::UnknownOperator("LIKE".into())));
    }

    #[test]
    fn kernel_versions_and_arch_names() {
        assert_eq!(kernel_version("6.18.44-fc-v595"), Some((6, 18)));
        assert_eq!(kernel_version("4.8"), Some((4, 8)));
        assert_eq!(kernel_version("x"), None);
        assert_eq!((go_arch("x86_64"), go_arch("aarch64"), go_arch("riscv64")), ("amd64", "arm64", "riscv64"));
    }
}
