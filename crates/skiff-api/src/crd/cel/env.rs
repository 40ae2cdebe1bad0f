//! The one CEL environment every rule is compiled and evaluated in: cel-rust's standard library
//! (with optional types), its strings extension, the Kubernetes libraries of [`super::library`]
//! and the cost meter's hidden `@cost` function ([`super::budget`]).
//!
//! It also records the name of every function, so that the static checker can reject calls to
//! functions that do not exist, as upstream's type checker does.

use std::collections::BTreeSet;
use std::sync::{Arc, LazyLock};

use cel::common::types::DYN_TYPE;
use cel::{DeclarationError, Env};

use super::budget;
use super::library::{self, Registry};

/// Functions of cel-rust's standard library and strings extension.
const BUILTIN_FUNCTIONS: &[&str] = &[
    "size",
    "contains",
    "startsWith",
    "endsWith",
    "matches",
    "int",
    "uint",
    "double",
    "string",
    "bool",
    "dyn",
    "type",
    "duration",
    "timestamp",
    "getFullYear",
    "getMonth",
    "getDayOfYear",
    "getDayOfMonth",
    "getDate",
    "getDayOfWeek",
    "getHours",
    "getMinutes",
    "getSeconds",
    "getMilliseconds",
    "optional.none",
    "optional.of",
    "optional.ofNonZeroValue",
    "value",
    "hasValue",
    "or",
    "orValue",
    "charAt",
    "indexOf",
    "lastIndexOf",
    "join",
    "lowerAscii",
    "upperAscii",
    "trim",
    "replace",
    "split",
    "substring",
    "format",
    "strings.quote",
    "reverse",
];

struct Shared {
    env: Arc<Env>,
    functions: BTreeSet<String>,
}

fn build() -> Result<Shared, DeclarationError> {
    let mut env = Env::stdlib();
    env.add_extension(cel::extensions::strings)?;
    let mut functions: BTreeSet<String> = BUILTIN_FUNCTIONS.iter().map(|s| s.to_string()).collect();
    library::register(&mut Registry::new(&mut env, &mut functions))?;
    env.add_overload(budget::COST_FUNCTION, "skiff_cost", vec![DYN_TYPE], budget::cost)?;
    Ok(Shared { env: Arc::new(env), functions })
}

#[allow(clippy::expect_used)]
static SHARED: LazyLock<Shared> =
    LazyLock::new(|| build().expect("the CEL environment declares each overload once (checked by unit tests)"));

/// The shared environment.
pub(crate) fn shared() -> &'static Arc<Env> {
    &SHARED.env
}

/// Whether `name` (possibly qualified, `sets.contains`) is a function of the environment.
pub(crate) fn is_function(name: &str) -> bool {
    SHARED.functions.contains(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_builds_and_knows_its_functions() {
        assert!(build().is_ok());
        for f in ["startsWith", "lowerAscii", "isSorted", "quantity", "sets.contains", "format.dns1123Label"] {
            assert!(is_function(f), "{f}");
        }
        assert!(!is_function("nope"));
    }
}
