//! Label selectors: the string syntax of `?labelSelector=` and the `metav1.LabelSelector` struct.
//!
//! Grammar and semantics follow apimachinery `pkg/labels`: comma-separated requirements, each
//! `key`, `!key`, `key=v`, `key==v`, `key!=v`, `key in (a,b)`, `key notin (a,b)`, `key>n`, `key<n`.
//! `!=` and `notin` match objects that lack the key. An empty selector matches everything.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::validation::names::{is_qualified_name, is_valid_label_value};

/// A label selector operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operator {
    /// `key=value` / `key==value`.
    Equals,
    /// `key!=value`.
    NotEquals,
    /// `key in (…)`.
    In,
    /// `key notin (…)`.
    NotIn,
    /// `key`.
    Exists,
    /// `!key`.
    DoesNotExist,
    /// `key>n` (integers only).
    GreaterThan,
    /// `key<n` (integers only).
    LessThan,
}

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Requirement {
    /// The label key.
    pub key: String,
    /// The operator.
    pub op: Operator,
    /// The values (one for `=`/`!=`/`>`/`<`, several for `in`/`notin`, none for existence).
    pub values: BTreeSet<String>,
}

impl Requirement {
    /// Whether `labels` satisfies this requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        match self.op {
            Operator::Equals | Operator::In => value.is_some_and(|v| self.values.contains(v)),
            Operator::NotEquals | Operator::NotIn => value.is_none_or(|v| !self.values.contains(v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let Some(actual) = value.and_then(|v| v.parse::<i64>().ok()) else { return false };
                let Some(bound) = self.values.iter().next().and_then(|v| v.parse::<i64>().ok()) else {
                    return false;
                };
                if self.op == Operator::GreaterThan { actual > bound } else { actual < bound }
            }
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let one = || self.values.iter().next().cloned().unwrap_or_default();
        let set = || self.values.iter().cloned().collect::<Vec<_>>().join(",");
        match self.op {
            Operator::Equals => write!(f, "{}={}", self.key, one()),
            Operator::NotEquals => write!(f, "{}!={}", self.key, one()),
            Operator::In => write!(f, "{} in ({})", self.key, set()),
            Operator::NotIn => write!(f, "{} notin ({})", self.key, set()),
            Operator::Exists => write!(f, "{}", self.key),
            Operator::DoesNotExist => write!(f, "!{}", self.key),
            Operator::GreaterThan => write!(f, "{}>{}", self.key, one()),
            Operator::LessThan => write!(f, "{}<{}", self.key, one()),
        }
    }
}

/// A parsed label selector: all requirements must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct LabelSelectorExpr {
    /// The requirements, all of which must match.
    pub requirements: Vec<Requirement>,
    /// Set when the selector can match nothing (a `LabelSelector` that is nil, as upstream treats it).
    pub match_nothing: bool,
}

/// A label selector that failed to parse or validate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LabelSelectorError(pub String);

impl LabelSelectorExpr {
    /// A selector matching everything.
    pub fn everything() -> Self {
        Self::default()
    }

    /// A selector matching nothing.
    pub fn nothing() -> Self {
        Self { requirements: Vec::new(), match_nothing: true }
    }

    /// Whether this selector matches everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty() && !self.match_nothing
    }

    /// Whether `labels` satisfies every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        !self.match_nothing && self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Parses the query-string syntax.
    pub fn parse(input: &str) -> Result<Self, LabelSelectorError> {
        let tokens = lex(input)?;
        let mut p = Parser { tokens, pos: 0 };
        let mut requirements = Vec::new();
        if p.peek().is_none() {
            return Ok(Self::default());
        }
        loop {
            requirements.push(p.requirement()?);
            match p.next() {
                None => break,
                Some(Token::Comma) => continue,
                Some(t) => {
                    return Err(LabelSelectorError(format!("found '{t}', expected: ',' or 'end of string'")));
                }
            }
        }
        for r in &requirements {
            validate_requirement(r)?;
        }
        Ok(Self { requirements, match_nothing: false })
    }

    /// Converts a `metav1.LabelSelector` (`None` matches nothing, `{}` matches everything).
    pub fn from_label_selector(sel: Option<&LabelSelector>) -> Result<Self, LabelSelectorError> {
        let Some(sel) = sel else { return Ok(Self::nothing()) };
        let mut requirements = Vec::new();
        for (k, v) in sel.match_labels.iter().flatten() {
            requirements.push(Requirement { key: k.clone(), op: Operator::Equals, values: [v.clone()].into() });
        }
        for expr in sel.match_expressions.iter().flatten() {
            let values: BTreeSet<String> = expr.values.iter().flatten().cloned().collect();
            let op = match expr.operator.as_str() {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => return Err(LabelSelectorError(format!("{other:?} is not a valid label selector operator"))),
            };
            match op {
                Operator::In | Operator::NotIn if values.is_empty() => {
                    return Err(LabelSelectorError(
                        "for 'in', 'notin' operators, values set can't be empty".to_string(),
                    ));
                }
                Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
                    return Err(LabelSelectorError(
                        "values set must be empty for exists and does not exist".to_string(),
                    ));
                }
                _ => {}
            }
            requirements.push(Requirement { key: expr.key.clone(), op, values });
        }
        for r in &requirements {
            validate_requirement(r)?;
        }
        Ok(Self { requirements, match_nothing: false })
    }
}

