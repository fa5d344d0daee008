//! Label selectors (query syntax and `metav1.LabelSelector` objects), node selector requirements,
//! and field selectors, with the real API server's semantics.

use serde_json::{Map, Value};

use crate::error::Error;
use crate::names;
use crate::registry::ResourceType;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Equals,
    NotEquals,
    In,
    NotIn,
    Exists,
    DoesNotExist,
    GreaterThan,
    LessThan,
}

/// One label requirement: `key op values`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Requirement {
    pub key: String,
    pub op: Op,
    pub values: Vec<String>,
}

impl Requirement {
    /// Matches as `labels.Requirement.Matches` does: negative operators match an absent label.
    pub fn matches(&self, labels: &Map<String, Value>) -> bool {
        let value = labels.get(&self.key).and_then(Value::as_str);
        match self.op {
            Op::Equals | Op::In => value.is_some_and(|v| self.values.iter().any(|x| x == v)),
            Op::NotEquals | Op::NotIn => value.is_none_or(|v| self.values.iter().all(|x| x != v)),
            Op::Exists => value.is_some(),
            Op::DoesNotExist => value.is_none(),
            Op::GreaterThan | Op::LessThan => {
                let (Some(have), Some(want)) = (
                    value.and_then(|v| v.parse::<i64>().ok()),
                    self.values.first().and_then(|v| v.parse::<i64>().ok()),
                ) else {
                    return false;
                };
                if self.op == Op::GreaterThan {
                    have > want
                } else {
                    have < want
                }
            }
        }
    }

    /// A `NodeSelectorRequirement` (node affinity), which also allows `Gt` and `Lt`.
    pub fn from_node_selector(expr: &Value) -> Result<Self, String> {
        let key = expr["key"].as_str().unwrap_or_default().to_string();
        let values = string_list(&expr["values"]);
        let op = match expr["operator"].as_str().unwrap_or_default() {
            "In" => Op::In,
            "NotIn" => Op::NotIn,
            "Exists" => Op::Exists,
            "DoesNotExist" => Op::DoesNotExist,
            "Gt" => Op::GreaterThan,
            "Lt" => Op::LessThan,
            other => return Err(format!("{other:?} is not a valid node selector operator")),
        };
        Ok(Requirement { key, op, values })
    }
}

fn string_list(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// A conjunction of label requirements; empty matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LabelSelector {
    requirements: Vec<Requirement>,
}

impl LabelSelector {
    pub fn matches(&self, labels: &Map<String, Value>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Parses the `labelSelector` query syntax: `a=b,c!=d,e in (f,g),h notin (i),j,!k,l>3`.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let tokens = lex(text);
        let mut parser = Parser { tokens, pos: 0 };
        let mut requirements = Vec::new();
        while !parser.at_end() {
            let requirement = parser.requirement().map_err(bad_label_selector)?;
            validate_requirement(&requirement).map_err(bad_label_selector)?;
            requirements.push(requirement);
            match parser.next() {
                None => break,
                Some(Token::Comma) if !parser.at_end() => {}
                Some(other) => {
                    return Err(bad_label_selector(format!(
                        "found '{}', expected: ',' or 'end of string'",
                        other.text()
                    )));
                }
            }
        }
        Ok(LabelSelector { requirements })
    }

    /// Converts a `metav1.LabelSelector` object (`matchLabels`, `matchExpressions`).
    pub fn from_object(selector: &Value) -> Result<Self, String> {
        let mut requirements = Vec::new();
        if let Some(labels) = selector["matchLabels"].as_object() {
            for (key, value) in labels {
                requirements.push(Requirement {
                    key: key.clone(),
                    op: Op::Equals,
                    values: vec![value.as_str().unwrap_or_default().to_string()],
                });
            }
        }
        for expr in selector["matchExpressions"].as_array().into_iter().flatten() {
            let key = expr["key"].as_str().unwrap_or_default().to_string();
            let values = string_list(&expr["values"]);
            let op = match expr["operator"].as_str().unwrap_or_default() {
                "In" => Op::In,
                "NotIn" => Op::NotIn,
                "Exists" => Op::Exists,
                "DoesNotExist" => Op::DoesNotExist,
                other => return Err(format!("{other:?} is not a valid label selector operator")),
            };
            let needs_values = matches!(op, Op::In | Op::NotIn);
            if needs_values == values.is_empty() {
                return Err(format!(
                    "values must be {} for operator {:?}",
                    if needs_values { "non-empty" } else { "empty" },
                    op
                ));
            }
            requirements.push(Requirement { key, op, values });
        }
        for requirement in &requirements {
            validate_requirement(requirement)?;
        }
        Ok(LabelSelector { requirements })
    }
}

fn bad_label_selector(detail: String) -> Error {
    Error::BadRequest(format!("unable to parse requirement: {detail}"))
}

