//! The Kubernetes quantity library: `quantity(s)`, `isQuantity(s)` and, on quantities, `sign()`,
//! `isGreaterThan(q)`, `isLessThan(q)`, `compareTo(q)`, `add(q|int)`, `sub(q|int)`,
//! `asInteger()`, `isInteger()` and `asApproximateFloat()`. Values are [`crate::quantity::Quantity`]
//! (exact to 10⁻⁹); two quantities are equal when they denote the same amount (`1` and `1000m`).

use cel::common::types::{INT_TYPE, STRING_TYPE};
use cel::common::value::{CowVal, Val};
use cel::{DeclarationError, ExecutionError};

use super::{Registry, boolean, double, fail, int, int_arg, library_type, own_arg, string_arg, take};
use crate::quantity::Quantity;

/// A quantity as a CEL value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CelQuantity(Quantity);

library_type!(CelQuantity, QUANTITY_TYPE, "kubernetes.Quantity");

const NANO: i128 = 1_000_000_000;

pub(super) fn register(reg: &mut Registry<'_>) -> Result<(), DeclarationError> {
    reg.global("quantity", vec![STRING_TYPE], parse)?;
    reg.global("isQuantity", vec![STRING_TYPE], is_quantity)?;
    reg.member("sign", QUANTITY_TYPE, vec![], sign)?;
    reg.member("isGreaterThan", QUANTITY_TYPE, vec![QUANTITY_TYPE], greater)?;
    reg.member("isLessThan", QUANTITY_TYPE, vec![QUANTITY_TYPE], less)?;
    reg.member("compareTo", QUANTITY_TYPE, vec![QUANTITY_TYPE], compare_to)?;
    reg.member("add", QUANTITY_TYPE, vec![QUANTITY_TYPE], add)?;
    reg.member("add", QUANTITY_TYPE, vec![INT_TYPE], add)?;
    reg.member("sub", QUANTITY_TYPE, vec![QUANTITY_TYPE], sub)?;
    reg.member("sub", QUANTITY_TYPE, vec![INT_TYPE], sub)?;
    reg.member("asInteger", QUANTITY_TYPE, vec![], as_integer)?;
    reg.member("isInteger", QUANTITY_TYPE, vec![], is_integer)?;
    reg.member("asApproximateFloat", QUANTITY_TYPE, vec![], as_float)?;
    Ok(())
}

fn quantity(v: &dyn Val) -> Result<Quantity, ExecutionError> {
    Ok(own_arg::<CelQuantity>(v, "kubernetes.Quantity")?.0)
}

/// A quantity or an int (whole units), for `add` and `sub`.
fn operand(v: &dyn Val) -> Result<Quantity, ExecutionError> {
    match int_arg(v) {
        Ok(i) => Ok(Quantity::from_units(i)),
        Err(_) => quantity(v),
    }
}

fn owned<'b, 'v>(q: Quantity) -> CowVal<'b, 'v> {
    CowVal::owned(CelQuantity(q))
}

fn parse<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [s] = take(args)?;
    Quantity::parse(string_arg(s.as_ref())?).map(owned).map_err(|e| fail("quantity", e.to_string()))
}

fn is_quantity<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [s] = take(args)?;
    Ok(boolean(Quantity::parse(string_arg(s.as_ref())?).is_ok()))
}

fn sign<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [q] = take(args)?;
    Ok(int(quantity(q.as_ref())?.nanos().signum() as i64))
}

fn pair<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<(Quantity, Quantity), ExecutionError> {
    let [a, b] = take(args)?;
    Ok((quantity(a.as_ref())?, quantity(b.as_ref())?))
}

fn greater<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let (a, b) = pair(args)?;
    Ok(boolean(a > b))
}

fn less<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let (a, b) = pair(args)?;
    Ok(boolean(a < b))
}

fn compare_to<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let (a, b) = pair(args)?;
    Ok(int(a.cmp(&b) as i64))
}

fn add<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [a, b] = take(args)?;
    Ok(owned(quantity(a.as_ref())?.add(operand(b.as_ref())?)))
}

fn sub<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [a, b] = take(args)?;
    Ok(owned(quantity(a.as_ref())?.sub(operand(b.as_ref())?)))
}

/// The quantity as an `i64`, when it is a whole number that fits.
fn whole(q: Quantity) -> Option<i64> {
    (q.nanos() % NANO == 0).then(|| i64::try_from(q.nanos() / NANO).ok()).flatten()
}

fn as_integer<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [q] = take(args)?;
    whole(quantity(q.as_ref())?).map(int).ok_or_else(|| fail("asInteger", "cannot convert value to integer"))
}

fn is_integer<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [q] = take(args)?;
    Ok(boolean(whole(quantity(q.as_ref())?).is_some()))
}

fn as_float<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [q] = take(args)?;
    Ok(double(quantity(q.as_ref())?.nanos() as f64 / NANO as f64))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_err, assert_true};

    #[test]
    fn quantities_compare_convert_and_add() {
        assert_true(&[
            "quantity('1Gi').isGreaterThan(quantity('1G'))",
            "quantity('500m').isLessThan(quantity('1'))",
            "quantity('1') == quantity('1000m')",
            "quantity('2').compareTo(quantity('1')) == 1",
            "quantity('1').compareTo(quantity('1000m')) == 0",
            "quantity('1').compareTo(quantity('2')) == -1",
            "quantity('1Ki').asInteger() == 1024",
            "quantity('1.5').isInteger() == false",
            "quantity('1.5').asApproximateFloat() == 1.5",
            "quantity('-3').sign() == -1",
            "quantity('0').sign() == 0",
            "quantity('1').add(quantity('500m')) == quantity('1500m')",
            "quantity('1').add(2) == quantity('3')",
            "quantity('1').sub(quantity('1')).sign() == 0",
            "isQuantity('1.5Gi')",
            "!isQuantity('one')",
        ]);
        assert_err(&[("quantity('x')", "quantities must match"), ("quantity('1.5').asInteger()", "cannot convert")]);
    }
}