impl fmt::Display for LabelSelectorExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.requirements.iter().map(|r| r.to_string()).collect();
        f.write_str(&parts.join(","))
    }
}

fn validate_requirement(r: &Requirement) -> Result<(), LabelSelectorError> {
    if let Some(e) = is_qualified_name(&r.key).into_iter().next() {
        return Err(LabelSelectorError(format!("unable to parse requirement: key: Invalid value: {:?}: {e}", r.key)));
    }
    match r.op {
        Operator::GreaterThan | Operator::LessThan => {
            for v in &r.values {
                if v.parse::<i64>().is_err() {
                    return Err(LabelSelectorError(format!(
                        "unable to parse requirement: values[0]: Invalid value: {v:?}: for 'Gt', 'Lt' operators, the value must be an integer"
                    )));
                }
            }
        }
        _ => {
            for v in &r.values {
                if let Some(e) = is_valid_label_value(v).into_iter().next() {
                    return Err(LabelSelectorError(format!(
                        "unable to parse requirement: values[0][{}]: Invalid value: {v:?}: {e}",
                        r.key
                    )));
                }
            }
        }
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    Comma,
    Open,
    Close,
    Eq,
    DoubleEq,
    NotEq,
    Bang,
    Gt,
    Lt,
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Ident(s) => f.write_str(s),
            Token::Comma => f.write_str(","),
            Token::Open => f.write_str("("),
            Token::Close => f.write_str(")"),
            Token::Eq => f.write_str("="),
            Token::DoubleEq => f.write_str("=="),
            Token::NotEq => f.write_str("!="),
            Token::Bang => f.write_str("!"),
            Token::Gt => f.write_str(">"),
            Token::Lt => f.write_str("<"),
        }
    }
}

fn is_special(c: char) -> bool {
    matches!(c, ',' | '(' | ')' | '=' | '!' | '<' | '>')
}

