//! The Kubernetes CEL libraries registered on top of cel-rust's standard library and strings
//! extension: `lists` (isSorted, sum, min, max, indexOf, lastIndexOf), `regex` (find, findAll),
//! `quantity`, `urls`, `net` (ip and cidr), `format` and `sets`.
//!
//! Each submodule registers its overloads through [`Registry`], which also records every function
//! name so the static checker (`super::check`) knows which calls exist. The helpers here convert
//! between `dyn Val` arguments and Rust values. What upstream has and these libraries lack is
//! listed in the module doc of `crd::cel`.

mod format;
mod lists;
mod net;
mod quantity;
mod regex;
mod sets;
mod urls;

use std::collections::BTreeSet;

use cel::common::functions::Function;
use cel::common::types::{CelBool, CelDouble, CelInt, CelList, CelString, Type};
use cel::common::value::{CowVal, Val};
use cel::{DeclarationError, Env, ExecutionError};

/// Registers overloads on an [`Env`] and remembers the names it declared.
pub(crate) struct Registry<'a> {
    env: &'a mut Env,
    names: &'a mut BTreeSet<String>,
}

impl<'a> Registry<'a> {
    /// A registry adding to `env` and recording into `names`.
    pub(crate) fn new(env: &'a mut Env, names: &'a mut BTreeSet<String>) -> Self {
        Self { env, names }
    }

    /// Declares the global function `name(args…)`.
    pub(crate) fn global(&mut self, name: &str, args: Vec<Type>, op: Function) -> Result<(), DeclarationError> {
        let id = format!("k8s_{name}_{}", signature(&args));
        self.names.insert(name.to_string());
        self.env.add_overload(name, &id, args, op)
    }

    /// Declares the member function `target.name(args…)`.
    pub(crate) fn member(
        &mut self,
        name: &str,
        target: Type,
        args: Vec<Type>,
        op: Function,
    ) -> Result<(), DeclarationError> {
        let id = format!("k8s_{}_{name}_{}", target.name(), signature(&args));
        self.names.insert(name.to_string());
        self.env.add_member_overload(name, &id, target, args, op)
    }
}

fn signature(args: &[Type]) -> String {
    args.iter().map(|t| t.name().to_string()).collect::<Vec<_>>().join("_")
}

/// Registers every Kubernetes library.
pub(crate) fn register(reg: &mut Registry<'_>) -> Result<(), DeclarationError> {
    lists::register(reg)?;
    regex::register(reg)?;
    quantity::register(reg)?;
    urls::register(reg)?;
    net::register(reg)?;
    format::register(reg)?;
    sets::register(reg)?;
    Ok(())
}

/// `args` as exactly `N` arguments.
fn take<'b, 'v, const N: usize>(args: Vec<CowVal<'b, 'v>>) -> Result<[CowVal<'b, 'v>; N], ExecutionError> {
    args.try_into().map_err(|args: Vec<_>| ExecutionError::invalid_argument_count(N, args.len()))
}

fn unexpected(v: &dyn Val, want: &str) -> ExecutionError {
    ExecutionError::UnexpectedType { got: v.get_type().name().to_string(), want: want.to_string() }
}

/// A string argument.
fn string_arg(v: &dyn Val) -> Result<&str, ExecutionError> {
    v.downcast_ref::<CelString>().map(|s| s.inner()).ok_or_else(|| unexpected(v, "string"))
}

/// An int argument.
fn int_arg(v: &dyn Val) -> Result<i64, ExecutionError> {
    v.downcast_ref::<CelInt>().map(|i| *i.inner()).ok_or_else(|| unexpected(v, "int"))
}

/// The elements of a list argument.
fn list_arg<'b, 'v>(v: &'b (dyn Val + 'v)) -> Result<Vec<&'b (dyn Val + 'v)>, ExecutionError> {
    let iterable = v.as_iterable().ok_or_else(|| unexpected(v, "list"))?;
    let mut items = iterable.iter();
    let mut out = Vec::new();
    while let Some(item) = items.next() {
        out.push(item);
    }
    Ok(out)
}

/// A value of one of this library's own types.
fn own_arg<'a, T: cel::common::value::StaticVal>(v: &'a dyn Val, want: &str) -> Result<&'a T, ExecutionError> {
    v.downcast_ref::<T>().ok_or_else(|| unexpected(v, want))
}

fn boolean<'b, 'v>(b: bool) -> CowVal<'b, 'v> {
    CowVal::owned(CelBool::from(b))
}

fn int<'b, 'v>(i: i64) -> CowVal<'b, 'v> {
    CowVal::owned(CelInt::from(i))
}

fn double<'b, 'v>(f: f64) -> CowVal<'b, 'v> {
    CowVal::owned(CelDouble::from(f))
}

fn string<'b, 'v>(s: String) -> CowVal<'b, 'v> {
    CowVal::owned(CelString::from(s))
}

fn string_list<'b, 'v>(items: Vec<String>) -> CowVal<'b, 'v> {
    let items: Vec<Box<dyn Val + 'v>> =
        items.into_iter().map(|s| Box::new(CelString::from(s)) as Box<dyn Val + 'v>).collect();
    CowVal::owned(CelList::from(items))
}

/// A function error for `function`, worded as cel-go words it.
fn fail(function: &str, message: impl Into<String>) -> ExecutionError {
    ExecutionError::function_error(function, message.into())
}

/// Implements `Val` for a `'static` library type whose values are equal when `PartialEq` says
/// so.
macro_rules! library_type {
    ($ty:ident, $static:ident, $name:literal) => {
        /// The CEL type of the values.
        pub(crate) const $static: cel::common::types::Type = cel::common::types::Type::new_unspecified_type($name);

        impl cel::common::value::Val for $ty {
            fn get_type(&self) -> &cel::common::types::Type {
                <Self as cel::common::value::Val>::cel_type()
            }
            fn cel_type() -> &'static cel::common::types::Type {
                static TYPE: cel::common::types::Type = $static;
                &TYPE
            }
            fn equals(&self, other: &dyn cel::common::value::Val) -> bool {
                other.downcast_ref::<$ty>().is_some_and(|o| o == self)
            }
            fn clone_as_boxed<'v>(&self) -> Box<dyn cel::common::value::Val + 'v> {
                Box::new(self.clone())
            }
            fn as_any(&self) -> Option<&dyn std::any::Any> {
                Some(self)
            }
        }

        impl cel::common::value::StaticVal for $ty {}
    };
}
use library_type;

#[cfg(test)]
pub(crate) mod testing {
    //! Evaluating expressions against the full environment, for the library tests.

    use cel::{Context, Value};

    /// Evaluates `expr` with no variables.
    pub(crate) fn eval(expr: &str) -> Result<Value, String> {
        let env = super::super::env::shared();
        let program = env.compile(expr).map_err(|e| e.to_string())?;
        let ctx = Context::with_env(env.clone());
        program.execute(&ctx).map_err(|e| e.to_string())
    }

    /// Asserts that every expression evaluates to `true`.
    pub(crate) fn assert_true(exprs: &[&str]) {
        for e in exprs {
            assert_eq!(eval(e), Ok(Value::Bool(true)), "{e}");
        }
    }

    /// Asserts that every expression fails with an error containing the given text.
    pub(crate) fn assert_err(cases: &[(&str, &str)]) {
        for (e, want) in cases {
            match eval(e) {
                Err(msg) => assert!(msg.contains(want), "{e}: {msg}"),
                Ok(v) => panic!("{e}: expected an error, got {v:?}"),
            }
        }
    }
}
