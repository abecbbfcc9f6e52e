//! The `filters` query parameter: a JSON map from filter name to values, in Docker's current form
//! (`{"label":{"a=b":true}}`) or the legacy list form (`{"label":["a=b"]}`), and the ways Docker
//! matches a value against a filter (exact, pattern, `key`/`key=value` label lists, booleans).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;

/// Why a `filters` value was refused; the daemon answers 400 with these messages.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error("invalid filter JSON {input:?}")]
    Json {
        input: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("invalid filter format for {0:?}: values must be a list of strings or a map of string to true")]
    Shape(String),
    #[error("invalid filter '{0}'")]
    UnknownKey(String),
    #[error("invalid filter '{key}={value}'")]
    BadValue { key: String, value: String },
    #[error("invalid filter '{key}={value}': bad pattern")]
    Pattern {
        key: String,
        value: String,
        #[source]
        source: regex::Error,
    },
}

/// Parsed filters: name → set of values (sorted, deduplicated).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    fields: BTreeMap<String, BTreeSet<String>>,
}

impl Filters {
    pub fn new() -> Self {
        Self::default()
    }

    /// Parse the query value; an empty string means no filters.
    pub fn parse(input: &str) -> Result<Self, FilterError> {
        let mut out = Self::new();
        if input.trim().is_empty() {
            return Ok(out);
        }
        let v: Value = serde_json::from_str(input).map_err(|source| FilterError::Json {
            input: input.to_string(),
            source,
        })?;
        let Value::Object(map) = v else {
            return Err(FilterError::Shape(input.to_string()));
        };
        for (key, values) in map {
            match values {
                Value::Object(m) => {
                    for (val, on) in m {
                        if on.as_bool() == Some(true) {
                            out.add(&key, &val);
                        }
                    }
                }
                Value::Array(list) => {
                    for val in list {
                        let Value::String(s) = val else {
                            return Err(FilterError::Shape(key));
                        };
                        out.add(&key, &s);
                    }
                }
                _ => return Err(FilterError::Shape(key)),
            }
        }
        Ok(out)
    }

