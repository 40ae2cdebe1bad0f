//! Building HTTP responses: JSON bodies with the right content type, `Status` errors, and
//! `Warning` headers.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_are_quoted_strings() {
        let resp = with_warnings(text(200, String::new()), &["a \"b\" c\\d\ne".to_string()]);
        let values: Vec<_> = resp.headers().get_all(header::WARNING).iter().collect();
        assert_eq!(values, vec![HeaderValue::from_static(r#"299 - "a \"b\" c\\d e""#)]);
    }
}
