//! The runtime cost guard for CEL rules.
//!
//! Upstream estimates every rule's worst-case cost when a CRD is written and meters evaluation in
//! cost units (a per-rule limit of 1,000,000 and a per-object budget of 10,000,000). cel-rust has
//! neither, so skiff meters evaluation itself: [`instrument`] rewrites a compiled expression so
//! that every function call's result and every comprehension's range passes through the hidden
//! function `@cost` (which CEL source cannot name). `@cost` charges one unit plus the size of the
//! value (list and map entries, a tenth of a string's or bytes' length) to the [`Meter`] of the
//! running evaluation and fails once the rule's limit or the object's budget is spent, or once the
//! object's wall-clock deadline has passed. A nested loop over a large list therefore stops after
//! about a million iterations instead of hanging the API server.
//!
//! The meter lives in a thread-local while [`Meter::run`] evaluates one expression; evaluation is
//! synchronous, so nothing else runs on the thread meanwhile.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use cel::ExecutionError;
use cel::common::ast::{CallExpr, Expr, IdedExpr, operators};
use cel::common::types::{CelBytes, CelString};
use cel::common::value::{CowVal, Val};

/// The hidden function every metered value passes through.
pub(crate) const COST_FUNCTION: &str = "@cost";
/// Cost units one rule (or message expression) may spend (upstream's `PerCallLimit`).
pub(crate) const PER_CALL_LIMIT: u64 = 1_000_000;
/// Cost units all the rules of one object may spend (upstream's `RuntimeCELCostBudget`).
pub(crate) const PER_OBJECT_BUDGET: u64 = 10_000_000;
/// Wall-clock time all the rules of one object may take.
pub(crate) const PER_OBJECT_TIME: Duration = Duration::from_secs(2);
/// The error `@cost` fails with, worded as cel-go's.
pub(crate) const LIMIT_EXCEEDED: &str = "operation cancelled: actual cost limit exceeded";

/// Why an evaluation was stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exhausted {
    /// The rule spent more than [`PER_CALL_LIMIT`].
    CallLimit,
    /// The object's budget (units or time) is spent.
    Budget,
}

struct Active {
    call_left: u64,
    total_left: u64,
    deadline: Instant,
    exhausted: Option<Exhausted>,
}

thread_local! {
    static ACTIVE: RefCell<Option<Active>> = const { RefCell::new(None) };
}

/// The budget of one object's validation.
#[derive(Debug)]
pub(crate) struct Meter {
    total_left: u64,
    deadline: Instant,
}

impl Meter {
    /// A fresh budget for one object.
    pub(crate) fn new() -> Self {
        Self::with(PER_OBJECT_BUDGET, PER_OBJECT_TIME)
    }

    /// A budget of `units` and `time` (tests use small ones).
    pub(crate) fn with(units: u64, time: Duration) -> Self {
        Self { total_left: units, deadline: Instant::now() + time }
    }

    /// Whether the object's budget is already spent.
    pub(crate) fn spent(&self) -> bool {
        self.total_left == 0 || Instant::now() >= self.deadline
    }

    /// Runs `f` (one evaluation) under the per-call limit, charging what it spends; reports
    /// whether a limit stopped it.
    pub(crate) fn run<T>(&mut self, f: impl FnOnce() -> T) -> (T, Option<Exhausted>) {
        let call = PER_CALL_LIMIT.min(self.total_left);
        ACTIVE.with(|a| {
            *a.borrow_mut() =
                Some(Active { call_left: call, total_left: self.total_left, deadline: self.deadline, exhausted: None })
        });
        let out = f();
        let active = ACTIVE.with(|a| a.borrow_mut().take());
        let mut exhausted = None;
        if let Some(active) = active {
            self.total_left = active.total_left;
            exhausted = active.exhausted;
        }
        (out, exhausted)
    }
}

/// The units a value costs: one, plus its size.
fn units(v: &dyn Val) -> u64 {
    let size = if let Some(s) = v.downcast_ref::<CelString>() {
        s.inner().len() as u64 / 10
    } else if let Some(b) = v.downcast_ref::<CelBytes>() {
        b.inner().len() as u64 / 10
    } else if let Some(sizer) = v.as_sizer() {
        u64::try_from(*sizer.size().inner()).unwrap_or(0)
    } else {
        0
    };
    1 + size
}

/// `@cost(x)`: charges `x` to the running evaluation's meter and returns it unchanged.
pub(crate) fn cost<'b, 'v>(mut args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let value = args.pop().ok_or_else(|| ExecutionError::invalid_argument_count(1, 0))?;
    let units = units(value.as_ref());
    let exceeded = ACTIVE.with(|a| {
        let mut a = a.borrow_mut();
        let Some(active) = a.as_mut() else { return false };
        if active.exhausted.is_some() {
            return true;
        }
        let spent = units.min(active.call_left).min(active.total_left);
        active.call_left -= spent;
        active.total_left -= spent;
        active.exhausted = if active.total_left == 0 || Instant::now() >= active.deadline {
            Some(Exhausted::Budget)
        } else if active.call_left == 0 {
            Some(Exhausted::CallLimit)
        } else {
            None
        };
        active.exhausted.is_some()
    });
    if exceeded {
        return Err(ExecutionError::function_error(COST_FUNCTION, LIMIT_EXCEEDED));
    }
    Ok(value)
}

