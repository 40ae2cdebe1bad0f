//! The Kubernetes regex library: `s.find(re)` (the first match, or `""`) and `s.findAll(re)` /
//! `s.findAll(re, n)` (all matches, at most `n` when `n` is not negative). Patterns are RE2 syntax,
//! which the `regex` crate implements.

use cel::common::types::{INT_TYPE, STRING_TYPE};
use cel::common::value::CowVal;
use cel::{DeclarationError, ExecutionError};

use super::{Registry, fail, int_arg, string, string_arg, string_list, take};

pub(super) fn register(reg: &mut Registry<'_>) -> Result<(), DeclarationError> {
    reg.member("find", STRING_TYPE, vec![STRING_TYPE], find)?;
    reg.member("findAll", STRING_TYPE, vec![STRING_TYPE], find_all)?;
    reg.member("findAll", STRING_TYPE, vec![STRING_TYPE, INT_TYPE], find_all_n)?;
    Ok(())
}

fn compile(function: &str, pattern: &str) -> Result<regex::Regex, ExecutionError> {
    regex::Regex::new(pattern).map_err(|e| fail(function, e.to_string()))
}

fn find<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [s, re] = take(args)?;
    let re = compile("find", string_arg(re.as_ref())?)?;
    Ok(string(re.find(string_arg(s.as_ref())?).map(|m| m.as_str().to_string()).unwrap_or_default()))
}

fn matches_up_to(s: &str, re: &regex::Regex, limit: i64) -> Vec<String> {
    let all = re.find_iter(s).map(|m| m.as_str().to_string());
    if limit < 0 { all.collect() } else { all.take(limit as usize).collect() }
}

fn find_all<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [s, re] = take(args)?;
    let re = compile("findAll", string_arg(re.as_ref())?)?;
    Ok(string_list(matches_up_to(string_arg(s.as_ref())?, &re, -1)))
}

fn find_all_n<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [s, re, n] = take(args)?;
    let re = compile("findAll", string_arg(re.as_ref())?)?;
    Ok(string_list(matches_up_to(string_arg(s.as_ref())?, &re, int_arg(n.as_ref())?)))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_err, assert_true};

    #[test]
    fn find_and_find_all_return_matches() {
        assert_true(&[
            "'abc 123'.find('[0-9]+') == '123'",
            "'abc'.find('[0-9]+') == ''",
            "'1 2 3'.findAll('[0-9]') == ['1', '2', '3']",
            "'1 2 3'.findAll('[0-9]', 2) == ['1', '2']",
            "'1 2 3'.findAll('[0-9]', -1) == ['1', '2', '3']",
        ]);
        assert_err(&[("'a'.find('(')", "find")]);
    }
}
