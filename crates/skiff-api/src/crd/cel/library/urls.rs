//! The Kubernetes URL library: `url(s)`, `isURL(s)` and, on URLs, `getScheme()`, `getHost()`,
//! `getHostname()`, `getPort()`, `getEscapedPath()` and `getQuery()`.
//!
//! Parsing follows Go's `url.ParseRequestURI`, which upstream uses: an absolute URL
//! (`scheme:…`) or an absolute path (`/…`); relative references and control characters are
//! rejected.

use std::collections::HashMap;

use cel::common::types::{CelList, CelMap, CelMapKey, CelString, STRING_TYPE};
use cel::common::value::{CowVal, Val};
use cel::{DeclarationError, ExecutionError};

use super::{Registry, boolean, fail, library_type, own_arg, string, string_arg, take};

/// A parsed URL.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Url {
    scheme: String,
    /// Host and port as written (`example.com:80`, `[::1]:80`).
    host: String,
    path: String,
    query: String,
}

library_type!(Url, URL_TYPE, "kubernetes.URL");

pub(super) fn register(reg: &mut Registry<'_>) -> Result<(), DeclarationError> {
    reg.global("url", vec![STRING_TYPE], to_url)?;
    reg.global("isURL", vec![STRING_TYPE], is_url)?;
    reg.member("getScheme", URL_TYPE, vec![], |a| part(a, |u| u.scheme.clone()))?;
    reg.member("getHost", URL_TYPE, vec![], |a| part(a, |u| u.host.clone()))?;
    reg.member("getHostname", URL_TYPE, vec![], |a| part(a, Url::hostname))?;
    reg.member("getPort", URL_TYPE, vec![], |a| part(a, Url::port))?;
    reg.member("getEscapedPath", URL_TYPE, vec![], |a| part(a, |u| u.path.clone()))?;
    reg.member("getQuery", URL_TYPE, vec![], get_query)?;
    Ok(())
}

impl Url {
    /// Parses `s` as Go's `url.ParseRequestURI` would.
    pub(super) fn parse(s: &str) -> Result<Url, String> {
        if s.chars().any(|c| c.is_control()) {
            return Err(format!("parse {s:?}: net/url: invalid control character in URL"));
        }
        let (before_query, query) = s.split_once('?').unwrap_or((s, ""));
        if before_query.starts_with('/') {
            return Ok(Url {
                scheme: String::new(),
                host: String::new(),
                path: before_query.into(),
                query: query.into(),
            });
        }
        let Some((scheme, rest)) = before_query.split_once(':') else {
            return Err(format!("parse {s:?}: invalid URI for request"));
        };
        let valid_scheme = scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if !valid_scheme {
            return Err(format!("parse {s:?}: first path segment in URL cannot contain colon"));
        }
        let (host, path) = match rest.strip_prefix("//") {
            Some(authority_and_path) => {
                let end = authority_and_path.find('/').unwrap_or(authority_and_path.len());
                let (authority, path) = authority_and_path.split_at(end);
                let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
                if host.contains(' ') {
                    return Err(format!("parse {s:?}: invalid character \" \" in host name"));
                }
                (host.to_string(), path.to_string())
            }
            None if rest.starts_with('/') => (String::new(), rest.to_string()),
            None => (String::new(), String::new()),
        };
        Ok(Url { scheme: scheme.to_string(), host, path, query: query.into() })
    }

    /// The host without port or IPv6 brackets.
    fn hostname(&self) -> String {
        if let Some(rest) = self.host.strip_prefix('[') {
            return rest.split(']').next().unwrap_or("").to_string();
        }
        self.host.split(':').next().unwrap_or("").to_string()
    }

    /// The port, or `""`.
    fn port(&self) -> String {
        let after_host = match self.host.strip_prefix('[') {
            Some(rest) => rest.split_once(']').map_or("", |(_, p)| p),
            None => self.host.find(':').map_or("", |i| &self.host[i..]),
        };
        after_host.strip_prefix(':').unwrap_or("").to_string()
    }
}

fn to_url<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [s] = take(args)?;
    Url::parse(string_arg(s.as_ref())?)
        .map(CowVal::owned)
        .map_err(|e| fail("url", format!("URL parse error during conversion from string: {e}")))
}

fn is_url<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [s] = take(args)?;
    Ok(boolean(Url::parse(string_arg(s.as_ref())?).is_ok()))
}

fn part<'b, 'v>(args: Vec<CowVal<'b, 'v>>, f: fn(&Url) -> String) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [u] = take(args)?;
    Ok(string(f(own_arg::<Url>(u.as_ref(), "kubernetes.URL")?)))
}

/// Decodes `%XX` escapes and `+` (as a space) in a query component.
fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn get_query<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [u] = take(args)?;
    let url = own_arg::<Url>(u.as_ref(), "kubernetes.URL")?;
    let mut values: Vec<(String, Vec<String>)> = Vec::new();
    for pair in url.query.split(['&', ';']).filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (unescape(k), unescape(v));
        match values.iter_mut().find(|(key, _)| *key == k) {
            Some((_, list)) => list.push(v),
            None => values.push((k, vec![v])),
        }
    }
    let map: HashMap<CelMapKey<'v>, Box<dyn Val + 'v>> = values
        .into_iter()
        .map(|(k, vs)| {
            let list: Vec<Box<dyn Val + 'v>> =
                vs.into_iter().map(|v| Box::new(CelString::from(v)) as Box<dyn Val>).collect();
            (CelMapKey::from(k), Box::new(CelList::from(list)) as Box<dyn Val + 'v>)
        })
        .collect();
    Ok(CowVal::owned(CelMap::from(map)))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_err, assert_true};

    #[test]
    fn urls_parse_like_go() {
        assert_true(&[
            "url('https://example.com:80/a%20b?x=1&x=2&y=z').getScheme() == 'https'",
            "url('https://example.com:80/path').getHost() == 'example.com:80'",
            "url('https://example.com:80/path').getHostname() == 'example.com'",
            "url('https://example.com:80/path').getPort() == '80'",
            "url('https://example.com/path').getPort() == ''",
            "url('https://[::1]:8080/').getHostname() == '::1'",
            "url('https://[::1]:8080/').getPort() == '8080'",
            "url('https://example.com/a%20b').getEscapedPath() == '/a%20b'",
            "url('https://example.com/?x=1&x=2&y=z').getQuery() == {'x': ['1', '2'], 'y': ['z']}",
            "url('/absolute/path').getEscapedPath() == '/absolute/path'",
            "isURL('https://example.com')",
            "!isURL('relative/path')",
            "!isURL('')",
        ]);
        assert_err(&[("url('not a url')", "URL parse error")]);
    }
}
