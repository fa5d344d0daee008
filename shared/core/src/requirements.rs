//! Label requirements: the algebra behind nodeSelector, node affinity, NodePool requirements
//! and instance-type labels.
//!
//! A requirement is a set of allowed values for one key, either listed (`In`, `DoesNotExist` as
//! the empty list) or complemented (`NotIn`, `Exists` as the empty complement), optionally
//! bounded by `Gt`/`Lt` for integer values. Intersection, compatibility and the treatment of
//! undefined keys follow Karpenter's semantics so that manifests behave the same.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::labels;

/// The operators of a node selector requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Operator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
    Gt,
    Lt,
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// One key's set of allowed values.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Requirement {
    /// When true the set is "every value except `values`".
    complement: bool,
    /// Sorted and unique.
    values: Vec<String>,
    greater_than: Option<i64>,
    less_than: Option<i64>,
    /// Minimum number of distinct values the launch must keep flexible (NodePool `minValues`).
    pub min_values: Option<u32>,
    /// Built from at least one requirement that needs the label present (`In`, `Exists`, `Gt`,
    /// `Lt`). Karpenter's algebra forgets this when it intersects: `Exists` and `NotIn [x]` give
    /// `NotIn [x]`, and `In [x]` and `In [y]` the empty set, read as `DoesNotExist`; either way
    /// an object without the label would match, yet Kubernetes matches each requirement in
    /// turn and the one needing the label fails.
    needs_label: bool,
}

impl Requirement {
    pub fn new(operator: Operator, values: &[impl AsRef<str>]) -> Result<Self> {
        Self::build(
            operator,
            values.iter().map(|v| v.as_ref().to_string()).collect(),
            "",
        )
    }

