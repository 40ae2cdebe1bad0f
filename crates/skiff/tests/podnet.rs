//! Pod sandboxes and the pod network end to end (as root): `skiff pause` holders, skiff-net's
//! bridge, veth pairs, IPAM and masquerade, and busybox containers (run by the real shim) that
//! join the sandboxes' namespaces. Checks pod addresses, host names, a shared PID namespace,
//! pod-to-pod and host-to-pod HTTP, masquerade towards an "outside" namespace, garbage
//! collection, and that teardown leaves no link, address file, mount, process or cgroup.
//!
//! Uses its own bridge (`skifft0`), CIDR (10.199.0.0/24) and outside link (`skifftout0`,
//! 10.198.0.0/30) so it never meets a running skiff, and removes them at the end.

use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use skiff_net::PodNetwork;
use skiff_runtime::container::{ContainerState, Runtime};
use skiff_runtime::images::ImageRecord;
use skiff_runtime::sandbox::{SandboxConfig, SandboxState, SandboxStatus};
use skiff_runtime::spec::ContainerConfig;

const BRIDGE: &str = "skifft0";
const CIDR: &str = "10.199.0.0/24";
const OUTSIDE_LINK: &str = "skifftout0";
const OUTSIDE_PEER: &str = "skifftout1";
const CGROUP_ROOT: &str = "/skiff-test-podnet";

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).and_then(|l| l.split_whitespace().nth(2)?.parse().ok()))
        == Some(0u32)
}

fn sh(args: &[&str]) -> (bool, String) {
    let out = Command::new(args[0]).args(&args[1..]).output().expect(args[0]);
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

fn link_exists(name: &str) -> bool {
    sh(&["ip", "link", "show", "dev", name]).0
}

/// Whether `pid` is a live (non-zombie) process.
fn running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, rest)| rest.trim_start().to_string()))
        .is_some_and(|rest| !rest.starts_with('Z') && !rest.starts_with('X'))
}

/// The parent pid of `pid`.
fn parent(pid: i32) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse().ok()).expect("ppid")
}

/// The session id of `pid`.
fn session(pid: i32) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(3)?.parse().ok()).expect("session")
}

/// Removes what the test put on the host, also when an assertion failed half-way.
struct HostCleanup {
    runtime: Runtime,
    ip_forward: String,
}

impl Drop for HostCleanup {
    fn drop(&mut self) {
        for id in self.runtime.list().unwrap_or_default() {
            let _ = self.runtime.signal(&id, nix::sys::signal::Signal::SIGKILL);
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(self.runtime.state(&id), Ok(ContainerState::Running(_))) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.runtime.remove(&id);
        }
        for id in self.runtime.list_sandboxes().unwrap_or_default() {
            let _ = self.runtime.stop_sandbox(&id);
        }
        let _ = sh(&["ip", "link", "del", OUTSIDE_LINK]);
        let _ = sh(&["ip", "link", "del", BRIDGE]);
        let _ = sh(&["nft", "delete", "chain", "ip", skiff_net::nat::TABLE, &format!("postrouting-{BRIDGE}")]);
        let _ = skiff_net::nat::delete_table_if_empty();
        let _ = std::fs::write("/proc/sys/net/ipv4/ip_forward", &self.ip_forward);
        // Pod cgroups are the agent's to remove; the holders' and containers' are gone by now.
        let root = Path::new("/sys/fs/cgroup");
        let hierarchies = std::fs::read_dir(root).into_iter().flatten().flatten().map(|e| e.path());
        for test_root in std::iter::once(root.to_path_buf()).chain(hierarchies).map(|h| h.join(&CGROUP_ROOT[1..])) {
            for pod in ["pod-a", "pod-b", "outside"] {
                let _ = std::fs::remove_dir(test_root.join(pod));
            }
            let _ = std::fs::remove_dir(test_root);
        }
    }
}

fn build_image(dir: &Path, runtime: &Runtime) -> ImageRecord {
    let tarball = dir.join("busybox.tar");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/build-busybox-image.py");
    let status = Command::new("python3").arg(&script).arg(&tarball).status().expect("python3");
    assert!(status.success(), "building the busybox image failed");
    runtime.images().import_file(&tarball, &mut |_| {}).expect("import").remove(0)
}