fn lex(input: &str) -> Result<Vec<Token>, LabelSelectorError> {
    let mut out = Vec::new();
    let mut chars = input.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        if is_special(c) {
            chars.next();
            let tok = match c {
                ',' => Token::Comma,
                '(' => Token::Open,
                ')' => Token::Close,
                '<' => Token::Lt,
                '>' => Token::Gt,
                '=' => {
                    if chars.peek() == Some(&'=') {
                        chars.next();
                        Token::DoubleEq
                    } else {
                        Token::Eq
                    }
                }
                _ => {
                    if chars.peek() == Some(&'=') {
                        chars.next();
                        Token::NotEq
                    } else {
                        Token::Bang
                    }
                }
            };
            out.push(tok);
            continue;
        }
        let mut ident = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() || is_special(c) {
                break;
            }
            ident.push(c);
            chars.next();
        }
        out.push(Token::Ident(ident));
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn requirement(&mut self) -> Result<Requirement, LabelSelectorError> {
        let negated = if self.peek() == Some(&Token::Bang) {
            self.pos += 1;
            true
        } else {
            false
        };
        let key = match self.next() {
            Some(Token::Ident(k)) => k,
            Some(t) => return Err(LabelSelectorError(format!("found '{t}', expected: identifier"))),
            None => return Err(LabelSelectorError("found '', expected: identifier".to_string())),
        };
        if negated {
            return Ok(Requirement { key, op: Operator::DoesNotExist, values: BTreeSet::new() });
        }
        let op = match self.peek() {
            None | Some(Token::Comma) => {
                return Ok(Requirement { key, op: Operator::Exists, values: BTreeSet::new() });
            }
            Some(Token::Eq) | Some(Token::DoubleEq) => Operator::Equals,
            Some(Token::NotEq) => Operator::NotEquals,
            Some(Token::Gt) => Operator::GreaterThan,
            Some(Token::Lt) => Operator::LessThan,
            Some(Token::Ident(s)) if s == "in" => Operator::In,
            Some(Token::Ident(s)) if s == "notin" => Operator::NotIn,
            Some(t) => {
                return Err(LabelSelectorError(format!("found '{t}', expected: in, notin, =, ==, !=, gt, lt")));
            }
        };
        self.pos += 1;
        let values = match op {
            Operator::In | Operator::NotIn => self.value_set()?,
            _ => {
                let v = match self.peek() {
                    Some(Token::Ident(v)) => {
                        let v = v.clone();
                        self.pos += 1;
                        v
                    }
                    None | Some(Token::Comma) => String::new(),
                    Some(t) => return Err(LabelSelectorError(format!("found '{t}', expected: identifier"))),
                };
                [v].into()
            }
        };
        Ok(Requirement { key, op, values })
    }

    fn value_set(&mut self) -> Result<BTreeSet<String>, LabelSelectorError> {
        match self.next() {
            Some(Token::Open) => {}
            Some(t) => return Err(LabelSelectorError(format!("found '{t}', expected: '('"))),
            None => return Err(LabelSelectorError("found '', expected: '('".to_string())),
        }
        let mut values = BTreeSet::new();
        let mut expect_value = true;
        loop {
            match self.next() {
                Some(Token::Ident(v)) if expect_value => {
                    values.insert(v);
                    expect_value = false;
                }
                Some(Token::Comma) => {
                    if expect_value {
                        values.insert(String::new());
                    }
                    expect_value = true;
                }
                Some(Token::Close) => {
                    if expect_value && !values.is_empty() {
                        values.insert(String::new());
                    }
                    return Ok(values);
                }
                Some(t) => return Err(LabelSelectorError(format!("found '{t}', expected: ',', ')' or identifier"))),
                None => return Err(LabelSelectorError("found '', expected: ')'".to_string())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn table_of_selectors() {
        let l = labels(&[("app", "web"), ("tier", "front"), ("n", "5")]);
        let cases: &[(&str, bool)] = &[
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app=db", false),
            ("app!=db", true),
            ("app!=web", false),
            ("missing!=x", true),
            ("app in (web, db)", true),
            ("app in (db)", false),
            ("app notin (db)", true),
            ("missing notin (db)", true),
            ("app notin (web)", false),
            ("app", true),
            ("missing", false),
            ("!missing", true),
            ("!app", false),
            ("app=web,tier=front", true),
            ("app=web, tier=back", false),
            ("n>4", true),
            ("n>5", false),
            ("n<6", true),
            ("missing>1", false),
        ];
        for (sel, want) in cases {
            let s = LabelSelectorExpr::parse(sel).unwrap_or_else(|e| panic!("{sel}: {e}"));
            assert_eq!(s.matches(&l), *want, "selector {sel:?}");
        }
    }

    #[test]
    fn rejects_malformed_selectors() {
        for bad in ["app=web=x", "app in web", "app in (web", "=x", "a b", "bad key=x", "a=b c", "n>x", "a=-x-"] {
            assert!(LabelSelectorExpr::parse(bad).is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn empty_value_is_allowed() {
        let s = LabelSelectorExpr::parse("app=").expect("parses");
        assert!(s.matches(&labels(&[("app", "")])));
        assert!(!s.matches(&labels(&[("app", "x")])));
    }

    #[test]
    fn label_selector_struct_semantics() {
        assert!(!LabelSelectorExpr::from_label_selector(None).expect("nil").matches(&BTreeMap::new()));
        let empty = LabelSelector::default();
        assert!(LabelSelectorExpr::from_label_selector(Some(&empty)).expect("{}").matches(&BTreeMap::new()));
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(s in ".{0,64}") {
            let _ = LabelSelectorExpr::parse(&s);
        }

        #[test]
        fn display_round_trips(k in "[a-z][a-z0-9]{0,8}", v in "[a-z0-9]{1,8}") {
            let s = LabelSelectorExpr::parse(&format!("{k}={v},{k}2 notin ({v},x),!{k}3")).expect("valid");
            let again = LabelSelectorExpr::parse(&s.to_string()).expect("display parses");
            proptest::prop_assert_eq!(s, again);
        }
    }
}