    /// Builds a requirement as the API server validates it: `In`/`NotIn` need values,
    /// `Exists`/`DoesNotExist` take none, `Gt`/`Lt` take exactly one integer.
    pub fn build(operator: Operator, mut values: Vec<String>, key: &str) -> Result<Self> {
        let bad = |reason: &str| Error::Requirement {
            key: key.to_string(),
            reason: reason.to_string(),
        };
        values.sort_unstable();
        values.dedup();
        let (complement, values, gt, lt) = match operator {
            Operator::In if values.is_empty() => return Err(bad("operator In needs at least one value")),
            Operator::NotIn if values.is_empty() => {
                return Err(bad("operator NotIn needs at least one value"));
            }
            Operator::In => (false, values, None, None),
            Operator::NotIn => (true, values, None, None),
            Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
                return Err(bad(&format!("operator {operator} takes no values")));
            }
            Operator::Exists => (true, values, None, None),
            Operator::DoesNotExist => (false, values, None, None),
            Operator::Gt | Operator::Lt => {
                let [v] = values.as_slice() else {
                    return Err(bad(&format!("operator {operator} needs exactly one value")));
                };
                let n: i64 = v
                    .parse()
                    .map_err(|_| bad(&format!("operator {operator} needs an integer, got {v:?}")))?;
                if operator == Operator::Gt {
                    (true, Vec::new(), Some(n), None)
                } else {
                    (true, Vec::new(), None, Some(n))
                }
            }
        };
        Ok(Requirement {
            complement,
            values,
            greater_than: gt,
            less_than: lt,
            min_values: None,
            needs_label: matches!(
                operator,
                Operator::In | Operator::Exists | Operator::Gt | Operator::Lt
            ),
        })
    }

    /// `In` with the given values.
    pub fn is_in(values: impl IntoIterator<Item = impl Into<String>>) -> Self {
        let mut values: Vec<String> = values.into_iter().map(Into::into).collect();
        values.sort_unstable();
        values.dedup();
        Requirement {
            complement: false,
            values,
            greater_than: None,
            less_than: None,
            min_values: None,
            needs_label: true,
        }
    }

    pub fn exists() -> Self {
        Requirement {
            complement: true,
            values: Vec::new(),
            greater_than: None,
            less_than: None,
            min_values: None,
            needs_label: true,
        }
    }

    pub fn does_not_exist() -> Self {
        Requirement {
            complement: false,
            values: Vec::new(),
            greater_than: None,
            less_than: None,
            min_values: None,
            needs_label: false,
        }
    }

    /// No value satisfies it and neither does a missing label: requirements needing the label
    /// narrowed to no value.
    fn never(&self) -> bool {
        self.needs_label && !self.complement && self.values.is_empty()
    }

    /// Whether an object without the label satisfies it: only exclusions (`NotIn`,
    /// `DoesNotExist`) with nothing needing the label intersected into them.
    pub fn allows_absent(&self) -> bool {
        !self.needs_label && matches!(self.operator(), Operator::NotIn | Operator::DoesNotExist)
    }

    pub fn operator(&self) -> Operator {
        if self.never() {
            // An `In` with no values: nothing matches, not even a missing label.
            return Operator::In;
        }
        match (self.complement, self.values.is_empty()) {
            (true, false) => Operator::NotIn,
            (true, true) if self.greater_than.is_some() => Operator::Gt,
            (true, true) if self.less_than.is_some() => Operator::Lt,
            (true, true) => Operator::Exists,
            (false, false) => Operator::In,
            (false, true) => Operator::DoesNotExist,
        }
    }

    pub fn is_complement(&self) -> bool {
        self.complement
    }

    /// The listed values (allowed ones for `In`, excluded ones for `NotIn`).
    pub fn values(&self) -> &[String] {
        &self.values
    }

    fn within_bounds(&self, value: &str) -> bool {
        if self.greater_than.is_none() && self.less_than.is_none() {
            return true;
        }
        let Ok(n) = value.parse::<i64>() else { return false };
        self.greater_than.is_none_or(|gt| n > gt) && self.less_than.is_none_or(|lt| n < lt)
    }

    /// Whether a node with label value `value` satisfies this requirement.
    pub fn has(&self, value: &str) -> bool {
        let listed = self.values.binary_search_by(|v| v.as_str().cmp(value)).is_ok();
        listed != self.complement && self.within_bounds(value)
    }

    /// Number of allowed values; complements count as unbounded.
    pub fn len(&self) -> usize {
        if self.complement {
            usize::MAX - self.values.len()
        } else {
            self.values.len()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn intersection(&self, other: &Requirement) -> Requirement {
        let complement = self.complement && other.complement;
        let greater_than = max_opt(self.greater_than, other.greater_than);
        let less_than = min_opt(self.less_than, other.less_than);
        let min_values = max_opt(self.min_values, other.min_values);
        let needs_label = self.needs_label || other.needs_label;
        if let (Some(gt), Some(lt)) = (greater_than, less_than)
            && gt >= lt
        {
            return Requirement {
                min_values,
                needs_label,
                ..Requirement::does_not_exist()
            };
        }
        let mut values: Vec<String> = match (self.complement, other.complement) {
            (true, true) => union(&self.values, &other.values),
            (true, false) => difference(&other.values, &self.values),
            (false, true) => difference(&self.values, &other.values),
            (false, false) => intersect(&self.values, &other.values),
        };
        let bounds = Requirement {
            complement: true,
            values: Vec::new(),
            greater_than,
            less_than,
            min_values: None,
            needs_label: false,
        };
        values.retain(|v| bounds.within_bounds(v));
        let (greater_than, less_than) = if complement {
            (greater_than, less_than)
        } else {
            (None, None)
        };
        Requirement {
            complement,
            values,
            greater_than,
            less_than,
            min_values,
            needs_label,
        }
    }

    /// True when some value satisfies both requirements, or both exclude the label entirely.
    pub fn intersects(&self, other: &Requirement) -> bool {
        if !self.intersection(other).is_empty() {
            return true;
        }
        self.allows_absent() && other.allows_absent()
    }

    /// A value satisfying the requirement, for labelling a node: the smallest listed value, or
    /// for bounded complements the smallest integer within bounds.
    pub fn any_value(&self) -> Option<String> {
        if !self.complement {
            return self.values.first().cloned();
        }
        if let Some(gt) = self.greater_than {
            let mut n = gt.checked_add(1)?;
            while !self.has(&n.to_string()) {
                n = n.checked_add(1)?;
            }
            return Some(n.to_string());
        }
        None
    }
}

fn max_opt<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

fn min_opt<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

fn union(a: &[String], b: &[String]) -> Vec<String> {
    let mut out: Vec<String> = a.iter().chain(b).cloned().collect();
    out.sort_unstable();
    out.dedup();
    out
}

fn intersect(a: &[String], b: &[String]) -> Vec<String> {
    a.iter().filter(|v| b.binary_search(v).is_ok()).cloned().collect()
}

fn difference(a: &[String], b: &[String]) -> Vec<String> {
    a.iter()
        .filter(|v| b.binary_search(v).is_err())
        .cloned()
        .collect()
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.operator() {
            Operator::In | Operator::NotIn => {
                let shown: Vec<&str> = self.values.iter().take(5).map(String::as_str).collect();
                let more = if self.values.len() > 5 {
                    format!(" and {} more", self.values.len() - 5)
                } else {
                    String::new()
                };
                write!(f, "{} [{}{}]", self.operator(), shown.join(", "), more)
            }
            Operator::Gt => write!(f, "Gt {}", self.greater_than.unwrap_or_default()),
            Operator::Lt => write!(f, "Lt {}", self.less_than.unwrap_or_default()),
            op => write!(f, "{op}"),
        }?;
        if let (Some(gt), Some(lt)) = (self.greater_than, self.less_than) {
            write!(f, " (between {gt} and {lt})")?;
        }
        Ok(())
    }
}