fn sandbox(runtime: &Runtime, id: &str, share_pid_namespace: bool) -> SandboxState {
    let config = SandboxConfig {
        hostname: id.to_string(),
        share_pid_namespace,
        cgroup_parent: Some(format!("{CGROUP_ROOT}/{id}")),
        ..Default::default()
    };
    let state = runtime.start_sandbox(id, &config).expect("start sandbox");
    assert_eq!(runtime.sandbox_state(id).expect("state"), SandboxStatus::Ready(state.clone()));
    state
}

/// Starts a busybox `sh -c script` in the sandbox's namespaces.
fn start(
    runtime: &Runtime,
    image: &ImageRecord,
    logs: &Path,
    sandbox: (&str, &SandboxState),
    name: &str,
    script: &str,
) {
    let mut config = ContainerConfig::new(vec!["sh".into(), "-c".into(), script.into()]);
    config.env = vec!["PATH=/bin".into()];
    config.namespaces = sandbox.1.container_namespaces();
    config.cgroups_path = Some(format!("{CGROUP_ROOT}/{}/{name}", sandbox.0));
    let state = runtime.start(name, Some(image), &config, &logs.join(format!("{name}.log"))).expect("start");
    assert!(!matches!(state, ContainerState::Lost), "{name}: {state:?}");
}

