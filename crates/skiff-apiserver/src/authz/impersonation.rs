//! User impersonation (upstream `WithImpersonation`): the `Impersonate-User`,
//! `Impersonate-Group`, `Impersonate-Uid` and `Impersonate-Extra-<key>` headers make a request
//! run as another identity when the caller may `impersonate` each part of it (`users`,
//! `serviceaccounts`, `groups`, `uids` and `userextras/<key>` in `authentication.k8s.io`);
//! otherwise the request is refused with the upstream 403 for the first part not allowed.

use std::collections::BTreeMap;
use std::sync::Arc;

use http::HeaderMap;
use skiff_api::StatusError;

use super::{Attributes, Authorizers, Decision, ResourceAttributes, forbidden};
use crate::authn::{AUTHENTICATED_GROUP, UserInfo};
use crate::authz::rbac::index::SERVICE_ACCOUNT_PREFIX;

const USER: &str = "impersonate-user";
const GROUP: &str = "impersonate-group";
const UID: &str = "impersonate-uid";
const EXTRA_PREFIX: &str = "impersonate-extra-";

/// Decodes `%XX` escapes of an extra key (upstream unescapes header-safe keys).
fn unescape(key: &str) -> String {
    let bytes = key.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = key.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).to_lowercase()
}

/// Whether the request carries impersonation headers.
pub fn requested(headers: &HeaderMap) -> bool {
    headers.keys().any(|k| k.as_str().starts_with("impersonate-"))
}

fn check(chain: &Authorizers, caller: &Arc<UserInfo>, resource: ResourceAttributes) -> Result<(), StatusError> {
    let attrs =
        Attributes { user: caller.clone(), verb: "impersonate".into(), resource: Some(resource), path: String::new() };
    match chain.authorize(&attrs) {
        Decision::Allow => Ok(()),
        Decision::Deny(why) | Decision::NoOpinion(why) => Err(forbidden(&attrs, &why)),
    }
}

fn target(group: &str, resource: &str, subresource: &str, namespace: &str, name: &str) -> ResourceAttributes {
    ResourceAttributes {
        group: group.into(),
        resource: resource.into(),
        subresource: subresource.into(),
        namespace: namespace.into(),
        name: name.into(),
        ..Default::default()
    }
}

/// The identity the request runs as: `caller` without impersonation headers, the impersonated
/// user when every part is allowed, or the error to answer.
pub fn apply(chain: &Authorizers, caller: Arc<UserInfo>, headers: &HeaderMap) -> Result<Arc<UserInfo>, StatusError> {
    if !requested(headers) {
        return Ok(caller);
    }
    let values = |name: &str| -> Vec<String> {
        headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).map(str::to_string).collect()
    };
    let user = values(USER).into_iter().next().unwrap_or_default();
    let groups = values(GROUP);
    let uid = values(UID).into_iter().next().unwrap_or_default();
    let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in headers {
        if let Some(key) = k.as_str().strip_prefix(EXTRA_PREFIX)
            && let Ok(v) = v.to_str()
        {
            extra.entry(unescape(key)).or_default().push(v.to_string());
        }
    }
    if user.is_empty() {
        let mut asked = Vec::new();
        asked.extend(groups.iter().map(|g| format!("Impersonate-Group: {g}")));
        if !uid.is_empty() {
            asked.push(format!("Impersonate-Uid: {uid}"));
        }
        for (k, vs) in &extra {
            asked.extend(vs.iter().map(|v| format!("Impersonate-Extra-{k}: {v}")));
        }
        return Err(StatusError::bad_request(format!("requested [{}] without impersonating a user", asked.join(" "))));
    }
    let mut final_groups = groups.clone();
    match user.strip_prefix(SERVICE_ACCOUNT_PREFIX).and_then(|rest| rest.split_once(':')) {
        Some((ns, name)) => {
            check(chain, &caller, target("", "serviceaccounts", "", ns, name))?;
            if groups.is_empty() {
                final_groups = vec!["system:serviceaccounts".into(), format!("system:serviceaccounts:{ns}")];
            }
        }
        None => check(chain, &caller, target("", "users", "", "", &user))?,
    }
    for g in &groups {
        check(chain, &caller, target("", "groups", "", "", g))?;
    }
    for (k, vs) in &extra {
        for v in vs {
            check(chain, &caller, target("authentication.k8s.io", "userextras", k, "", v))?;
        }
    }
    if !uid.is_empty() {
        check(chain, &caller, target("authentication.k8s.io", "uids", "", "", &uid))?;
    }
    if user != "system:anonymous" && !final_groups.iter().any(|g| g == AUTHENTICATED_GROUP) {
        final_groups.push(AUTHENTICATED_GROUP.into());
    }
    tracing::debug!(caller = %caller.name, as_user = %user, "impersonating");
    Ok(Arc::new(UserInfo { name: user, uid, groups: final_groups, extra }))
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;
    use crate::authz::{AlwaysAllow, Authorizer};

    struct OnlyUsers;
    impl Authorizer for OnlyUsers {
        fn authorize(&self, attrs: &Attributes) -> Decision {
            match &attrs.resource {
                Some(r) if r.resource == "users" => Decision::Allow,
                _ => Decision::NoOpinion(String::new()),
            }
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    fn alice() -> Arc<UserInfo> {
        Arc::new(UserInfo::new("alice".into(), vec![]))
    }

    #[test]
    fn allowed_impersonation_runs_as_the_target() {
        let chain = Authorizers::new(vec![Box::new(AlwaysAllow)]);
        let h = headers(&[
            ("impersonate-user", "bob"),
            ("impersonate-group", "g1"),
            ("impersonate-group", "g2"),
            ("impersonate-extra-scopes%2Fx", "v"),
        ]);
        let u = apply(&chain, alice(), &h).expect("test value");
        assert_eq!(u.name, "bob");
        assert_eq!(u.groups, vec!["g1", "g2", AUTHENTICATED_GROUP]);
        assert_eq!(u.extra["scopes/x"], vec!["v".to_string()]);
        let sa = apply(&chain, alice(), &headers(&[("impersonate-user", "system:serviceaccount:ns:robot")]))
            .expect("test value");
        assert_eq!(sa.groups, vec!["system:serviceaccounts", "system:serviceaccounts:ns", AUTHENTICATED_GROUP]);
        let me = alice();
        assert!(Arc::ptr_eq(&apply(&chain, me.clone(), &HeaderMap::new()).expect("test value"), &me));
    }

    #[test]
    fn each_part_needs_permission() {
        let chain = Authorizers::new(vec![Box::new(OnlyUsers)]);
        assert_eq!(apply(&chain, alice(), &headers(&[("impersonate-user", "bob")])).expect("test value").name, "bob");
        let e = apply(&chain, alice(), &headers(&[("impersonate-user", "bob"), ("impersonate-group", "admins")]))
            .expect_err("must fail");
        assert_eq!(e.code, 403);
        assert_eq!(
            e.message,
            "groups \"admins\" is forbidden: User \"alice\" cannot impersonate resource \"groups\" in API group \"\" at the cluster scope"
        );
        let none = Authorizers::new(vec![]);
        let e = apply(&none, alice(), &headers(&[("impersonate-user", "bob")])).expect_err("must fail");
        assert_eq!(
            e.message,
            "users \"bob\" is forbidden: User \"alice\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope"
        );
        let e = apply(&chain, alice(), &headers(&[("impersonate-group", "g")])).expect_err("must fail");
        assert_eq!(e.code, 400);
        assert_eq!(e.message, "requested [Impersonate-Group: g] without impersonating a user");
    }
}