/// Requirements on many keys; a key absent from the map is unconstrained.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Requirements {
    by_key: BTreeMap<String, Requirement>,
}

/// Why two sets of requirements cannot meet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incompatible {
    pub key: String,
    pub reason: String,
}

impl fmt::Display for Incompatible {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.reason)
    }
}

impl Requirements {
    pub fn new() -> Self {
        Self::default()
    }

    /// Requirements pinning each label to its value (a node's labels, a nodeSelector).
    pub fn from_labels<'a>(labels: impl IntoIterator<Item = (&'a String, &'a String)>) -> Self {
        let mut out = Requirements::new();
        for (k, v) in labels {
            out.add(k, Requirement::is_in([v.clone()]));
        }
        out
    }

    /// Adds a requirement, intersecting with any already present for the key.
    pub fn add(&mut self, key: &str, requirement: Requirement) {
        match self.by_key.get_mut(key) {
            Some(existing) => *existing = existing.intersection(&requirement),
            None => {
                self.by_key.insert(key.to_string(), requirement);
            }
        }
    }

    pub fn add_all(&mut self, other: &Requirements) {
        for (k, r) in &other.by_key {
            self.add(k, r.clone());
        }
    }

    pub fn get(&self, key: &str) -> Option<&Requirement> {
        self.by_key.get(key)
    }

    pub fn has_key(&self, key: &str) -> bool {
        self.by_key.contains_key(key)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Requirement)> {
        self.by_key.iter()
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// The same requirements with deprecated label keys under their current names (see
    /// [`labels::normalize`]); an old and a new key on one term are intersected.
    pub fn normalized(&self) -> Requirements {
        if self.by_key.keys().all(|k| labels::normalize(k) == k) {
            return self.clone();
        }
        let mut out = Requirements::new();
        for (k, r) in &self.by_key {
            out.add(labels::normalize(k), r.clone());
        }
        out
    }

    pub fn remove(&mut self, key: &str) -> Option<Requirement> {
        self.by_key.remove(key)
    }

    pub fn intersection(&self, other: &Requirements) -> Requirements {
        let mut out = self.clone();
        out.add_all(other);
        out
    }

    /// Whether every shared key has a common value (Karpenter's `Intersects`).
    pub fn intersects(&self, other: &Requirements) -> Result<(), Incompatible> {
        // Walk the smaller map and look up in the larger one.
        let (small, large, swapped) = if self.len() <= other.len() {
            (self, other, false)
        } else {
            (other, self, true)
        };
        for (key, a) in &small.by_key {
            if let Some(b) = large.by_key.get(key) {
                let (existing, incoming) = if swapped { (b, a) } else { (a, b) };
                if !existing.intersects(incoming) {
                    return Err(Incompatible {
                        key: key.clone(),
                        reason: format!("{incoming} does not intersect {existing}"),
                    });
                }
            }
        }
        Ok(())
    }

    /// Whether `incoming` (a pod's requirements) can be met by `self` (a NodePool's or instance
    /// type's requirements). A custom label the pod requires but `self` does not define is
    /// denied, unless the pod only excludes it; well-known labels undefined here are allowed.
    pub fn compatible(&self, incoming: &Requirements) -> Result<(), Incompatible> {
        for (key, req) in &incoming.by_key {
            if !self.by_key.contains_key(key) && !labels::is_well_known(key) && !req.allows_absent() {
                return Err(Incompatible {
                    key: key.clone(),
                    reason: format!("label {key:?} does not have known values"),
                });
            }
        }
        self.intersects(incoming)
    }

    /// Whether a node with these labels satisfies every requirement.
    pub fn matches_labels(&self, labels: &BTreeMap<String, String>) -> bool {
        self.by_key.iter().all(|(key, req)| match labels.get(key) {
            Some(v) => req.has(v),
            None => req.allows_absent(),
        })
    }

    /// Labels a node launched under these requirements carries: every key narrowed to a
    /// single value.
    pub fn single_valued_labels(&self) -> BTreeMap<String, String> {
        self.by_key
            .iter()
            .filter(|(_, r)| !r.is_complement() && r.values().len() == 1)
            .map(|(k, r)| (k.clone(), r.values()[0].clone()))
            .collect()
    }
}

