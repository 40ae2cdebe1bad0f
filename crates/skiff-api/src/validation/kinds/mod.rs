//! Upstream validation of the built-in kinds (everything but metadata).
//!
//! Implements [`crate::kinds::Validation`] for every built-in type.

// Placeholder: every kind without rules yet. Replace entries with real implementations.
macro_rules! no_rules {
    ($g:expr, $v:expr, $t:ty) => {
        impl crate::kinds::Validation for $t {}
    };
}
crate::for_each_builtin_kind!(no_rules);
