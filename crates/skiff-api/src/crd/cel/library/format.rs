//! The Kubernetes format library: `format.<name>()` for `dns1123Label`, `dns1123Subdomain`,
//! `dns1035Label`, `qualifiedName`, the `…Prefix` variants, `labelValue`, `uri`, `uuid`, `byte`,
//! `date` and `datetime`; `format.named(name)` (an optional format); and `f.validate(s)`, which is
//! `optional.none()` for a valid string and an optional list of messages otherwise.

use base64::Engine;
use cel::common::types::{CelOptional, STRING_TYPE};
use cel::common::value::{CowVal, Val};
use cel::{DeclarationError, ExecutionError};

use super::{Registry, library_type, own_arg, string_arg, string_list, take};
use crate::validation::names;

/// A named string format.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Format(&'static str);

library_type!(Format, FORMAT_TYPE, "kubernetes.NamedFormat");

/// Declares the format names once: the `NAMES` list `format.named` looks up, and one
/// `format.<name>()` function per name.
macro_rules! formats {
    ($($name:literal),* $(,)?) => {
        const NAMES: &[&str] = &[$($name),*];

        fn register_named(reg: &mut Registry<'_>) -> Result<(), DeclarationError> {
            $( reg.global(concat!("format.", $name), vec![], |a| {
                take::<0>(a)?;
                Ok(CowVal::owned(Format($name)))
            })?; )*
            Ok(())
        }
    };
}

formats!(
    "dns1123Label",
    "dns1123Subdomain",
    "dns1035Label",
    "qualifiedName",
    "dns1123LabelPrefix",
    "dns1123SubdomainPrefix",
    "dns1035LabelPrefix",
    "labelValue",
    "uri",
    "uuid",
    "byte",
    "date",
    "datetime",
);

pub(super) fn register(reg: &mut Registry<'_>) -> Result<(), DeclarationError> {
    register_named(reg)?;
    reg.global("format.named", vec![STRING_TYPE], |a| {
        let [name] = take(a)?;
        let name = string_arg(name.as_ref())?;
        Ok(CowVal::owned(match NAMES.iter().find(|n| **n == name) {
            Some(n) => CelOptional::of(Box::new(Format(n))),
            None => CelOptional::none(),
        }))
    })?;
    reg.member("validate", FORMAT_TYPE, vec![STRING_TYPE], validate)?;
    Ok(())
}

/// Replaces a trailing dash so a `generateName` prefix can be checked as a name.
fn prefix(s: &str) -> String {
    match s.strip_suffix('-') {
        Some(rest) => format!("{rest}a"),
        None => s.to_string(),
    }
}

fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups.iter().zip([8, 4, 4, 4, 12]).all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

/// The messages explaining why `s` is not in `format`.
fn errors(format: &str, s: &str) -> Vec<String> {
    let single = |ok: bool, msg: &str| if ok { Vec::new() } else { vec![msg.to_string()] };
    match format {
        "dns1123Label" => names::is_dns1123_label(s),
        "dns1123Subdomain" => names::is_dns1123_subdomain(s),
        "dns1035Label" => names::is_dns1035_label(s),
        "qualifiedName" => names::is_qualified_name(s),
        "dns1123LabelPrefix" => names::is_dns1123_label(&prefix(s)),
        "dns1123SubdomainPrefix" => names::is_dns1123_subdomain(&prefix(s)),
        "dns1035LabelPrefix" => names::is_dns1035_label(&prefix(s)),
        "labelValue" => names::is_valid_label_value(s),
        "uri" => single(super::urls::Url::parse(s).is_ok(), "invalid URI"),
        "uuid" => single(is_uuid(s), "does not match the UUID format"),
        "byte" => single(base64::engine::general_purpose::STANDARD.decode(s).is_ok(), "invalid base64"),
        "date" => single(s.parse::<jiff::civil::Date>().is_ok(), "invalid date"),
        "datetime" => single(s.parse::<jiff::Timestamp>().is_ok(), "invalid datetime"),
        _ => Vec::new(),
    }
}

fn validate<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [format, s] = take(args)?;
    let format = own_arg::<Format>(format.as_ref(), "kubernetes.NamedFormat")?;
    let errs = errors(format.0, string_arg(s.as_ref())?);
    if errs.is_empty() {
        return Ok(CowVal::owned(CelOptional::none()));
    }
    let list = string_list(errs).into_owned();
    Ok(CowVal::owned(CelOptional::of(list as Box<dyn Val + 'v>)))
}

#[cfg(test)]
mod tests {
    use super::super::testing::assert_true;

    #[test]
    fn formats_validate_to_optional_errors() {
        assert_true(&[
            "!format.dns1123Label().validate('my-name').hasValue()",
            "format.dns1123Label().validate('My_Name').hasValue()",
            "format.dns1123Label().validate('My_Name').value().size() > 0",
            "!format.dns1123LabelPrefix().validate('prefix-').hasValue()",
            "!format.named('uuid').value().validate('123e4567-e89b-12d3-a456-426614174000').hasValue()",
            "!format.named('nope').hasValue()",
            "format.datetime().validate('yesterday').hasValue()",
            "!format.labelValue().validate('').hasValue()",
        ]);
    }
}
