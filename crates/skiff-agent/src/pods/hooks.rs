//! Container lifecycle hooks (`postStart`, `preStop`) with the kubelet's handlers: `exec` in the
//! container, `httpGet` against the pod (any response counts as success, as upstream), and
//! `sleep`. Failures come back in upstream's words
//! for the `FailedPostStartHook`/`FailedPreStopHook` events. An `httpGet` hook with scheme HTTPS
//! whose server answers in plain HTTP is retried over HTTP (without `Authorization`), as upstream;
//! a retry that gets a response succeeds and is reported ([`Ran::HttpFallback`]) for the
//! `LifecycleHTTPFallback` event.
//!
//! What does not live here: when hooks run (the pod worker runs postStart right after a start
//! and preStop before the SIGTERM of a stop, both within the grace period).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::LifecycleHandler;
use skiff_runtime::exec::ExecError;

use super::http_get::{self, Purpose};
use super::probe::Target;

/// How a hook that succeeded ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ran {
    /// As asked.
    Done,
    /// Its HTTPS request got a plain HTTP answer and the retry over HTTP to `host` (`host:port`)
    /// got a response.
    HttpFallback {
        /// Where the request went.
        host: String,
    },
}

impl Ran {
    /// The message of the `LifecycleHTTPFallback` event, as the kubelet words it.
    pub fn fallback_message(host: &str) -> String {
        format!("request to HTTPS lifecycle hook {host} got HTTP response, retry with HTTP succeeded")
    }
}

/// Runs `handler` against `target`, giving up after `timeout`.
pub async fn run(handler: &LifecycleHandler, target: &Target, timeout: Duration) -> Result<Ran, String> {
    if let Some(exec) = &handler.exec {
        let command = exec.command.clone().unwrap_or_default();
        let (runtime, instance, argv) = (Arc::clone(&target.runtime), target.instance.clone(), command.clone());
        let result = tokio::task::spawn_blocking(move || runtime.exec_sync(&instance, &argv, timeout))
            .await
            .map_err(|e| e.to_string())?;
        return match result {
            Ok(out) if out.exit_code == 0 => Ok(Ran::Done),
            Ok(out) => {
                let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
                text.push_str(&String::from_utf8_lossy(&out.stderr));
                Err(format!("command '{}' exited with {}: {text}", command.join(" "), out.exit_code))
            }
            Err(ExecError::Timeout(_)) => Err(format!("command '{}' timed out", command.join(" "))),
            Err(e) => Err(e.to_string()),
        };
    }
    if let Some(http) = &handler.http_get {
        // As upstream, any response (whatever its status) is a success; only a failed exchange
        // (including a redirect loop) fails the hook.
        let started = tokio::time::Instant::now();
        let error = match http_get::get(http, target, timeout, Purpose::Lifecycle).await {
            Ok(_) => return Ok(Ran::Done),
            Err(e) => e,
        };
        let https = http.scheme.as_deref().is_some_and(|s| s.eq_ignore_ascii_case("HTTPS"));
        if !(https && http_get::is_http_response_error(&error)) {
            return Err(error);
        }
        tracing::debug!(error = %error, "HTTPS request to lifecycle hook got HTTP response, retrying with HTTP");
        let mut plain = http.clone();
        plain.scheme = Some("HTTP".into());
        if let Some(headers) = plain.http_headers.as_mut() {
            headers.retain(|h| !h.name.eq_ignore_ascii_case("authorization"));
        }
        let left = timeout.saturating_sub(started.elapsed());
        return match http_get::get(&plain, target, left, Purpose::Lifecycle).await {
            Ok(_) => Ok(Ran::HttpFallback { host: http_get::authority(&plain, target)? }),
            Err(_) => Err(error),
        };
    }
    if let Some(sleep) = &handler.sleep {
        tokio::time::sleep(Duration::from_secs(sleep.seconds.max(0) as u64).min(timeout)).await;
        return Ok(Ran::Done);
    }
    if handler.tcp_socket.is_some() {
        return Err("tcpSocket lifecycle handlers are not supported (deprecated upstream)".into());
    }
    Err("lifecycle handler has no action".into())
}

