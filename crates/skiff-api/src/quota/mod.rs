//! ResourceQuota arithmetic shared by the API server's ResourceQuota admission and the
//! controller manager's quota controller: resource lists with upstream's formatting
//! (`list`), and what each object charges and which quotas it falls under (`usage`).
//!
//! What does not live here: reading quotas or objects (the callers do I/O) and LimitRange
//! (the API server's LimitRanger admission).

pub mod list;
pub mod usage;

pub use list::{Amount, ResourceList};
pub use usage::{Evaluator, Scope, scopes_of};