impl fmt::Display for Requirements {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.by_key.iter().map(|(k, r)| format!("{k} {r}")).collect();
        f.write_str(&parts.join(", "))
    }
}

/// A requirement as written in YAML (`{key, operator, values, minValues}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeSelectorRequirement {
    pub key: String,
    pub operator: Operator,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_values: Option<u32>,
}

impl NodeSelectorRequirement {
    pub fn to_requirement(&self) -> Result<Requirement> {
        let mut r = Requirement::build(self.operator, self.values.clone(), &self.key)?;
        if let Some(min) = self.min_values {
            if min == 0 {
                return Err(Error::Requirement {
                    key: self.key.clone(),
                    reason: "minValues must be at least 1".into(),
                });
            }
            r.min_values = Some(min);
        }
        Ok(r)
    }
}

/// Builds requirements from a list of YAML requirements (an AND of all of them).
pub fn from_selector_requirements(list: &[NodeSelectorRequirement]) -> Result<Requirements> {
    let mut out = Requirements::new();
    for r in list {
        out.add(&r.key, r.to_requirement()?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(op: Operator, values: &[&str]) -> Requirement {
        Requirement::new(op, values).expect("valid requirement")
    }

    fn reqs(list: &[(&str, Operator, &[&str])]) -> Requirements {
        let mut out = Requirements::new();
        for (k, op, v) in list {
            out.add(k, req(*op, v));
        }
        out
    }

    #[test]
    fn in_and_not_in_match_values() {
        let r = req(Operator::In, &["a", "b"]);
        assert!(r.has("a") && r.has("b") && !r.has("c"));
        let r = req(Operator::NotIn, &["a"]);
        assert!(!r.has("a") && r.has("z"));
    }

    #[test]
    fn exists_matches_anything_and_does_not_exist_matches_nothing() {
        assert!(Requirement::exists().has("x"));
        assert!(!Requirement::does_not_exist().has("x"));
        assert_eq!(Requirement::exists().operator(), Operator::Exists);
        assert_eq!(Requirement::does_not_exist().operator(), Operator::DoesNotExist);
    }

    #[test]
    fn gt_and_lt_compare_integers_and_reject_non_integers() {
        let gt = req(Operator::Gt, &["4"]);
        assert!(gt.has("5") && !gt.has("4") && !gt.has("abc"));
        let lt = req(Operator::Lt, &["4"]);
        assert!(lt.has("3") && !lt.has("4"));
        let between = gt.intersection(&req(Operator::Lt, &["8"]));
        assert!(between.has("6") && !between.has("8") && !between.has("4"));
        assert!(Requirement::new(Operator::Gt, &["x"]).is_err());
        assert!(Requirement::new(Operator::Gt, &["1", "2"]).is_err());
    }

    #[test]
    fn empty_bounds_match_no_value_and_no_missing_label() {
        let r = req(Operator::Gt, &["8"]).intersection(&req(Operator::Lt, &["4"]));
        assert!(r.is_empty() && !r.has("6"));
        // Gt and Lt need the label, so an empty range is not `DoesNotExist`.
        assert_ne!(r.operator(), Operator::DoesNotExist);
        assert!(!r.intersects(&Requirement::does_not_exist()));
    }

    #[test]
    fn intersection_follows_set_semantics() {
        let r = req(Operator::In, &["a", "b", "c"]).intersection(&req(Operator::NotIn, &["b"]));
        assert_eq!(r.values(), ["a", "c"]);
        assert_eq!(r.operator(), Operator::In);
        let r = req(Operator::NotIn, &["a"]).intersection(&req(Operator::NotIn, &["b"]));
        assert_eq!(r.operator(), Operator::NotIn);
        assert_eq!(r.values(), ["a", "b"]);
        let r = req(Operator::In, &["1", "5", "9"]).intersection(&req(Operator::Gt, &["4"]));
        assert_eq!(r.values(), ["5", "9"]);
        let r = req(Operator::In, &["a"]).intersection(&req(Operator::In, &["b"]));
        assert!(r.is_empty());
    }

    #[test]
    fn rejects_operators_with_wrong_values() {
        assert!(Requirement::new(Operator::In, &[] as &[&str]).is_err());
        assert!(Requirement::new(Operator::Exists, &["a"]).is_err());
    }

    #[test]
    fn compatible_denies_undefined_custom_labels_but_allows_well_known_ones() {
        let pool = reqs(&[(labels::ARCH, Operator::In, &["amd64"])]);
        let pod = reqs(&[("team", Operator::In, &["a"])]);
        let err = pool
            .compatible(&pod)
            .expect_err("custom label not defined by pool");
        assert_eq!(err.key, "team");
        let pod = reqs(&[("team", Operator::NotIn, &["a"])]);
        assert!(pool.compatible(&pod).is_ok());
        let pod = reqs(&[(labels::ZONE, Operator::In, &["us-east-1a"])]);
        assert!(pool.compatible(&pod).is_ok());
    }

    #[test]
    fn compatible_rejects_disjoint_values_with_a_reason() {
        let pool = reqs(&[(labels::ARCH, Operator::In, &["amd64"])]);
        let pod = reqs(&[(labels::ARCH, Operator::In, &["arm64"])]);
        let err = pool.compatible(&pod).expect_err("disjoint");
        assert_eq!(err.key, labels::ARCH);
        assert!(err.reason.contains("arm64"), "{}", err.reason);
    }

    #[test]
    fn two_exclusions_of_an_absent_label_are_compatible() {
        let a = reqs(&[("gpu", Operator::DoesNotExist, &[])]);
        let b = reqs(&[("gpu", Operator::NotIn, &["x"])]);
        assert!(a.intersects(&b).is_ok());
        let c = reqs(&[("gpu", Operator::In, &["x"])]);
        assert!(a.intersects(&c).is_err());
    }

    #[test]
    fn matches_labels_treats_missing_labels_like_kubernetes() {
        let r = reqs(&[
            ("a", Operator::In, &["1"]),
            ("b", Operator::DoesNotExist, &[]),
            ("c", Operator::NotIn, &["x"]),
        ]);
        let mut labels = BTreeMap::new();
        labels.insert("a".to_string(), "1".to_string());
        assert!(r.matches_labels(&labels));
        labels.insert("b".to_string(), "y".to_string());
        assert!(!r.matches_labels(&labels));
    }

    #[test]
    fn contradictory_requirements_on_one_key_match_no_node_not_even_one_without_the_label() {
        let none = BTreeMap::new();
        let cases = [
            reqs(&[
                ("team", Operator::In, &["blue"]),
                ("team", Operator::In, &["green"]),
            ]),
            reqs(&[
                ("team", Operator::Exists, &[]),
                ("team", Operator::DoesNotExist, &[]),
            ]),
            reqs(&[("cpu", Operator::Gt, &["8"]), ("cpu", Operator::Lt, &["4"])]),
        ];
        for r in &cases {
            assert!(!r.matches_labels(&none), "{r:?}");
            // A pool without the label cannot meet it either.
            assert!(Requirements::new().compatible(r).is_err(), "{r:?}");
        }
        // Two exclusions still mean the label may be absent.
        let absent = reqs(&[
            ("team", Operator::NotIn, &["blue"]),
            ("team", Operator::DoesNotExist, &[]),
        ]);
        assert!(absent.matches_labels(&none));
    }

    #[test]
    fn an_exclusion_beside_a_requirement_needing_the_label_still_needs_it() {
        let none = BTreeMap::new();
        let green = BTreeMap::from([("team".to_string(), "green".to_string())]);
        for r in [
            reqs(&[
                ("team", Operator::Exists, &[]),
                ("team", Operator::NotIn, &["blue"]),
            ]),
            reqs(&[
                ("team", Operator::NotIn, &["blue"]),
                ("team", Operator::Exists, &[]),
            ]),
        ] {
            assert!(!r.matches_labels(&none), "{r:?}");
            assert!(r.matches_labels(&green), "{r:?}");
            assert!(r.get("team").is_some_and(|t| !t.allows_absent()));
            // A pool that does not define the custom label cannot promise it.
            assert!(Requirements::new().compatible(&r).is_err(), "{r:?}");
        }
        let bounded = reqs(&[("cpu", Operator::Gt, &["2"]), ("cpu", Operator::NotIn, &["4"])]);
        assert!(!bounded.matches_labels(&none));
        assert!(bounded.matches_labels(&BTreeMap::from([("cpu".to_string(), "8".to_string())])));
        assert!(!bounded.matches_labels(&BTreeMap::from([("cpu".to_string(), "4".to_string())])));
    }

    #[test]
    fn min_values_survive_intersection() {
        let mut a = req(Operator::In, &["a", "b", "c"]);
        a.min_values = Some(2);
        let r = a.intersection(&req(Operator::Exists, &[]));
        assert_eq!(r.min_values, Some(2));
    }

    #[test]
    fn parses_requirements_and_names_unknown_fields() {
        let ok: Vec<NodeSelectorRequirement> =
            serde_json::from_str(r#"[{"key": "a", "operator": "In", "values": ["x"], "minValues": 1}]"#)
                .expect("valid");
        assert!(from_selector_requirements(&ok).is_ok());
        let err = serde_json::from_str::<Vec<NodeSelectorRequirement>>(
            r#"[{"key": "a", "operator": "In", "valuez": ["x"]}]"#,
        )
        .expect_err("unknown field");
        assert!(err.to_string().contains("valuez"));
    }
}
