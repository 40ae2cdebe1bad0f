//! Drives the built `skiff` binary: `version`, environment precedence, first start writing the
//! kubeconfig, `skiff kubeconfig`, and a clean exit on SIGTERM.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_skiff");

/// `skiff` with no `SKIFF_*` settings inherited from the test's environment.
fn skiff() -> Command {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("SKIFF_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// Waits until `path` exists and is non-empty, or the child exits.
fn wait_for_file(child: &mut Child, path: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(s) = std::fs::read_to_string(path)
            && !s.is_empty()
        {
            return s;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("skiff server exited early with {status}");
        }
        assert!(Instant::now() < deadline, "no kubeconfig at {} after 60s", path.display());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A port unlikely to be in use: above the ephemeral range start, derived from the pid.
fn port(offset: u16) -> u16 {
    20000 + (std::process::id() % 20000) as u16 + offset
}

#[test]
fn version_prints_version_and_api() {
    let out = skiff().arg("version").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains(env!("CARGO_PKG_VERSION")), "{text}");
    assert!(text.contains("API: v1.33"), "{text}");
    assert!(text.contains("git commit:"), "{text}");
}

#[test]
fn unknown_config_key_fails_with_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.yaml");
    std::fs::write(&cfg, "data-dirr: /tmp/x\n").unwrap();
    let out = skiff().args(["server", "--config"]).arg(&cfg).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("data-dirr") && err.contains("config.yaml"), "{err}");
}

#[test]
fn server_first_start_env_precedence_kubeconfig_and_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let kubeconfig = dir.path().join("out/admin.yaml");
    let cfg = dir.path().join("config.yaml");
    let (file_port, env_port) = (port(0), port(1));
    std::fs::write(&cfg, format!("https-listen-port: {file_port}\nwrite-kubeconfig-mode: \"0640\"\n")).unwrap();

    let mut child = skiff()
        .args(["server", "--disable-agent", "--bind-address", "127.0.0.1", "--node-name", "cli-test"])
        .arg("--config")
        .arg(&cfg)
        .arg("--data-dir")
        .arg(&data)
        .arg("--write-kubeconfig")
        .arg(&kubeconfig)
        .env("SKIFF_HTTPS_LISTEN_PORT", env_port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let text = wait_for_file(&mut child, &kubeconfig);
    assert!(text.contains(&format!("server: https://127.0.0.1:{env_port}")), "env must beat the file:\n{text}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&kubeconfig).unwrap().permissions().mode() & 0o777, 0o640);
    for f in ["ca.crt", "ca.key", "serving.crt", "serving.key", "admin.crt", "admin.key"] {
        assert!(data.join("server/tls").join(f).is_file(), "{f}");
    }

    let printed = skiff().arg("kubeconfig").arg("--data-dir").arg(&data).output().unwrap();
    assert!(printed.status.success());
    assert_eq!(String::from_utf8(printed.stdout).unwrap(), text);

    // The banner comes after the signal handlers are installed. Read stderr on a thread so a
    // missing banner fails the test instead of hanging it.
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = String::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => {
                seen.push_str(&line);
                seen.push('\n');
                if line.contains("skiff is running.") {
                    break;
                }
            }
            Err(e) => {
                let _ = child.kill();
                panic!("no banner ({e}); stderr so far:\n{seen}");
            }
        }
    }
    let kill = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let status = child.wait().unwrap();
    reader.join().unwrap();
    let rest: String = rx.try_iter().map(|l| l + "\n").collect();
    assert!(status.success(), "exit {status:?}; stderr:\n{seen}{rest}");
}
