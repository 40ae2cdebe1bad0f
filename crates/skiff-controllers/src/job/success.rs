//! Whether an Indexed Job's `successPolicy` is met (upstream `matchSuccessPolicy`): rules are
//! tried in order; a rule with `succeededIndexes` needs all of those indexes succeeded, or
//! `succeededCount` of them when it also has a count; a rule with only `succeededCount` needs
//! that many succeeded indexes in all.
//!
//! What does not live here: validating the policy (the API server) and acting on the match
//! (the Job controller).

use std::collections::BTreeSet;

use k8s_openapi::api::batch::v1::SuccessPolicy;

use super::indexes;

/// The message of the first rule `succeeded` satisfies (`Matched rules at index N`), if any.
pub fn matched(policy: &SuccessPolicy, completions: i32, succeeded: &BTreeSet<i32>) -> Option<String> {
    if succeeded.is_empty() {
        return None;
    }
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    policy
        .rules
        .iter()
        .position(|rule| match rule.succeeded_indexes.as_deref() {
            Some(list) => {
                let required = indexes::parse(Some(list), completions);
                if required.is_empty() {
                    return false;
                }
                let done = count(required.intersection(succeeded).count());
                done >= rule.succeeded_count.unwrap_or(count(required.len()))
            }
            None => rule.succeeded_count.is_some_and(|n| count(succeeded.len()) >= n),
        })
        .map(|i| format!("Matched rules at index {i}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(rules: serde_json::Value) -> SuccessPolicy {
        serde_json::from_value(json!({ "rules": rules })).expect("policy")
    }

    #[test]
    fn indexes_rule_needs_every_listed_index() {
        let p = policy(json!([{"succeededIndexes": "0,2-3"}]));
        assert_eq!(matched(&p, 5, &[0, 2].into()), None);
        assert_eq!(matched(&p, 5, &[0, 1, 2, 3].into()).as_deref(), Some("Matched rules at index 0"));
    }

    #[test]
    fn count_within_indexes() {
        let p = policy(json!([{"succeededIndexes": "1-4", "succeededCount": 2}]));
        assert_eq!(matched(&p, 5, &[0, 1].into()), None, "index 0 is outside the rule");
        assert!(matched(&p, 5, &[1, 4].into()).is_some());
    }

    #[test]
    fn count_alone_and_rule_order() {
        let p = policy(json!([{"succeededIndexes": "4"}, {"succeededCount": 2}]));
        assert_eq!(matched(&p, 5, &[0].into()), None);
        assert_eq!(matched(&p, 5, &[0, 1].into()).as_deref(), Some("Matched rules at index 1"));
        assert_eq!(matched(&p, 5, &[4].into()).as_deref(), Some("Matched rules at index 0"));
        assert_eq!(matched(&p, 5, &BTreeSet::new()), None);
    }

    #[test]
    fn unparsable_or_out_of_range_indexes_never_match() {
        let p = policy(json!([{"succeededIndexes": "7-9"}, {"succeededIndexes": ""}]));
        assert_eq!(matched(&p, 5, &[0, 1, 2, 3, 4].into()), None);
    }
}
