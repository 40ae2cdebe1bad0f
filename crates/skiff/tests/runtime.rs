//! The container runtime end to end (as root): a busybox image built from the host's
//! busybox-static, imported, run by the real `skiff shim` with libcontainer on an overlay root;
//! exit codes, CRI logs, start errors, signals, and cleanup of mounts and cgroups.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use skiff_runtime::container::{ContainerState, Runtime};
use skiff_runtime::images::ImageRecord;
use skiff_runtime::spec::ContainerConfig;

fn is_root() -> bool {
    nix_uid() == 0
}

fn nix_uid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).and_then(|l| l.split_whitespace().nth(2)?.parse().ok()))
        .unwrap_or(u32::MAX)
}

fn setup() -> (tempfile::TempDir, Runtime, ImageRecord) {
    let dir = tempfile::tempdir().expect("tempdir");
    let tarball = dir.path().join("busybox.tar");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/build-busybox-image.py");
    let status = std::process::Command::new("python3").arg(&script).arg(&tarball).status().expect("python3");
    assert!(status.success(), "building the busybox image failed");
    let runtime = Runtime::open(&dir.path().join("agent"), Path::new(env!("CARGO_BIN_EXE_skiff"))).expect("runtime");
    let image = runtime.images().import_file(&tarball, &mut |_| {}).expect("import").remove(0);
    (dir, runtime, image)
}

fn config(script: &str) -> ContainerConfig {
    let mut c = ContainerConfig::new(vec!["sh".into(), "-c".into(), script.into()]);
    c.env = vec!["PATH=/bin".into()];
    c
}

fn wait_exit(runtime: &Runtime, id: &str) -> skiff_runtime::shim::Exited {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match runtime.state(id).expect("state") {
            ContainerState::Exited(e) => return e,
            state => assert!(Instant::now() < deadline, "still {state:?}"),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn mounted(path: &Path) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo").contains(&path.display().to_string())
}

#[test]
fn runs_containers_from_an_image() {
    if !is_root() {
        eprintln!("skipped: needs root (namespaces, overlayfs, cgroups)");
        return;
    }
    let (dir, runtime, image) = setup();
    let log: PathBuf = dir.path().join("logs/app/0.log");

    // Output and exit code; the root is the image's (busybox), writable, with its own hostname.
    let mut cfg = config("echo hello from $(hostname); echo oops >&2; echo data > /tmp/x && cat /tmp/x; exit 3");
    cfg.hostname = Some("box".into());
    cfg.cgroups_path = Some("/skiff-test/run1".into());
    let state = runtime.start("run1", Some(&image), &cfg, &log).expect("start");
    assert!(matches!(state, ContainerState::Running(_) | ContainerState::Exited(_)), "{state:?}");
    let exited = wait_exit(&runtime, "run1");
    let shim_log = std::fs::read_to_string(dir.path().join("agent/containers/run1/shim.log")).unwrap_or_default();
    assert_eq!((exited.exit_code, exited.signal, exited.start_error.clone()), (3, None, None), "{shim_log}");
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(text.contains(" stdout F hello from box\n"), "{text}");
    assert!(text.contains(" stderr F oops\n"), "{text}");
    assert!(text.contains(" stdout F data\n"), "{text}");
    let container_dir = dir.path().join("agent/containers/run1");
    assert!(!mounted(&container_dir.join("rootfs")), "the overlay is unmounted when the container ends");
    runtime.remove("run1").expect("remove");
    assert!(!container_dir.exists());

    // A command that does not exist never starts, and says why.
    let cfg = config("unused");
    let mut cfg = ContainerConfig { args: vec!["no-such-binary".into()], ..cfg };
    cfg.cgroups_path = Some("/skiff-test/run2".into());
    let exited = wait_exit(
        &runtime,
        match runtime.start("run2", Some(&image), &cfg, &log).expect("start") {
            ContainerState::Exited(_) | ContainerState::Running(_) => "run2",
            ContainerState::Lost => panic!("lost"),
        },
    );
    let error = exited.start_error.expect("a start error");
    assert!(error.contains("no-such-binary"), "{error}");
    runtime.remove("run2").expect("remove");

    // A long runner: running until killed; PID 1 ignores SIGTERM without a handler, SIGKILL ends it.
    let mut cfg = config("exec sleep 300");
    cfg.cgroups_path = Some("/skiff-test/run3".into());
    let state = runtime.start("run3", Some(&image), &cfg, &log).expect("start");
    let ContainerState::Running(started) = state else { panic!("not running: {state:?}") };
    assert!(Path::new(&format!("/proc/{}", started.pid)).exists());
    assert!(runtime.remove("run3").is_err(), "a running container is not removed");
    runtime.signal("run3", nix::sys::signal::Signal::SIGKILL).expect("kill");
    let exited = wait_exit(&runtime, "run3");
    assert_eq!((exited.exit_code, exited.signal), (137, Some(9)));
    runtime.remove("run3").expect("remove");
    assert!(runtime.list().expect("list").is_empty());
    for cg in [
        "/sys/fs/cgroup/skiff-test/run3",
        "/sys/fs/cgroup/memory/skiff-test/run3",
        "/sys/fs/cgroup/pids/skiff-test/run3",
    ] {
        assert!(!Path::new(cg).exists(), "{cg} left behind");
    }
    // The parent cgroup the test used (the agent removes pod cgroups itself).
    for root in std::fs::read_dir("/sys/fs/cgroup").expect("cgroup fs").flatten() {
        let _ = std::fs::remove_dir(root.path().join("skiff-test"));
    }
    let _ = std::fs::remove_dir("/sys/fs/cgroup/skiff-test");
}
