//! Kubernetes label selectors (`kubectl get -l`): `k=v`, `k==v`, `k!=v`, `k in (a,b)`,
//! `k notin (a,b)`, `k`, `!k`, `k>5`, `k<5`, joined by commas, parsed into [`Requirements`].
//!
//! A selector's requirements are ANDed; [`Requirements::matches_labels`] then gives
//! Kubernetes' matching, where `!=` and `notin` also match objects without the label (unless
//! another requirement on the key needs it, as in `k,k!=v`).
//!
//! Grammar and validation are those of Kubernetes' `labels.Parse`, which the API server applies
//! to `?labelSelector=`: `in` and `notin` are operators only after a key, `k=` and `k in ()`
//! select the empty value, keys are qualified names and values label values (also for `>` and
//! `<`, whose value must be an integer besides).

use crate::error::{Error, Result};
use crate::requirements::{Operator, Requirement, Requirements};

/// Parses a label selector; the empty selector selects everything.
pub fn parse_label_selector(selector: &str) -> Result<Requirements> {
    let tokens = lex(selector);
    let mut parser = Parser {
        selector,
        tokens,
        pos: 0,
    };
    let mut out = Requirements::new();
    if parser.peek() == &Token::End {
        return Ok(out);
    }
    loop {
        let (key, requirement) = parser.requirement()?;
        out.add(&key, requirement);
        match parser.next() {
            Token::End => return Ok(out),
            Token::Comma => {}
            other => return Err(parser.error(format!("expected ',' or the end, found {other}"))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Not,
    Equals,
    DoubleEquals,
    NotEquals,
    Greater,
    Less,
    Open,
    Close,
    Comma,
    End,
}

impl std::fmt::Display for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Token::Word(w) => write!(f, "{w:?}"),
            Token::Not => f.write_str("'!'"),
            Token::Equals => f.write_str("'='"),
            Token::DoubleEquals => f.write_str("'=='"),
            Token::NotEquals => f.write_str("'!='"),
            Token::Greater => f.write_str("'>'"),
            Token::Less => f.write_str("'<'"),
            Token::Open => f.write_str("'('"),
            Token::Close => f.write_str("')'"),
            Token::Comma => f.write_str("','"),
            Token::End => f.write_str("the end"),
        }
    }
}

fn is_special(c: char) -> bool {
    matches!(c, '!' | '=' | '>' | '<' | '(' | ')' | ',')
}

fn lex(selector: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut chars = selector.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        let token = match c {
            c if c.is_whitespace() => continue,
            '!' if chars.next_if(|(_, n)| *n == '=').is_some() => Token::NotEquals,
            '!' => Token::Not,
            '=' if chars.next_if(|(_, n)| *n == '=').is_some() => Token::DoubleEquals,
            '=' => Token::Equals,
            '>' => Token::Greater,
            '<' => Token::Less,
            '(' => Token::Open,
            ')' => Token::Close,
            ',' => Token::Comma,
            _ => {
                let mut end = start + c.len_utf8();
                while let Some((i, n)) = chars.next_if(|(_, n)| !n.is_whitespace() && !is_special(*n)) {
                    end = i + n.len_utf8();
                }
                Token::Word(selector[start..end].to_string())
            }
        };
        tokens.push(token);
    }
    tokens.push(Token::End);
    tokens
}

