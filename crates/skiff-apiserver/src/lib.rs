//! skiff's Kubernetes API server.

pub mod tables;
