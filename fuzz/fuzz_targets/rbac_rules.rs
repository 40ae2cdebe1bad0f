//! Fuzzes the RBAC rule matcher and the escalation arithmetic: a rule and a request are built
//! from the input's `|`-separated fields. Matching must not panic; a rule must cover itself; and
//! when an owner's rules cover a requested rule, every request the requested rule allows must be
//! allowed by the owner's rules too.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use skiff_apiserver::authn::UserInfo;
use skiff_apiserver::authz::rbac::escalation::covers;
use skiff_apiserver::authz::rbac::rules::{Rule, any_allows};
use skiff_apiserver::authz::{Attributes, ResourceAttributes};

fn list(s: &str) -> Vec<String> {
    s.split(',').filter(|x| !x.is_empty()).map(str::to_string).collect()
}

fn rule(fields: &[&str]) -> Rule {
    let f = |i: usize| fields.get(i).copied().unwrap_or("");
    Rule {
        verbs: list(f(0)),
        api_groups: list(f(1)),
        resources: list(f(2)),
        resource_names: list(f(3)),
        non_resource_urls: list(f(4)),
    }
}

fuzz_target!(|data: &str| {
    let parts: Vec<&str> = data.split('|').collect();
    let owner = rule(&parts[..parts.len().min(5)]);
    let requested = rule(parts.get(5..parts.len().min(10)).unwrap_or(&[]));
    let req = parts.get(10..).unwrap_or(&[]);
    // Request paths split resources at `/`, so a resource or subresource never contains one.
    let f = |i: usize| req.get(i).copied().unwrap_or("").replace('/', "");
    let path = req.first().copied().unwrap_or("").to_string();
    let user = Arc::new(UserInfo::new("u".into(), vec![]));
    let attrs = if path.starts_with('/') {
        Attributes { user, verb: f(1), resource: None, path }
    } else {
        let resource =
            ResourceAttributes { group: f(2), resource: f(0), subresource: f(3), name: f(4), ..Default::default() };
        Attributes { user, verb: f(1), resource: Some(resource), path: String::new() }
    };
    let _ = any_allows(std::slice::from_ref(&owner), &attrs);
    assert!(covers(std::slice::from_ref(&owner), std::slice::from_ref(&owner)).is_empty(), "{owner:?}");
    if covers(std::slice::from_ref(&owner), std::slice::from_ref(&requested)).is_empty()
        && any_allows(std::slice::from_ref(&requested), &attrs)
    {
        assert!(any_allows(std::slice::from_ref(&owner), &attrs), "{owner:?} covers {requested:?} but not {attrs:?}");
    }
});
