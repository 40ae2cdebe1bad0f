//! The Kubernetes lists library: `isSorted()`, `sum()`, `min()`, `max()`, `indexOf(x)` and
//! `lastIndexOf(x)` on lists. Elements are ordered with CEL's own comparison and compared with
//! CEL equality, so mixed-type lists fail as upstream's type checker would reject them.

use std::cmp::Ordering;

use cel::common::types::{DYN_TYPE, LIST_TYPE};
use cel::common::value::{CowVal, Val};
use cel::{DeclarationError, ExecutionError};

use super::{Registry, fail, int, list_arg, take, unexpected};

pub(super) fn register(reg: &mut Registry<'_>) -> Result<(), DeclarationError> {
    reg.member("isSorted", LIST_TYPE, vec![], is_sorted)?;
    reg.member("sum", LIST_TYPE, vec![], sum)?;
    reg.member("min", LIST_TYPE, vec![], min)?;
    reg.member("max", LIST_TYPE, vec![], max)?;
    reg.member("indexOf", LIST_TYPE, vec![DYN_TYPE], index_of)?;
    reg.member("lastIndexOf", LIST_TYPE, vec![DYN_TYPE], last_index_of)?;
    Ok(())
}

fn compare(a: &dyn Val, b: &dyn Val) -> Result<Ordering, ExecutionError> {
    a.as_comparer().ok_or_else(|| unexpected(a, "comparable"))?.compare(b)
}

fn is_sorted<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [list] = take(args)?;
    let items = list_arg(list.as_ref())?;
    for pair in items.windows(2) {
        if compare(pair[0], pair[1])? == Ordering::Greater {
            return Ok(super::boolean(false));
        }
    }
    Ok(super::boolean(true))
}

fn sum<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [list] = take(args)?;
    let items = list_arg(list.as_ref())?;
    let Some((first, rest)) = items.split_first() else { return Ok(int(0)) };
    let mut total: Box<dyn Val + 'v> = first.clone_as_boxed();
    for item in rest {
        let next = total.as_adder().ok_or_else(|| unexpected(total.as_ref(), "summable"))?.add(*item)?.into_owned();
        total = next;
    }
    Ok(CowVal::Owned(total))
}

fn extreme<'b, 'v>(args: Vec<CowVal<'b, 'v>>, name: &str, keep: Ordering) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [list] = take(args)?;
    let items = list_arg(list.as_ref())?;
    let Some((first, rest)) = items.split_first() else {
        return Err(fail(name, format!("{name} called on empty list")));
    };
    let mut best = *first;
    for item in rest {
        if compare(*item, best)? == keep {
            best = *item;
        }
    }
    Ok(CowVal::Owned(best.clone_as_boxed()))
}

fn min<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    extreme(args, "min", Ordering::Less)
}

fn max<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    extreme(args, "max", Ordering::Greater)
}

fn position<'b, 'v>(args: Vec<CowVal<'b, 'v>>, last: bool) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [list, needle] = take(args)?;
    let items = list_arg(list.as_ref())?;
    let found = if last {
        items.iter().rposition(|i| i.equals(needle.as_ref()))
    } else {
        items.iter().position(|i| i.equals(needle.as_ref()))
    };
    Ok(int(found.map_or(-1, |i| i as i64)))
}

fn index_of<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    position(args, false)
}

fn last_index_of<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    position(args, true)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_err, assert_true};

    #[test]
    fn list_functions_follow_the_kubernetes_library() {
        assert_true(&[
            "[1, 2, 2, 3].isSorted()",
            "![2, 1].isSorted()",
            "['a', 'b'].isSorted()",
            "[].isSorted()",
            "[1, 2, 3].sum() == 6",
            "[1.5, 2.5].sum() == 4.0",
            "[].sum() == 0",
            "[3, 1, 2].min() == 1",
            "[3, 1, 2].max() == 3",
            "['b', 'a'].min() == 'a'",
            "[1, 2, 1].indexOf(1) == 0",
            "[1, 2, 1].lastIndexOf(1) == 2",
            "[1, 2].indexOf(5) == -1",
            "'abcb'.indexOf('b') == 1",
        ]);
        assert_err(&[("[].min()", "min called on empty list"), ("[].max()", "max called on empty list")]);
    }
}