fn validate_requirement(r: &Requirement) -> Result<(), String> {
    if let Some(e) = names::qualified_name_errors(&r.key).into_iter().next() {
        return Err(format!("key: Invalid value: {:?}: {e}", r.key));
    }
    for (i, value) in r.values.iter().enumerate() {
        let errors = if matches!(r.op, Op::GreaterThan | Op::LessThan) {
            match value.parse::<i64>() {
                Ok(_) => Vec::new(),
                Err(_) => vec!["for 'Gt', 'Lt' operators, the value must be an integer".to_string()],
            }
        } else {
            names::label_value_errors(value)
        };
        if let Some(e) = errors.into_iter().next() {
            return Err(format!("values[{i}][{}]: Invalid value: {value:?}: {e}", r.key));
        }
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    Equals,
    DoubleEquals,
    NotEquals,
    Bang,
    Open,
    Close,
    Comma,
    Greater,
    Less,
}

impl Token {
    fn text(&self) -> &str {
        match self {
            Token::Ident(s) => s,
            Token::Equals => "=",
            Token::DoubleEquals => "==",
            Token::NotEquals => "!=",
            Token::Bang => "!",
            Token::Open => "(",
            Token::Close => ")",
            Token::Comma => ",",
            Token::Greater => ">",
            Token::Less => "<",
        }
    }
}

fn lex(text: &str) -> Vec<Token> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let (token, width) = match c {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '=' if next == Some('=') => (Token::DoubleEquals, 2),
            '=' => (Token::Equals, 1),
            '!' if next == Some('=') => (Token::NotEquals, 2),
            '!' => (Token::Bang, 1),
            '(' => (Token::Open, 1),
            ')' => (Token::Close, 1),
            ',' => (Token::Comma, 1),
            '>' => (Token::Greater, 1),
            '<' => (Token::Less, 1),
            _ => {
                let start = i;
                while i < chars.len() && !is_special(chars[i]) {
                    i += 1;
                }
                tokens.push(Token::Ident(chars[start..i].iter().collect()));
                continue;
            }
        };
        tokens.push(token);
        i += width;
    }
    tokens
}

fn is_special(c: char) -> bool {
    c.is_whitespace() || matches!(c, '=' | '!' | '(' | ')' | ',' | '>' | '<')
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn at_end(&self) -> bool {
        self.pos >= self.tokens.len()
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        token
    }

    fn ident(&mut self, what: &str) -> Result<String, String> {
        match self.next() {
            Some(Token::Ident(s)) => Ok(s),
            Some(other) => Err(format!("found '{}', expected: {what}", other.text())),
            None => Err(format!("found '', expected: {what}")),
        }
    }

    /// A value after `=`, `==` or `!=`; an empty value is allowed (`a=` selects `a: ""`).
    fn optional_value(&mut self) -> String {
        match self.peek() {
            Some(Token::Ident(s)) => {
                let s = s.clone();
                self.pos += 1;
                s
            }
            _ => String::new(),
        }
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        if self.peek() == Some(&Token::Bang) {
            self.pos += 1;
            let key = self.ident("identifier after '!'")?;
            return Ok(Requirement {
                key,
                op: Op::DoesNotExist,
                values: Vec::new(),
            });
        }
        let key = self.ident("identifier")?;
        let (op, values) = match self.peek().cloned() {
            None | Some(Token::Comma) => (Op::Exists, Vec::new()),
            Some(Token::Equals) | Some(Token::DoubleEquals) => {
                self.pos += 1;
                (Op::Equals, vec![self.optional_value()])
            }
            Some(Token::NotEquals) => {
                self.pos += 1;
                (Op::NotEquals, vec![self.optional_value()])
            }
            Some(Token::Greater) => {
                self.pos += 1;
                (Op::GreaterThan, vec![self.ident("integer value")?])
            }
            Some(Token::Less) => {
                self.pos += 1;
                (Op::LessThan, vec![self.ident("integer value")?])
            }
            Some(Token::Ident(word)) if word == "in" || word == "notin" => {
                self.pos += 1;
                let op = if word == "in" { Op::In } else { Op::NotIn };
                (op, self.value_set()?)
            }
            Some(other) => {
                return Err(format!(
                    "found '{}', expected: in, notin, =, ==, !=, gt, lt",
                    other.text()
                ));
            }
        };
        Ok(Requirement { key, op, values })
    }

    fn value_set(&mut self) -> Result<Vec<String>, String> {
        if self.next() != Some(Token::Open) {
            return Err("found '', expected: '('".to_string());
        }
        let mut values = Vec::new();
        loop {
            values.push(self.optional_value());
            match self.next() {
                Some(Token::Comma) => {}
                Some(Token::Close) => break,
                Some(other) => return Err(format!("found '{}', expected: ',', ')'", other.text())),
                None => return Err("found '', expected: ')'".to_string()),
            }
        }
        if values.len() == 1 && values[0].is_empty() {
            return Err("for 'in', 'notin' operators, values set can't be empty".to_string());
        }
        Ok(values)
    }
}

/// A conjunction of `field=value` / `field!=value` terms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FieldSelector {
    terms: Vec<(String, bool, String)>,
}

