//! Upstream defaulting and registry strategies for the built-in kinds.
//!
//! Implements [`crate::kinds::Defaulting`] and [`crate::kinds::Strategy`] for every built-in
//! type. Validation lives in [`crate::validation::kinds`].

// Placeholder: every kind without rules yet. Replace entries with real implementations.
macro_rules! no_rules {
    ($g:expr, $v:expr, $t:ty) => {
        impl crate::kinds::Defaulting for $t {}
        impl crate::kinds::Strategy for $t {}
    };
}
crate::for_each_builtin_kind!(no_rules);
