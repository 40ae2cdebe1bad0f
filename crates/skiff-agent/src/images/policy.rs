//! `imagePullPolicy`: the default the API server gives a container without one (`Always` for the
//! `latest` tag, written or implied, else `IfNotPresent`), applied again here for pods that
//! reach the agent without it, and whether a start needs a pull.

use skiff_runtime::images::Reference;

/// A container's pull policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    /// Pull before every start (re-resolving the tag; present blobs are not fetched again).
    Always,
    /// Pull only when the image is not on the node.
    IfNotPresent,
    /// Never pull.
    Never,
}

impl PullPolicy {
    /// The container's policy: its `imagePullPolicy`, or the default for `image`.
    pub fn of(policy: Option<&str>, image: &Reference) -> Self {
        match policy {
            Some("Always") => Self::Always,
            Some("Never") => Self::Never,
            Some("IfNotPresent") => Self::IfNotPresent,
            _ => Self::default_for(image),
        }
    }

    /// `Always` for the `latest` tag (explicit, or implied by a reference with neither tag nor
    /// digest), `IfNotPresent` otherwise (a digest without a tag included).
    pub fn default_for(image: &Reference) -> Self {
        if image.tag.as_deref() == Some(skiff_runtime::images::reference::DEFAULT_TAG) {
            Self::Always
        } else {
            Self::IfNotPresent
        }
    }

    /// Whether a start must pull, given whether the image is present.
    pub fn should_pull(self, present: bool) -> bool {
        match self {
            Self::Always => true,
            Self::IfNotPresent => !present,
            Self::Never => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_follows_the_tag() {
        let d = format!("sha256:{}", "a".repeat(64));
        for (image, want) in [
            ("nginx".to_string(), PullPolicy::Always),
            ("nginx:latest".into(), PullPolicy::Always),
            ("nginx:1.25".into(), PullPolicy::IfNotPresent),
            ("registry:5000/nginx".into(), PullPolicy::Always),
            ("registry:5000/nginx:1".into(), PullPolicy::IfNotPresent),
            (format!("nginx@{d}"), PullPolicy::IfNotPresent),
            (format!("nginx:latest@{d}"), PullPolicy::Always),
        ] {
            let r = Reference::parse(&image).expect("parse");
            assert_eq!(PullPolicy::of(None, &r), want, "{image}");
            assert_eq!(PullPolicy::of(Some(""), &r), want, "{image}");
        }
        let r = Reference::parse("nginx").expect("parse");
        assert_eq!(PullPolicy::of(Some("Never"), &r), PullPolicy::Never);
        assert_eq!(PullPolicy::of(Some("IfNotPresent"), &r), PullPolicy::IfNotPresent);
    }

    #[test]
    fn pull_decisions() {
        assert!(PullPolicy::Always.should_pull(true));
        assert!(PullPolicy::IfNotPresent.should_pull(false));
        assert!(!PullPolicy::IfNotPresent.should_pull(true));
        assert!(!PullPolicy::Never.should_pull(false));
    }
}