/// Boolean fields that the API server formats as `"false"` when unset.
const BOOLEAN_FIELDS: &[&str] = &["spec.unschedulable", "spec.hostNetwork"];

impl FieldSelector {
    pub fn parse(text: &str) -> Result<Self, Error> {
        let mut terms = Vec::new();
        for term in split_unescaped(text, ',') {
            if term.is_empty() {
                continue;
            }
            let parsed = ["!=", "==", "="].iter().find_map(|op| {
                find_unescaped(&term, op).map(|at| {
                    (
                        unescape(&term[..at]),
                        *op == "!=",
                        unescape(&term[at + op.len()..]),
                    )
                })
            });
            match parsed {
                Some((field, negated, value)) => terms.push((field.trim().to_string(), negated, value)),
                None => {
                    return Err(Error::BadRequest(format!(
                        "invalid selector: '{text}'; can't understand '{term}'"
                    )));
                }
            }
        }
        Ok(FieldSelector { terms })
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Rejects fields the resource does not index, as the real server does.
    pub fn check_supported(&self, resource: &ResourceType) -> Result<(), Error> {
        for (field, _, _) in &self.terms {
            let supported = field == "metadata.name"
                || (resource.namespaced && field == "metadata.namespace")
                || resource.field_labels.iter().any(|f| f == field);
            if !supported {
                return Err(Error::BadRequest(format!("field label not supported: {field}")));
            }
        }
        Ok(())
    }

    pub fn matches(&self, object: &Value) -> bool {
        self.terms.iter().all(|(field, negated, want)| {
            let have = field_value(object, field);
            (have == *want) != *negated
        })
    }
}

fn field_value(object: &Value, field: &str) -> String {
    let mut cursor = object;
    for part in field.split('.') {
        cursor = &cursor[part];
    }
    match cursor {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Null if BOOLEAN_FIELDS.contains(&field) => "false".to_string(),
        _ => String::new(),
    }
}

fn split_unescaped(text: &str, sep: char) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut escaped = false;
    for c in text.chars() {
        if escaped {
            current.push('\\');
            current.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            parts.push(std::mem::take(&mut current));
        } else {
            current.push(c);
        }
    }
    parts.push(current);
    parts
}

fn find_unescaped(term: &str, op: &str) -> Option<usize> {
    let bytes = term.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            i += 2;
            continue;
        }
        if term[i..].starts_with(op) {
            return Some(i);
        }
        i += 1;
    }
    None
}

fn unescape(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            out.extend(chars.next());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn labels(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn parses_every_label_selector_operator() {
        let selector = LabelSelector::parse(
            "app=web, tier==front,env!=prod,zone in (a, b),arch notin (arm64),team,!legacy,cores>2",
        )
        .expect("valid selector");
        let pod = labels(json!({"app": "web", "tier": "front", "zone": "b", "team": "x", "cores": "4"}));
        assert!(selector.matches(&pod));
        let legacy = labels(
            json!({"app": "web", "tier": "front", "zone": "b", "team": "x", "cores": "4", "legacy": "1"}),
        );
        assert!(!selector.matches(&legacy));
    }

    #[test]
    fn not_equals_matches_an_absent_label() {
        let selector = LabelSelector::parse("env!=prod").expect("valid");
        assert!(selector.matches(&labels(json!({}))));
        assert!(!selector.matches(&labels(json!({"env": "prod"}))));
    }

    #[test]
    fn malformed_label_selectors_are_bad_requests() {
        for text in ["a in b", "a in ()", "=b", "a b", "bad key=x", "a=b,", "a=-b"] {
            let err = LabelSelector::parse(text).expect_err(text);
            assert_eq!(err.code(), 400, "{text}");
        }
    }

    #[test]
    fn label_selector_objects_use_match_labels_and_expressions() {
        let selector = LabelSelector::from_object(&json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]
        }))
        .expect("valid");
        assert!(selector.matches(&labels(json!({"app": "web", "zone": "a"}))));
        assert!(!selector.matches(&labels(json!({"app": "web", "zone": "b"}))));
        assert!(LabelSelector::from_object(&json!({})).expect("valid").is_empty());
    }

    #[test]
    fn field_selector_on_empty_node_name_selects_unbound_pods() {
        let selector = FieldSelector::parse("spec.nodeName=,status.phase!=Failed").expect("valid");
        assert!(selector.matches(&json!({"spec": {}, "status": {"phase": "Pending"}})));
        assert!(!selector.matches(&json!({"spec": {"nodeName": "n1"}, "status": {"phase": "Pending"}})));
    }

    #[test]
    fn field_selector_without_an_operator_is_a_bad_request() {
        assert_eq!(
            FieldSelector::parse("spec.nodeName").expect_err("no op").code(),
            400
        );
    }

    #[test]
    fn unset_boolean_fields_compare_as_false() {
        let selector = FieldSelector::parse("spec.unschedulable=false").expect("valid");
        assert!(selector.matches(&json!({"spec": {}})));
        assert!(!selector.matches(&json!({"spec": {"unschedulable": true}})));
    }
}