/// Runs a busybox `sh -c script` in the sandbox's namespaces to its end; returns its output.
fn run(
    runtime: &Runtime,
    image: &ImageRecord,
    logs: &Path,
    sandbox: (&str, &SandboxState),
    name: &str,
    script: &str,
) -> String {
    start(runtime, image, logs, sandbox, name, script);
    let deadline = Instant::now() + Duration::from_secs(60);
    let exited = loop {
        match runtime.state(name).expect("state") {
            ContainerState::Exited(e) => break e,
            state => assert!(Instant::now() < deadline, "{name} still {state:?}"),
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let log = std::fs::read_to_string(logs.join(format!("{name}.log"))).unwrap_or_default();
    assert_eq!((exited.exit_code, exited.start_error.as_deref()), (0, None), "{name}: {log}");
    runtime.remove(name).expect("remove");
    // CRI lines: `<time> <stream> F <text>`.
    log.lines().filter_map(|l| l.splitn(4, ' ').nth(3)).collect::<Vec<_>>().join("\n")
}

/// A veth pair to a namespace standing for the world outside the pod CIDR (10.198.0.2, the
/// host side 10.198.0.1), and a TCP server in it that prints its first peer's address.
fn outside_server(state: &SandboxState) -> std::process::Child {
    let pid = state.pid.to_string();
    let netns = state.net.as_ref().expect("netns").display().to_string();
    for cmd in [
        vec!["ip", "link", "add", OUTSIDE_LINK, "type", "veth", "peer", "name", OUTSIDE_PEER],
        vec!["ip", "link", "set", OUTSIDE_PEER, "netns", &pid],
        vec!["ip", "addr", "add", "10.198.0.1/30", "dev", OUTSIDE_LINK],
        vec!["ip", "link", "set", OUTSIDE_LINK, "up"],
        vec!["nsenter", &format!("--net={netns}"), "ip", "addr", "add", "10.198.0.2/30", "dev", OUTSIDE_PEER],
        vec!["nsenter", &format!("--net={netns}"), "ip", "link", "set", OUTSIDE_PEER, "up"],
        // A way back to the pods, so without masquerade the server would see a pod address.
        vec!["nsenter", &format!("--net={netns}"), "ip", "route", "add", CIDR, "via", "10.198.0.1"],
    ] {
        let (ok, out) = sh(&cmd);
        assert!(ok, "{cmd:?}: {out}");
    }
    let server = "import socket\n\
                  s = socket.socket()\n\
                  s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
                  s.bind(('10.198.0.2', 9000))\n\
                  s.listen()\n\
                  s.settimeout(120)\n\
                  print('listening', flush=True)\n\
                  c, peer = s.accept()\n\
                  print('peer', peer[0], c.recv(100).decode().strip(), flush=True)\n";
    let mut child = Command::new("nsenter")
        .args([&format!("--net={netns}"), "python3", "-c", server])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().expect("stdout")).read_line(&mut line).expect("read");
    assert_eq!(line.trim(), "listening");
    child
}

#[test]
fn pods_get_sandboxes_addresses_and_connectivity() {
    if !is_root() {
        eprintln!("skipped: needs root (namespaces, links, nftables, overlayfs, cgroups)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, logs) = (dir.path().join("data"), dir.path().join("logs"));
    let runtime = Runtime::open(&data.join("agent"), Path::new(env!("CARGO_BIN_EXE_skiff"))).expect("runtime");
    let cleanup = HostCleanup {
        runtime: runtime.clone(),
        ip_forward: std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap_or_else(|_| "0".into()),
    };
    let image = build_image(dir.path(), &runtime);
    let cidr: skiff_net::Ipv4Net = CIDR.parse().expect("cidr");
    let net = PodNetwork::open(&data, cidr, BRIDGE).expect("pod network");
    assert_eq!(std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").expect("sysctl").trim(), "1");
    let (_, addrs) = sh(&["ip", "-4", "-o", "addr", "show", "dev", BRIDGE]);
    assert!(addrs.contains("inet 10.199.0.1/24"), "{addrs}");
    // Opening again (an agent restart) changes nothing and does not fail.
    drop(PodNetwork::open(&data, cidr, BRIDGE).expect("reopen"));
    let (_, rules) = sh(&["nft", "list", "chain", "ip", "skiff-nat", &format!("postrouting-{BRIDGE}")]);
    assert_eq!(rules.matches("masquerade").count(), 1, "{rules}");
    assert!(rules.contains("ip saddr 10.199.0.0/24 ip daddr != 10.199.0.0/24"), "{rules}");

    // A host-network pod gets no namespaces of its own besides PID.
    let host = runtime
        .start_sandbox(
            "host",
            &SandboxConfig { hostname: "ignored".into(), host_network: true, host_ipc: true, ..Default::default() },
        )
        .expect("host sandbox");
    assert_eq!((&host.net, &host.ipc, &host.uts, &host.pid_namespace), (&None, &None, &None, &None));
    for ns in ["net", "ipc", "uts"] {
        let link = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).expect("ns link");
        assert_eq!(link(&host.pid.to_string()), link("self"), "{ns} is the host's");
    }
    runtime.stop_sandbox("host").expect("stop");
    assert!(!running(host.pid));

    // Two pods: A shares its PID namespace, B does not.
    let a = sandbox(&runtime, "pod-a", true);
    let b = sandbox(&runtime, "pod-b", false);
    assert!(a.pid_namespace.is_some() && a.init_pid.is_some() && b.pid_namespace.is_none());
    assert_eq!(session(a.pid), a.pid, "the holder leads its own session: it outlives the agent");
    assert_eq!(parent(a.init_pid.expect("init")), a.pid, "the holder is the parent of the PID namespace's init");
    let cgroup = std::fs::read_to_string(format!("/proc/{}/cgroup", a.pid)).expect("cgroup");
    assert!(cgroup.contains(&format!("{CGROUP_ROOT}/pod-a/pause")), "{cgroup}");
    let ip_a = net.setup("pod-a", a.net.as_ref().expect("netns")).expect("setup a");
    let ip_b = net.setup("pod-b", b.net.as_ref().expect("netns")).expect("setup b");
    for ip in [&ip_a, &ip_b] {
        assert!(cidr.contains(&ip.address) && ip.address != Ipv4Addr::new(10, 199, 0, 1), "{ip:?}");
        assert_eq!(ip.gateway, Ipv4Addr::new(10, 199, 0, 1));
        let (_, link) = sh(&["ip", "-d", "link", "show", "dev", &ip.host_interface]);
        assert!(link.contains(&format!("master {BRIDGE}")) && link.contains("hairpin on"), "{link}");
    }
    assert_ne!(ip_a.address, ip_b.address);
    let ipam = skiff_net::ipam_dir(&data);
    assert_eq!(std::fs::read_to_string(ipam.join(ip_a.address.to_string())).expect("ip file"), "pod-a");

    // Pod A serves HTTP; another container of A sees it (shared PID namespace) and A's host name.
    let web = "mkdir -p /www && echo hello-from-pod-a > /www/index.html && exec httpd -f -p 8080 -h /www";
    start(&runtime, &image, &logs, ("pod-a", &a), "a-web", web);
    let seen = run(&runtime, &image, &logs, ("pod-a", &a), "a-ps", "hostname; ps");
    assert!(seen.starts_with("pod-a\n"), "{seen}");
    assert!(seen.contains("httpd -f -p 8080"), "the web container's process is visible: {seen}");
    assert!(seen.contains("pause --init"), "PID 1 is the sandbox's init: {seen}");

    // Pod B: its own address, host name and route; reaches A over the bridge; sees only itself;
    // its traffic to the outside is masqueraded to the host's address.
    let outside_sandbox = runtime
        .start_sandbox("outside", &SandboxConfig { hostname: "outside".into(), ..Default::default() })
        .expect("outside sandbox");
    let outside = outside_server(&outside_sandbox);
    let client = format!(
        "hostname; ip -4 addr show dev eth0; ip route; \
         for i in $(seq 1 100); do out=$(printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc {ip} 8080); \
         case \"$out\" in *hello*) break;; esac; sleep 0.1; done; echo \"$out\"; ps; \
         echo from-pod-b | nc -w 5 10.198.0.2 9000",
        ip = ip_a.address
    );
    let seen = run(&runtime, &image, &logs, ("pod-b", &b), "b-client", &client);
    assert!(seen.starts_with("pod-b\n"), "{seen}");
    assert!(seen.contains(&format!("inet {}/24", ip_b.address)), "{seen}");
    assert!(seen.contains("default via 10.199.0.1 dev eth0"), "{seen}");
    assert!(seen.contains("hello-from-pod-a"), "pod B reached pod A: {seen}");
    assert!(!seen.contains("httpd") && !seen.contains("pause"), "pod B sees only its own processes: {seen}");
    let output = outside.wait_with_output().expect("outside server");
    let peer = String::from_utf8_lossy(&output.stdout);
    assert_eq!(peer.trim(), "peer 10.198.0.1 from-pod-b", "masqueraded to the host's address");

    // The host reaches pod A directly through the bridge.
    let (ok, page) = sh(&["curl", "-sS", "--max-time", "10", &format!("http://{}:8080/", ip_a.address)]);
    assert!(ok && page.contains("hello-from-pod-a"), "{page}");

    // A pod deleted while the agent was down: gc tears down everything but the live pods.
    let ghost = net.setup("ghost", outside_sandbox.net.as_ref().expect("netns")).expect("setup ghost");
    assert_eq!(net.gc(["pod-a", "pod-b"]).expect("gc"), ["ghost"]);
    assert!(!link_exists(&ghost.host_interface));
    assert!(!ipam.join(ghost.address.to_string()).exists());

    // Teardown: containers, networks, sandboxes.
    runtime.signal("a-web", nix::sys::signal::Signal::SIGKILL).expect("kill");
    let deadline = Instant::now() + Duration::from_secs(30);
    while matches!(runtime.state("a-web").expect("state"), ContainerState::Running(_)) {
        assert!(Instant::now() < deadline, "a-web still running");
        std::thread::sleep(Duration::from_millis(20));
    }
    runtime.remove("a-web").expect("remove");
    let mut pids: Vec<i32> = Vec::new();
    for (id, state) in [("pod-a", &a), ("pod-b", &b), ("outside", &outside_sandbox)] {
        net.teardown(id).expect("teardown");
        runtime.stop_sandbox(id).expect("stop sandbox");
        pids.extend(std::iter::once(state.pid).chain(state.init_pid));
    }
    for ip in [&ip_a, &ip_b] {
        assert!(!link_exists(&ip.host_interface), "{} left behind", ip.host_interface);
    }
    let left: Vec<PathBuf> = std::fs::read_dir(&ipam)
        .expect("ipam dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.parse::<Ipv4Addr>().is_ok()))
        .collect();
    assert!(left.is_empty(), "address files left: {left:?}");
    for pid in pids {
        assert!(!running(pid), "sandbox process {pid} still runs");
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(!mounts.contains(&dir.path().display().to_string()), "mounts left: {mounts}");
    assert!(runtime.list_sandboxes().expect("list").is_empty() && runtime.list().expect("list").is_empty());
    for hierarchy in ["memory", "pids", "unified"] {
        let leaf = Path::new("/sys/fs/cgroup").join(hierarchy).join(&CGROUP_ROOT[1..]).join("pod-a/pause");
        assert!(!leaf.exists(), "{} left behind", leaf.display());
    }

    // The host side goes too.
    net.remove_host().expect("remove host side");
    assert!(!link_exists(BRIDGE));
    let (exists, _) = sh(&["nft", "list", "chain", "ip", "skiff-nat", &format!("postrouting-{BRIDGE}")]);
    assert!(!exists, "the masquerade chain is gone");
    drop(cleanup);
}