struct Parser<'a> {
    selector: &'a str,
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        self.tokens.get(self.pos).unwrap_or(&Token::End)
    }

    fn next(&mut self) -> Token {
        let t = self.peek().clone();
        self.pos += 1;
        t
    }

    fn error(&self, reason: impl Into<String>) -> Error {
        Error::invalid("label selector", self.selector, reason)
    }

    fn requirement(&mut self) -> Result<(String, Requirement)> {
        if self.peek() == &Token::Not {
            self.next();
            let key = self.key()?;
            return Ok((key, Requirement::does_not_exist()));
        }
        let key = self.key()?;
        let (operator, values) = match self.peek().clone() {
            Token::Comma | Token::End => return Ok((key, Requirement::exists())),
            Token::Equals | Token::DoubleEquals => {
                self.next();
                (Operator::In, vec![self.value()?])
            }
            Token::NotEquals => {
                self.next();
                (Operator::NotIn, vec![self.value()?])
            }
            Token::Greater | Token::Less => {
                let op = if self.next() == Token::Greater {
                    Operator::Gt
                } else {
                    Operator::Lt
                };
                (op, vec![self.value()?])
            }
            Token::Word(w) if w == "in" || w == "notin" => {
                self.next();
                let op = if w == "in" { Operator::In } else { Operator::NotIn };
                (op, self.set()?)
            }
            other => {
                return Err(self.error(format!(
                    "expected an operator (=, ==, !=, in, notin, >, <) after {key:?}, found {other}"
                )));
            }
        };
        let requirement =
            Requirement::build(operator, values, &key).map_err(|e| self.error(e.to_string()))?;
        Ok((key, requirement))
    }

    fn key(&mut self) -> Result<String> {
        match self.next() {
            Token::Word(w) => {
                validate_label_key(&w).map_err(|reason| self.error(format!("key {w:?}: {reason}")))?;
                Ok(w)
            }
            other => Err(self.error(format!("expected a label key, found {other}"))),
        }
    }

    /// A value; absent (`k=`, `k=,…`) means the empty value, as in Kubernetes.
    fn value(&mut self) -> Result<String> {
        match self.peek().clone() {
            Token::Word(w) => {
                self.next();
                validate_label_value(&w).map_err(|reason| self.error(format!("value {w:?}: {reason}")))?;
                Ok(w)
            }
            Token::Comma | Token::End | Token::Close => Ok(String::new()),
            other => Err(self.error(format!("expected a value, found {other}"))),
        }
    }

    fn set(&mut self) -> Result<Vec<String>> {
        match self.next() {
            Token::Open => {}
            other => return Err(self.error(format!("expected '(' to open a set of values, found {other}"))),
        }
        let mut values = Vec::new();
        // `()` holds the empty value, as `k in (,)` does: Kubernetes reads it so.
        if self.peek() == &Token::Close {
            self.next();
            return Ok(vec![String::new()]);
        }
        loop {
            values.push(self.value()?);
            match self.next() {
                Token::Comma => {}
                Token::Close => return Ok(values),
                other => {
                    return Err(self.error(format!("expected ',' or ')' in a set of values, found {other}")));
                }
            }
        }
    }
}

/// A qualified name: an optional DNS subdomain prefix and `/`, then a name of up to 63
/// alphanumerics, `-`, `_` and `.`, starting and ending with an alphanumeric.
pub fn validate_label_key(key: &str) -> std::result::Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if prefix.len() > 253 || !prefix.split('.').all(label_ok) {
            return Err("the prefix must be a lowercase DNS subdomain".into());
        }
    }
    if name.is_empty() {
        return Err("the name part must not be empty".into());
    }
    validate_label_value(name)
}

