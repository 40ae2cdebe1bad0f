//! Exec in a running container end to end (as root): the real `skiff exec` helper joins a
//! busybox container started by the real shim; output, exit codes, the container's environment,
//! user and namespaces, start errors, timeouts, standard input, and a pseudo-terminal with resize;
//! attaching to a container's own process through the shim (a stdin pipe, and a terminal).

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use skiff_runtime::container::{ContainerState, Runtime};
use skiff_runtime::exec::{ExecError, ExecOptions};
use skiff_runtime::spec::ContainerConfig;

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).and_then(|l| l.split_whitespace().nth(2)?.parse().ok()))
        == Some(0u32)
}

fn args(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn exec_runs_commands_inside_a_running_container() {
    if !is_root() {
        eprintln!("skipped: needs root (namespaces, overlayfs, cgroups)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let tarball = dir.path().join("busybox.tar");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/build-busybox-image.py");
    let status = std::process::Command::new("python3").arg(&script).arg(&tarball).status().expect("python3");
    assert!(status.success(), "building the busybox image failed");
    let runtime = Runtime::open(&dir.path().join("agent"), Path::new(env!("CARGO_BIN_EXE_skiff"))).expect("runtime");
    let image = runtime.images().import_file(&tarball, &mut |_| {}).expect("import").remove(0);

    let mut cfg = ContainerConfig::new(args(&["sh", "-c", "echo marker > /tmp/m; exec sleep 300"]));
    cfg.env = vec!["PATH=/bin".into(), "GREETING=hello".into()];
    cfg.user.uid = 1000;
    cfg.user.gid = 1000;
    cfg.hostname = Some("box".into());
    cfg.cgroups_path = Some("/skiff-exec-test/c".into());
    let state = runtime.start("c", Some(&image), &cfg, &dir.path().join("c.log")).expect("start");
    let ContainerState::Running(started) = state else { panic!("not running: {state:?}") };
    let deadline = Instant::now() + Duration::from_secs(10);
    while runtime.exec_sync("c", &args(&["cat", "/tmp/m"]), Duration::from_secs(10)).map(|o| o.stdout).ok()
        != Some(b"marker\n".to_vec())
    {
        assert!(Instant::now() < deadline, "the container's file never showed");
        std::thread::sleep(Duration::from_millis(20));
    }

    // Output, exit code, the container's environment, user, host name, root and PID namespace.
    let out = runtime
        .exec_sync(
            "c",
            &args(&["sh", "-c", "echo $GREETING $(id -u) $(hostname); cat /tmp/m; echo err >&2; ps | wc -l; exit 7"]),
            Duration::from_secs(10),
        )
        .expect("exec");
    assert_eq!(out.exit_code, 7);
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(&lines[..2], ["hello 1000 box", "marker"], "{text}");
    // sleep (PID 1), sh, ps, wc and the header: the container's PID namespace, not the host's.
    assert!(lines[2].trim().parse::<u32>().expect("count") < 10, "{text}");
    assert_eq!(out.stderr, b"err\n");
    // The process runs in the container's cgroup.
    let cgroup = runtime.exec_sync("c", &args(&["cat", "/proc/self/cgroup"]), Duration::from_secs(10)).expect("exec");
    let host_view = std::fs::read_to_string(format!("/proc/{}/cgroup", started.pid)).expect("cgroup");
    assert_eq!(String::from_utf8_lossy(&cgroup.stdout).lines().count(), host_view.lines().count());

    // A command that does not exist, and one that outlives its timeout.
    let err = runtime.exec_sync("c", &args(&["no-such-command"]), Duration::from_secs(10)).expect_err("start error");
    assert!(matches!(&err, ExecError::Start(m) if m.contains("no-such-command")), "{err:?}");
    let began = Instant::now();
    let err = runtime.exec_sync("c", &args(&["sleep", "30"]), Duration::from_millis(300)).expect_err("timeout");
    assert!(matches!(err, ExecError::Timeout(_)), "{err:?}");
    assert!(began.elapsed() < Duration::from_secs(20));

    // Interactive: standard input in, output out, exit code at the end.
    let process = runtime
        .exec("c", &args(&["sh", "-c", "read x; echo got $x; exit 4"]), &ExecOptions { tty: false, stdin: true })
        .expect("exec");
    let mut process = process;
    let mut stdin = std::fs::File::from(process.stdin.take().expect("stdin"));
    stdin.write_all(b"ping\n").expect("write");
    drop(stdin);
    let mut stdout = String::new();
    std::fs::File::from(process.stdout.take().expect("stdout")).read_to_string(&mut stdout).expect("read");
    assert_eq!(stdout, "got ping\n");
    assert_eq!(process.wait().expect("wait"), 4);

    // A terminal: the size set by the caller is what the command sees.
    let mut process = runtime
        .exec("c", &args(&["sh", "-c", "read x; stty size; echo tty:$(tty)"]), &ExecOptions { tty: true, stdin: true })
        .expect("exec with tty");
    let pty = process.pty.take().expect("pty");
    skiff_runtime::exec::resize(&pty, 91, 33).expect("resize");
    let mut master = std::fs::File::from(pty);
    master.write_all(b"go\n").expect("write");
    let mut seen = Vec::new();
    let mut buf = [0u8; 512];
    // The terminal reports EIO once the command has ended and closed it.
    while let Ok(n @ 1..) = master.read(&mut buf) {
        seen.extend_from_slice(&buf[..n]);
    }
    let seen = String::from_utf8_lossy(&seen);
    assert!(seen.contains("33 91"), "{seen}");
    assert!(seen.contains("tty:/dev/pts/"), "{seen}");
    assert_eq!(process.wait().expect("wait"), 0);

    runtime.signal("c", nix::sys::signal::Signal::SIGKILL).expect("kill");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !matches!(runtime.state("c").expect("state"), ContainerState::Exited(_)) {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(matches!(runtime.exec_sync("c", &args(&["true"]), Duration::from_secs(1)), Err(ExecError::NotRunning(_))));
    runtime.remove("c").expect("remove");
    for root in std::fs::read_dir("/sys/fs/cgroup").expect("cgroup fs").flatten() {
        let _ = std::fs::remove_dir(root.path().join("skiff-exec-test"));
    }
    let _ = std::fs::remove_dir("/sys/fs/cgroup/skiff-exec-test");
}

#[test]
fn attach_reaches_the_container_process() {
    use skiff_runtime::attach::{CLOSE_STDIN, RESIZE, STDIN, STDOUT, frame, read_frame};
    if !is_root() {
        eprintln!("skipped: needs root (namespaces, overlayfs, cgroups)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let tarball = dir.path().join("busybox.tar");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/build-busybox-image.py");
    let status = std::process::Command::new("python3").arg(&script).arg(&tarball).status().expect("python3");
    assert!(status.success(), "building the busybox image failed");
    let runtime = Runtime::open(&dir.path().join("agent"), Path::new(env!("CARGO_BIN_EXE_skiff"))).expect("runtime");
    let image = runtime.images().import_file(&tarball, &mut |_| {}).expect("import").remove(0);
    let log = dir.path().join("a.log");

    // Standard input kept open for attaching, closed after the first caller (stdinOnce).
    let mut cfg = ContainerConfig::new(args(&["sh", "-c", "while read l; do echo got:$l; done; echo bye"]));
    cfg.env = vec!["PATH=/bin".into()];
    cfg.stdin = true;
    cfg.stdin_once = true;
    cfg.cgroups_path = Some("/skiff-exec-test/a".into());
    runtime.start("a", Some(&image), &cfg, &log).expect("start");
    let mut socket = runtime.attach("a").expect("attach");
    socket.write_all(&frame(STDIN, b"one\ntwo\n")).expect("write");
    socket.write_all(&frame(CLOSE_STDIN, &[])).expect("close");
    let mut out = Vec::new();
    while let Some((kind, data)) = read_frame(&mut socket).expect("frame") {
        assert_eq!(kind, STDOUT);
        out.extend_from_slice(&data);
    }
    assert_eq!(String::from_utf8_lossy(&out), "got:one\ngot:two\nbye\n");
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(text.contains(" stdout F got:two\n") && text.contains(" stdout F bye\n"), "{text}");
    wait_exited(&runtime, "a");
    runtime.remove("a").expect("remove");

    // A terminal: resized by the caller, input echoed, end-of-file after the first caller.
    let mut cfg = ContainerConfig::new(args(&["sh", "-c", "read l; stty size; echo tty:$l; cat; echo eof"]));
    cfg.env = vec!["PATH=/bin".into()];
    cfg.terminal = true;
    cfg.stdin = true;
    cfg.stdin_once = true;
    cfg.cgroups_path = Some("/skiff-exec-test/t".into());
    runtime.start("t", Some(&image), &cfg, &log).expect("start");
    let mut socket = runtime.attach("t").expect("attach");
    socket.write_all(&frame(RESIZE, &[0, 70, 0, 20])).expect("resize");
    socket.write_all(&frame(STDIN, b"x\n")).expect("write");
    socket.write_all(&frame(CLOSE_STDIN, &[])).expect("close");
    let mut out = Vec::new();
    while let Some((_, data)) = read_frame(&mut socket).expect("frame") {
        out.extend_from_slice(&data);
    }
    let out = String::from_utf8_lossy(&out);
    assert!(out.contains("20 70") && out.contains("tty:x") && out.contains("eof"), "{out}");
    wait_exited(&runtime, "t");
    runtime.remove("t").expect("remove");
    for root in std::fs::read_dir("/sys/fs/cgroup").expect("cgroup fs").flatten() {
        let _ = std::fs::remove_dir(root.path().join("skiff-exec-test"));
    }
}

fn wait_exited(runtime: &Runtime, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !matches!(runtime.state(id).expect("state"), ContainerState::Exited(_)) {
        assert!(Instant::now() < deadline, "{id} still running");
        std::thread::sleep(Duration::from_millis(20));
    }
}
