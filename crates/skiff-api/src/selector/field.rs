//! Field selectors: `?fieldSelector=metadata.name=x,status.phase!=Running`.
//!
//! Grammar follows apimachinery `pkg/fields`: comma-separated terms `field=value`, `field==value`
//! or `field!=value`; `\`, `,` and `=` in values are escaped with a backslash. Which fields a
//! resource supports is decided by the catalogue, not here.

use std::fmt;

/// Operator of a field requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldOp {
    /// `=` or `==`.
    Equals,
    /// `!=`.
    NotEquals,
}

/// One `field op value` term.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldRequirement {
    /// Field path, e.g. `status.phase`.
    pub field: String,
    /// Operator.
    pub op: FieldOp,
    /// Value compared against the object's field (absent fields compare as "").
    pub value: String,
}

/// A parsed field selector: all terms must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct FieldSelectorExpr {
    /// The terms.
    pub requirements: Vec<FieldRequirement>,
}

/// A field selector that failed to parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FieldSelectorError(pub String);

impl FieldSelectorExpr {
    /// Parses the query-string syntax.
    pub fn parse(input: &str) -> Result<Self, FieldSelectorError> {
        let mut requirements = Vec::new();
        for term in split_unescaped(input, ',') {
            if term.is_empty() {
                continue;
            }
            let (field, op, raw) = if let Some(i) = find_unescaped(&term, "!=") {
                (&term[..i], FieldOp::NotEquals, &term[i + 2..])
            } else if let Some(i) = find_unescaped(&term, "==") {
                (&term[..i], FieldOp::Equals, &term[i + 2..])
            } else if let Some(i) = find_unescaped(&term, "=") {
                (&term[..i], FieldOp::Equals, &term[i + 1..])
            } else {
                return Err(FieldSelectorError(format!("invalid selector: '{input}'; can't understand '{term}'")));
            };
            let field = field.trim();
            if field.is_empty() {
                return Err(FieldSelectorError(format!("invalid selector: '{input}'; can't understand '{term}'")));
            }
            let value =
                unescape(raw).map_err(|e| FieldSelectorError(format!("invalid field selector value {raw:?}: {e}")))?;
            requirements.push(FieldRequirement { field: field.to_string(), op, value });
        }
        Ok(Self { requirements })
    }

    /// Whether this selector matches everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether the object's fields (looked up by `get`) satisfy every term.
    pub fn matches(&self, get: impl Fn(&str) -> Option<String>) -> bool {
        self.requirements.iter().all(|r| {
            let actual = get(&r.field).unwrap_or_default();
            match r.op {
                FieldOp::Equals => actual == r.value,
                FieldOp::NotEquals => actual != r.value,
            }
        })
    }

    /// The value required for `field` by an `=` term, if any (used to narrow scans).
    pub fn required_value(&self, field: &str) -> Option<&str> {
        self.requirements.iter().find(|r| r.field == field && r.op == FieldOp::Equals).map(|r| r.value.as_str())
    }
}

impl fmt::Display for FieldSelectorExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .requirements
            .iter()
            .map(|r| {
                let op = if r.op == FieldOp::Equals { "=" } else { "!=" };
                format!("{}{}{}", r.field, op, escape(&r.value))
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

fn split_unescaped(s: &str, sep: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            cur.push(c);
            escaped = false;
        } else if c == '\\' {
            cur.push(c);
            escaped = true;
        } else if c == sep {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    out.push(cur);
    out
}

fn find_unescaped(s: &str, needle: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if s[i..].starts_with(needle) {
            return Some(i);
        }
    }
    None
}

fn unescape(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(e @ ('\\' | ',' | '=')) => out.push(e),
                Some(e) => return Err(format!("invalid escape sequence \\{e}")),
                None => return Err("unterminated escape sequence".to_string()),
            }
        } else if c == ',' || c == '=' {
            return Err(format!("unescaped {c}"));
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace(',', "\\,").replace('=', "\\=")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(name: &str, phase: &str) -> impl Fn(&str) -> Option<String> {
        let (name, phase) = (name.to_string(), phase.to_string());
        move |f| match f {
            "metadata.name" => Some(name.clone()),
            "status.phase" => Some(phase.clone()),
            _ => None,
        }
    }

    #[test]
    fn parses_and_matches() {
        let s = FieldSelectorExpr::parse("metadata.name=web,status.phase!=Failed").expect("parses");
        assert!(s.matches(fields("web", "Running")));
        assert!(!s.matches(fields("web", "Failed")));
        assert!(!s.matches(fields("db", "Running")));
        let s = FieldSelectorExpr::parse("spec.nodeName==").expect("parses");
        assert!(s.matches(|_| None));
        assert_eq!(s.required_value("spec.nodeName"), Some(""));
    }

    #[test]
    fn escapes() {
        let s = FieldSelectorExpr::parse(r"metadata.name=a\,b\=c").expect("parses");
        assert_eq!(s.requirements[0].value, "a,b=c");
        assert_eq!(FieldSelectorExpr::parse(&s.to_string()).expect("round trip"), s);
        assert!(FieldSelectorExpr::parse("metadata.name").is_err());
        assert!(FieldSelectorExpr::parse(r"a=b\q").is_err());
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(s in ".{0,64}") {
            let _ = FieldSelectorExpr::parse(&s);
        }
    }
}