/// A label value: empty, or up to 63 alphanumerics, `-`, `_` and `.`, starting and ending with
/// an alphanumeric.
pub fn validate_label_value(value: &str) -> std::result::Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    if value.len() > 63 {
        return Err("must be at most 63 characters".into());
    }
    let bytes = value.as_bytes();
    let edge_ok = |b: u8| b.is_ascii_alphanumeric();
    if !bytes
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        || !edge_ok(bytes[0])
        || !edge_ok(bytes[bytes.len() - 1])
    {
        return Err(
            "must be alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric".into(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn matches(selector: &str, pairs: &[(&str, &str)]) -> bool {
        parse_label_selector(selector)
            .unwrap_or_else(|e| panic!("{selector}: {e}"))
            .matches_labels(&labels(pairs))
    }

    #[test]
    fn equality_forms_select_by_value() {
        assert!(matches(
            "kubernetes.io/arch=arm64",
            &[("kubernetes.io/arch", "arm64")]
        ));
        assert!(matches(
            "kubernetes.io/arch==arm64",
            &[("kubernetes.io/arch", "arm64")]
        ));
        assert!(!matches(
            "kubernetes.io/arch=arm64",
            &[("kubernetes.io/arch", "amd64")]
        ));
        assert!(matches("a!=1", &[("a", "2")]));
        assert!(
            matches("a!=1", &[]),
            "!= matches a missing label, as in Kubernetes"
        );
        assert!(!matches("a!=1", &[("a", "1")]));
    }

    #[test]
    fn set_forms_select_by_membership() {
        assert!(matches("size in (large, xlarge)", &[("size", "xlarge")]));
        assert!(!matches("size in (large,xlarge)", &[("size", "2xlarge")]));
        assert!(matches("size notin (large,xlarge)", &[("size", "2xlarge")]));
        assert!(matches("size notin (large)", &[]));
    }

    #[test]
    fn existence_forms_select_by_presence() {
        assert!(matches("gpu", &[("gpu", "a100")]));
        assert!(!matches("gpu", &[]));
        assert!(matches("!gpu", &[]));
        assert!(!matches("!gpu", &[("gpu", "a100")]));
    }

    #[test]
    fn comparisons_select_integer_values() {
        assert!(matches("cpu>4", &[("cpu", "8")]));
        assert!(!matches("cpu>4", &[("cpu", "4")]));
        assert!(matches("cpu<4", &[("cpu", "2")]));
    }

    #[test]
    fn comma_separated_requirements_must_all_hold() {
        let sel = "kubernetes.io/arch=amd64, karpenter.k8s.aws/instance-cpu in (2,4),!gpu";
        assert!(matches(
            sel,
            &[
                ("kubernetes.io/arch", "amd64"),
                ("karpenter.k8s.aws/instance-cpu", "4")
            ]
        ));
        assert!(!matches(
            sel,
            &[
                ("kubernetes.io/arch", "amd64"),
                ("karpenter.k8s.aws/instance-cpu", "8")
            ]
        ));
        assert!(!matches("a=1,a=2", &[("a", "1")]));
    }

    #[test]
    fn empty_selector_selects_everything_and_empty_values_are_allowed() {
        assert!(parse_label_selector("  ").expect("empty").is_empty());
        assert!(matches("a=", &[("a", "")]));
        assert!(matches("a in (x,)", &[("a", "")]));
        assert!(matches("a in ()", &[("a", "")]));
        assert!(!matches("a in ()", &[("a", "x")]));
        assert!(matches("a notin ()", &[("a", "x")]));
    }

    #[test]
    fn each_requirement_on_one_key_is_checked_as_kubernetes_does() {
        // `a` needs the label, so `a!=1` beside it no longer lets a missing label through.
        assert!(!matches("a,a!=1", &[]));
        assert!(matches("a,a!=1", &[("a", "2")]));
        assert!(!matches("a>1,a!=5", &[]));
        assert!(matches("a>1,a!=5", &[("a", "3")]));
        assert!(!matches("a=1,a=2", &[]));
        assert!(matches("!a,a!=1", &[]));
    }

    #[test]
    fn keywords_are_keys_and_values_where_kubernetes_reads_them_so() {
        assert!(matches("in=notin", &[("in", "notin")]));
        assert!(matches("notin in (in)", &[("notin", "in")]));
        assert!(matches("x in (foo,,baz),y,z notin ()", &[("x", ""), ("y", "1")]));
    }

    #[test]
    fn malformed_selectors_are_clear_errors_naming_the_selector() {
        for (bad, expect) in [
            ("a in (x", "expected ',' or ')'"),
            ("a in x", "expected '('"),
            ("=x", "expected a label key"),
            ("a b", "expected an operator"),
            ("a=1 b=2", "expected ',' or the end"),
            ("!a=1", "expected ',' or the end"),
            ("a>-1", "alphanumeric"),
            ("a,", "expected a label key"),
            ("cpu>four", "integer"),
            ("Bad_Prefix.io/x=1", "prefix"),
            ("a=-x", "alphanumeric"),
            ("a==(x)", "expected a value"),
            ("!", "expected a label key"),
        ] {
            let err = parse_label_selector(bad).expect_err(bad).to_string();
            assert!(err.contains("label selector"), "{bad}: {err}");
            assert!(err.contains(expect), "{bad}: {err}");
            assert!(err.contains(&format!("{bad:?}")), "{bad}: {err}");
        }
    }
}
