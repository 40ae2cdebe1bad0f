//! cel-go's sets extension, part of the Kubernetes environment: `sets.contains(a, b)` (every
//! element of `b` is in `a`), `sets.equivalent(a, b)` (both contain each other) and
//! `sets.intersects(a, b)` (some element is in both), with CEL equality.

use cel::common::types::LIST_TYPE;
use cel::common::value::{CowVal, Val};
use cel::{DeclarationError, ExecutionError};

use super::{Registry, boolean, list_arg, take};

pub(super) fn register(reg: &mut Registry<'_>) -> Result<(), DeclarationError> {
    reg.global("sets.contains", vec![LIST_TYPE, LIST_TYPE], |a| relation(a, |x, y| subset(y, x)))?;
    reg.global("sets.equivalent", vec![LIST_TYPE, LIST_TYPE], |a| relation(a, |x, y| subset(x, y) && subset(y, x)))?;
    reg.global("sets.intersects", vec![LIST_TYPE, LIST_TYPE], |a| {
        relation(a, |x, y| x.iter().any(|i| y.iter().any(|j| i.equals(*j))))
    })?;
    Ok(())
}

/// Whether every element of `small` is in `big`.
fn subset(small: &[&dyn Val], big: &[&dyn Val]) -> bool {
    small.iter().all(|i| big.iter().any(|j| j.equals(*i)))
}

fn relation<'b, 'v>(
    args: Vec<CowVal<'b, 'v>>,
    f: fn(&[&dyn Val], &[&dyn Val]) -> bool,
) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [a, b] = take(args)?;
    let (a, b) = (list_arg(a.as_ref())?, list_arg(b.as_ref())?);
    let a: Vec<&dyn Val> = a.into_iter().map(|v| v as &dyn Val).collect();
    let b: Vec<&dyn Val> = b.into_iter().map(|v| v as &dyn Val).collect();
    Ok(boolean(f(&a, &b)))
}

#[cfg(test)]
mod tests {
    use super::super::testing::assert_true;

    #[test]
    fn set_relations() {
        assert_true(&[
            "sets.contains([1, 2, 3], [2, 3])",
            "!sets.contains([1, 2], [3])",
            "sets.contains([1], [])",
            "sets.equivalent([1, 2, 2], [2, 1])",
            "!sets.equivalent([1], [1, 2])",
            "sets.intersects([1, 2], [2, 5])",
            "!sets.intersects([1], [])",
        ]);
    }
}
