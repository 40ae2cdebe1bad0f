//! The `skiff` binary's library half: configuration, PKI bootstrap, kubeconfig, server wiring.
//!
//! `main.rs` is a thin shell over these modules so that they can be unit-tested and reused by
//! integration tests.

pub mod allocator;
pub mod bench;
pub mod bench_net;
pub mod bench_scheduler;
pub mod bench_workloads;
pub mod cgroupfs;
pub mod config;
pub mod fsutil;
pub mod identities;
pub mod images;
pub mod kubeconfig;
pub mod noderole;
pub mod pki;
pub mod scheduler;
pub mod secrets_encrypt;
pub mod server;

/// The Kubernetes API version skiff serves.
pub const API_VERSION: &str = "v1.33";

/// skiff's version (from Cargo).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git commit skiff was built from, when the build set `SKIFF_GIT_COMMIT`.
pub const GIT_COMMIT: Option<&str> = option_env!("SKIFF_GIT_COMMIT");

/// The text `skiff version` prints.
pub fn version_text() -> String {
    format!(
        "skiff version v{VERSION}\ngit commit: {}\nAPI: {API_VERSION}\n",
        GIT_COMMIT.filter(|c| !c.is_empty()).unwrap_or("unknown")
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    #[test]
    fn every_source_file_opens_with_a_module_doc() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        for dir in ["src", "tests"] {
            for entry in std::fs::read_dir(root.join(dir)).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    assert!(text.starts_with("//!"), "{} must open with a //! doc", path.display());
                }
            }
        }
    }

    #[test]
    fn version_text_names_api_version() {
        let text = super::version_text();
        assert!(text.contains("API: v1.33") && text.contains(super::VERSION), "{text}");
    }
}