    /// Parse CLI-style `key=value` arguments (`--filter label=a=b`).
    pub fn from_args<I, S>(args: I) -> Result<Self, FilterError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut out = Self::new();
        for arg in args {
            let arg = arg.as_ref();
            let Some((k, v)) = arg.split_once('=') else {
                return Err(FilterError::Shape(arg.to_string()));
            };
            out.add(k.trim(), v);
        }
        Ok(out)
    }

    pub fn add(&mut self, key: &str, value: &str) {
        self.fields
            .entry(key.to_string())
            .or_default()
            .insert(value.to_string());
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    pub fn contains(&self, key: &str) -> bool {
        self.fields.contains_key(key)
    }

    /// The values given for `key` (empty when the filter is absent).
    pub fn get(&self, key: &str) -> Vec<&str> {
        self.fields
            .get(key)
            .map(|s| s.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }

    /// Refuse filter names outside `allowed` (Docker: `invalid filter 'x'`).
    pub fn validate(&self, allowed: &[&str]) -> Result<(), FilterError> {
        match self.fields.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(k) => Err(FilterError::UnknownKey(k.clone())),
            None => Ok(()),
        }
    }

    /// Encode in Docker's current map form, for clients.
    pub fn to_json(&self) -> String {
        let map: BTreeMap<&String, BTreeMap<&String, bool>> = self
            .fields
            .iter()
            .map(|(k, vs)| (k, vs.iter().map(|v| (v, true)).collect()))
            .collect();
        serde_json::to_string(&map).expect("a map of strings always serializes")
    }

    /// Any value equals `source` exactly (absent filter: true).
    pub fn exact_match(&self, key: &str, source: &str) -> bool {
        match self.fields.get(key) {
            None => true,
            Some(vs) => vs.contains(source),
        }
    }

    /// Any value equals `source` or, read as a pattern, matches somewhere in it, like Docker's
    /// `Args.Match` (absent filter: true).
    pub fn pattern_match(&self, key: &str, source: &str) -> Result<bool, FilterError> {
        let Some(vs) = self.fields.get(key) else {
            return Ok(true);
        };
        for v in vs {
            if v == source {
                return Ok(true);
            }
            let re = regex::Regex::new(v).map_err(|source| FilterError::Pattern {
                key: key.to_string(),
                value: v.clone(),
                source,
            })?;
            if re.is_match(source) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Every value (`key` or `key=value`) is present in `labels` (absent filter: true), like
    /// Docker's `Args.MatchKVList`.
    pub fn labels_match(&self, key: &str, labels: &HashMap<String, String>) -> bool {
        let Some(vs) = self.fields.get(key) else {
            return true;
        };
        vs.iter().all(|v| match v.split_once('=') {
            Some((k, want)) => labels.get(k).is_some_and(|have| have == want),
            None => labels.contains_key(v.as_str()),
        })
    }

    /// The boolean value of filter `key` (`true`/`1`/`false`/`0`), `None` when absent; several
    /// contradicting values are refused.
    pub fn bool_value(&self, key: &str) -> Result<Option<bool>, FilterError> {
        let Some(vs) = self.fields.get(key) else {
            return Ok(None);
        };
        let mut out = None;
        for v in vs {
            let b = match v.to_ascii_lowercase().as_str() {
                "true" | "1" => true,
                "false" | "0" => false,
                _ => {
                    return Err(FilterError::BadValue {
                        key: key.to_string(),
                        value: v.clone(),
                    })
                }
            };
            if out.is_some_and(|o| o != b) {
                return Err(FilterError::BadValue {
                    key: key.to_string(),
                    value: v.clone(),
                });
            }
            out = Some(b);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_forms() {
        let a = Filters::parse(r#"{"label":{"a=b":true,"off":false},"name":{"x":true}}"#).unwrap();
        assert_eq!(a.get("label"), vec!["a=b"]);
        assert_eq!(a.get("name"), vec!["x"]);
        let b = Filters::parse(r#"{"label":["a=b"],"name":["x"]}"#).unwrap();
        assert_eq!(b.get("label"), vec!["a=b"]);
        assert!(Filters::parse("").unwrap().is_empty());
        assert!(Filters::parse("[1]").is_err());
        assert!(Filters::parse(r#"{"a":[1]}"#).is_err());
        assert!(Filters::parse("{nope").is_err());
    }

    #[test]
    fn round_trips_through_json() {
        let f = Filters::from_args(["label=a=b", "dangling=true"]).unwrap();
        assert_eq!(
            f.to_json(),
            r#"{"dangling":{"true":true},"label":{"a=b":true}}"#
        );
        assert_eq!(Filters::parse(&f.to_json()).unwrap(), f);
        assert!(Filters::from_args(["novalue"]).is_err());
    }

    #[test]
    fn validates_keys() {
        let f = Filters::from_args(["bogus=1"]).unwrap();
        assert_eq!(
            f.validate(&["name"]).unwrap_err().to_string(),
            "invalid filter 'bogus'"
        );
        assert!(f.validate(&["bogus"]).is_ok());
    }

    #[test]
    fn matches_like_docker() {
        let f = Filters::from_args(["name=^web", "label=tier", "label=env=prod"]).unwrap();
        assert!(f.pattern_match("name", "web1").unwrap());
        assert!(!f.pattern_match("name", "myweb").unwrap());
        assert!(f.pattern_match("absent", "x").unwrap());
        let mut labels = HashMap::new();
        labels.insert("tier".to_string(), "x".to_string());
        assert!(!f.labels_match("label", &labels), "env=prod missing");
        labels.insert("env".to_string(), "prod".to_string());
        assert!(f.labels_match("label", &labels));
        labels.insert("env".to_string(), "dev".to_string());
        assert!(!f.labels_match("label", &labels));
        let bad = Filters::from_args(["name=("]).unwrap();
        assert!(bad.pattern_match("name", "x").is_err());
    }

    #[test]
    fn booleans() {
        let f = Filters::from_args(["dangling=1"]).unwrap();
        assert_eq!(f.bool_value("dangling").unwrap(), Some(true));
        assert_eq!(f.bool_value("other").unwrap(), None);
        let f = Filters::from_args(["dangling=maybe"]).unwrap();
        assert_eq!(
            f.bool_value("dangling").unwrap_err().to_string(),
            "invalid filter 'dangling=maybe'"
        );
        let f = Filters::from_args(["dangling=true", "dangling=false"]).unwrap();
        assert!(f.bool_value("dangling").is_err());
    }
}