/// The event message of a failed hook, as the kubelet words it.
pub fn failure_message(handler: &LifecycleHandler, container: &str, pod: &str, error: &str) -> String {
    if let Some(exec) = &handler.exec {
        let command = exec.command.clone().unwrap_or_default();
        let command = command.join(" ");
        format!("Exec lifecycle hook ([{command}]) for Container {container:?} in Pod {pod:?} failed - error: {error}")
    } else if let Some(http) = &handler.http_get {
        let path = http.path.clone().unwrap_or_default();
        format!("HTTP lifecycle hook ({path}) for Container {container:?} in Pod {pod:?} failed - error: {error}")
    } else {
        format!("Lifecycle hook for Container {container:?} in Pod {pod:?} failed - error: {error}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, ExecAction, SleepAction};
    use skiff_runtime::container::Runtime;

    fn target() -> Target {
        let dir = tempfile::tempdir().expect("tempdir");
        Target {
            runtime: Arc::new(Runtime::open(dir.path(), std::path::Path::new("/bin/false")).expect("runtime")),
            instance: "absent".into(),
            container: Container::default(),
            pod_ip: "127.0.0.1".into(),
        }
    }

    #[tokio::test]
    async fn http_hooks_succeed_on_any_response_but_not_without_one() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.expect("accept");
            let _ = s.read(&mut [0u8; 4096]).await;
            let _ = s.write_all(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n").await;
        });
        let action = k8s_openapi::api::core::v1::HTTPGetAction {
            port: k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(i32::from(port)),
            ..Default::default()
        };
        let hook = LifecycleHandler { http_get: Some(action), ..Default::default() };
        assert_eq!(run(&hook, &target(), Duration::from_secs(2)).await, Ok(Ran::Done));
        let err = run(&hook, &target(), Duration::from_secs(2)).await.expect_err("nobody listens");
        assert!(err.contains("connection refused"), "{err}");
    }

    #[tokio::test]
    async fn https_hooks_answered_in_plain_http_are_retried_over_http_without_authorization() {
        use k8s_openapi::api::core::v1::{HTTPGetAction, HTTPHeader};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = tokio::spawn(async move {
            let mut requests = Vec::new();
            for _ in 0..2 {
                let (mut s, _) = listener.accept().await.expect("accept");
                let mut buf = vec![0u8; 8192];
                let n = s.read(&mut buf).await.expect("read");
                requests.push(String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase());
                let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n").await;
            }
            requests
        });
        let header = |name: &str| HTTPHeader { name: name.into(), value: "v".into() };
        let action = HTTPGetAction {
            port: k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(i32::from(port)),
            scheme: Some("HTTPS".into()),
            http_headers: Some(vec![header("Authorization"), header("X-Kept")]),
            ..Default::default()
        };
        let hook = LifecycleHandler { http_get: Some(action), ..Default::default() };
        let ran = run(&hook, &target(), Duration::from_secs(5)).await;
        let host = format!("127.0.0.1:{port}");
        assert_eq!(ran, Ok(Ran::HttpFallback { host: host.clone() }));
        assert_eq!(
            Ran::fallback_message(&host),
            format!("request to HTTPS lifecycle hook {host} got HTTP response, retry with HTTP succeeded")
        );
        let requests = server.await.expect("server");
        assert!(requests[1].starts_with("get / http/1.1\r\n"), "{requests:?}");
        assert!(requests[1].contains("x-kept: v\r\n") && !requests[1].contains("authorization"), "{requests:?}");
        // Nobody listening: the HTTPS error stands, no retry.
        let err = run(&hook, &target(), Duration::from_secs(2)).await.expect_err("nobody listens");
        assert!(err.contains("connection refused"), "{err}");
    }

    #[tokio::test]
    async fn sleep_is_bounded_by_the_timeout_and_exec_needs_a_container() {
        let sleep = LifecycleHandler { sleep: Some(SleepAction { seconds: 3600 }), ..Default::default() };
        let t0 = std::time::Instant::now();
        assert_eq!(run(&sleep, &target(), Duration::from_millis(50)).await, Ok(Ran::Done));
        assert!(t0.elapsed() < Duration::from_secs(5));
        let exec =
            LifecycleHandler { exec: Some(ExecAction { command: Some(vec!["true".into()]) }), ..Default::default() };
        let err = run(&exec, &target(), Duration::from_secs(1)).await.expect_err("not running");
        assert!(err.contains("not running"), "{err}");
        assert_eq!(
            failure_message(&exec, "main", "p_ns(u)", "boom"),
            "Exec lifecycle hook ([true]) for Container \"main\" in Pod \"p_ns(u)\" failed - error: boom"
        );
        assert!(run(&LifecycleHandler::default(), &target(), Duration::from_secs(1)).await.is_err());
    }
}
