//! Server-side printing: `meta.k8s.io/v1 Table` columns and cells per kind.
