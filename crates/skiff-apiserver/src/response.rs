//! Building HTTP responses: JSON bodies with the right content type, `Status` errors,
//! `Warning` headers, and bodies that run code when a stream ends ([`hold_until_done`]).

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use serde_json::Value;
use skiff_api::StatusError;

/// A response with a JSON body.
pub fn json_bytes(code: u16, body: impl Into<Bytes>) -> Response<Body> {
    let mut resp = Response::new(Body::from(body.into()));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// A response with a JSON value.
pub fn json(code: u16, value: &Value) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(bytes) => json_bytes(code, bytes),
        Err(e) => status(&StatusError::internal(e)),
    }
}

/// A `Status` response for an error.
pub fn status(err: &StatusError) -> Response<Body> {
    json(err.code, &err.to_status())
}

/// Adds `Warning: 299 - "<text>"` headers, the text a quoted-string (`\` and `"` escaped, as
/// upstream's `NewWarningHeader`; control characters become spaces).
pub fn with_warnings(mut resp: Response<Body>, warnings: &[String]) -> Response<Body> {
    for w in warnings {
        let text: String = w
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect::<String>()
            .replace('\\', "\\\\")
            .replace('"', "\\\"");
        if let Ok(v) = HeaderValue::from_str(&format!("299 - \"{text}\"")) {
            resp.headers_mut().append(header::WARNING, v);
        }
    }
    resp
}

/// A plain-text response (health endpoints).
pub fn text(code: u16, body: String) -> Response<Body> {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}

/// `resp` with a body that keeps `guard` alive until the body is dropped: when a watch or
/// stream ends or its client goes away (the guard's `Drop` runs then).
pub fn hold_until_done<G: Send + Unpin + 'static>(resp: Response<Body>, guard: G) -> Response<Body> {
    let (parts, inner) = resp.into_parts();
    Response::from_parts(parts, Body::new(GuardedBody { inner, _guard: guard }))
}

/// A response body carrying a guard (see [`hold_until_done`]).
struct GuardedBody<G> {
    inner: Body,
    _guard: G,
}

impl<G: Unpin> http_body::Body for GuardedBody<G> {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        std::pin::Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_are_quoted_strings() {
        let resp = with_warnings(text(200, String::new()), &["a \"b\" c\\d\ne".to_string()]);
        let values: Vec<_> = resp.headers().get_all(header::WARNING).iter().collect();
        assert_eq!(values, vec![HeaderValue::from_static(r#"299 - "a \"b\" c\\d e""#)]);
    }

    #[tokio::test]
    async fn guards_live_until_the_body_is_dropped() {
        use http_body_util::BodyExt as _;
        struct Flag(std::sync::Arc<std::sync::atomic::AtomicBool>);
        impl Drop for Flag {
            fn drop(&mut self) {
                self.0.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let dropped = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let resp = hold_until_done(text(200, "body".into()), Flag(dropped.clone()));
        assert!(!dropped.load(std::sync::atomic::Ordering::SeqCst));
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        assert_eq!(&body[..], b"body");
        assert!(dropped.load(std::sync::atomic::Ordering::SeqCst));
    }
}