fn wrap(e: IdedExpr) -> IdedExpr {
    if matches!(&e.expr, Expr::Call(c) if c.func_name == COST_FUNCTION) {
        return e;
    }
    IdedExpr { id: e.id, expr: Expr::Call(CallExpr { func_name: COST_FUNCTION.into(), target: None, args: vec![e] }) }
}

/// Rewrites `e` so that its calls and comprehension ranges are metered (see the module doc).
pub(crate) fn instrument(e: IdedExpr) -> IdedExpr {
    let is_call = matches!(e.expr, Expr::Call(_));
    let e = instrument_children(e);
    if is_call { wrap(e) } else { e }
}

/// Instruments what is below `e` but leaves `e` itself unwrapped.
fn instrument_children(e: IdedExpr) -> IdedExpr {
    let IdedExpr { id, expr } = e;
    let expr = match expr {
        Expr::Call(mut call) => {
            call.target = call.target.map(|t| Box::new(instrument(*t)));
            call.args = call.args.into_iter().map(instrument).collect();
            Expr::Call(call)
        }
        Expr::Select(mut select) => {
            select.operand = Box::new(instrument(*select.operand));
            Expr::Select(select)
        }
        Expr::List(mut list) => {
            list.elements = list.elements.into_iter().map(instrument).collect();
            Expr::List(list)
        }
        Expr::Map(mut map) => {
            for entry in &mut map.entries {
                if let cel::common::ast::EntryExpr::MapEntry(e) = &mut entry.expr {
                    e.key = instrument(std::mem::take(&mut e.key));
                    e.value = instrument(std::mem::take(&mut e.value));
                }
            }
            Expr::Map(map)
        }
        Expr::Comprehension(mut c) => {
            // The interpreter recognises the shapes of `loop_step`, `loop_cond` and `result`
            // (fast paths for `all`, `exists`, `map` and `filter`): keep their roots as they are.
            c.iter_range = wrap(instrument(std::mem::take(&mut c.iter_range)));
            c.accu_init = instrument(std::mem::take(&mut c.accu_init));
            c.loop_cond = instrument_children(std::mem::take(&mut c.loop_cond));
            c.loop_step = instrument_step(std::mem::take(&mut c.loop_step));
            c.result = instrument_children(std::mem::take(&mut c.result));
            Expr::Comprehension(c)
        }
        other => other,
    };
    IdedExpr { id, expr }
}

/// A loop step: its root, and the `accu + [x]` branch of a guarded `map`/`filter` step, stay
/// unwrapped.
fn instrument_step(e: IdedExpr) -> IdedExpr {
    match e.expr {
        Expr::Call(mut call) if call.func_name == operators::CONDITIONAL && call.args.len() == 3 => {
            let mut args = std::mem::take(&mut call.args).into_iter();
            let (cond, then, otherwise) = (args.next(), args.next(), args.next());
            call.args = [cond.map(instrument), then.map(instrument_children), otherwise.map(instrument)]
                .into_iter()
                .flatten()
                .collect();
            IdedExpr { id: e.id, expr: Expr::Call(call) }
        }
        expr => instrument_children(IdedExpr { id: e.id, expr }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cel::{Context, Value};

    fn run(expr: &str, meter: &mut Meter) -> (Result<Value, ExecutionError>, Option<Exhausted>) {
        let env = super::super::env::shared();
        let parsed = env.parser().parse(expr).expect("parses");
        let program = instrument(parsed);
        let ctx = Context::with_env(env.clone());
        meter.run(|| Value::resolve(&program, &ctx))
    }

    #[test]
    fn metered_programs_evaluate_as_before() {
        for (expr, want) in [
            ("[1, 2, 3].all(x, x > 0)", Value::Bool(true)),
            ("[1, 2, 3].exists(x, x > 2)", Value::Bool(true)),
            ("[1, 2, 3].map(x, x * 2) == [2, 4, 6]", Value::Bool(true)),
            ("[1, 2, 3].filter(x, x > 1).size() == 2", Value::Bool(true)),
            ("[1, 2, 3].map(x, x > 1, x) == [2, 3]", Value::Bool(true)),
            ("'abc'.startsWith('a') && size('abc') == 3", Value::Bool(true)),
            ("[0, 1].exists(x, 1 / x == 1)", Value::Bool(true)),
        ] {
            let (out, exhausted) = run(expr, &mut Meter::new());
            assert_eq!(out, Ok(want), "{expr}");
            assert_eq!(exhausted, None, "{expr}");
        }
    }

    #[test]
    fn a_nested_loop_over_a_large_list_is_stopped() {
        let started = Instant::now();
        let hostile = "lists_of(2000).all(x, lists_of(2000).all(y, lists_of(2000).all(z, true)))"
            .replace("lists_of(2000)", &format!("[{}]", vec!["0"; 2000].join(",")));
        let (out, exhausted) = run(&hostile, &mut Meter::new());
        assert!(out.is_err(), "{out:?}");
        // The per-rule limit, or in a slow (debug) build the deadline, whichever comes first.
        assert!(exhausted.is_some());
        assert!(started.elapsed() < Duration::from_secs(30));
        let mut small = Meter::with(5, Duration::from_secs(10));
        let (_, exhausted) = run("[1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map(x, [x, x, x, x, x]).size() > 0", &mut small);
        assert_eq!(exhausted, Some(Exhausted::Budget));
        assert!(small.spent());
    }
}
