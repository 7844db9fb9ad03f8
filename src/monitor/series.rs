//! The monitor's shared vocabulary: a series' labels, label matchers, samples, the
//! staleness marker, and the one trait the query engine reads storage through.

use std::fmt;

/// The label that holds a series' metric name.
pub const METRIC_NAME: &str = "__name__";

/// A series' identity: label pairs sorted by name, unique names, no empty values
/// (Prometheus treats an empty value as an absent label). `__name__` is one of them.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Labels(Vec<(String, String)>);

impl Labels {
    /// Builds labels from pairs in any order: sorts them, drops empty values, and keeps the
    /// last of repeated names.
    pub fn new(mut pairs: Vec<(String, String)>) -> Labels {
        pairs.retain(|(_, v)| !v.is_empty());
        // Stable sort, then keep the last of each run of equal names.
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out: Vec<(String, String)> = Vec::with_capacity(pairs.len());
        for pair in pairs {
            match out.last_mut() {
                Some(last) if last.0 == pair.0 => *last = pair,
                _ => out.push(pair),
            }
        }
        Labels(out)
    }

    /// Builds labels from `(name, value)` string slices.
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Labels {
        Labels::new(
            pairs
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    /// The value of `name`, if the series has it.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .ok()
            .map(|i| self.0[i].1.as_str())
    }

    /// The metric name (`__name__`), if any.
    pub fn metric_name(&self) -> Option<&str> {
        self.get(METRIC_NAME)
    }

    /// The pairs, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// The pairs as a slice, sorted by name.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    /// Takes the pairs out.
    pub fn into_pairs(self) -> Vec<(String, String)> {
        self.0
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no labels.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The same labels without `__name__` (what most PromQL functions return).
    pub fn without_metric_name(&self) -> Labels {
        Labels(
            self.0
                .iter()
                .filter(|(n, _)| n != METRIC_NAME)
                .cloned()
                .collect(),
        )
    }

    /// A copy with `name` set to `value` (removed when `value` is empty).
    pub fn with(&self, name: &str, value: &str) -> Labels {
        let mut pairs: Vec<(String, String)> =
            self.0.iter().filter(|(n, _)| n != name).cloned().collect();
        pairs.push((name.to_owned(), value.to_owned()));
        Labels::new(pairs)
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Labels {
    /// `name{a="1", b="2"}` as Prometheus prints a series.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(name) = self.metric_name() {
            f.write_str(name)?;
        }
        f.write_str("{")?;
        let mut first = true;
        for (n, v) in self.iter().filter(|(n, _)| *n != METRIC_NAME) {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{n}={v:?}")?;
        }
        f.write_str("}")
    }
}

/// How a matcher compares a label's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    Equal,
    NotEqual,
    Regex,
    NotRegex,
}

/// One label matcher of a selector, e.g. `uri=~"/api/.*"`. A series without the label
/// matches as if its value were empty, so `{x=""}` selects series without `x`.
#[derive(Debug, Clone)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    /// The value as a regular expression anchored at both ends, for `=~` and `!~`.
    regex: Option<regex::Regex>,
}

impl Matcher {
    /// Builds a matcher; fails only on an invalid regular expression.
    pub fn new(name: &str, op: MatchOp, value: &str) -> Result<Matcher, regex::Error> {
        let regex = match op {
            MatchOp::Regex | MatchOp::NotRegex => {
                Some(regex::Regex::new(&format!("^(?s:{value})$"))?)
            }
            MatchOp::Equal | MatchOp::NotEqual => None,
        };
        Ok(Matcher {
            name: name.to_owned(),
            op,
            value: value.to_owned(),
            regex,
        })
    }

    /// `name="value"`.
    pub fn equal(name: &str, value: &str) -> Matcher {
        Matcher {
            name: name.to_owned(),
            op: MatchOp::Equal,
            value: value.to_owned(),
            regex: None,
        }
    }

    /// Tells whether a label value (empty when the label is absent) satisfies the matcher.
    pub fn matches(&self, value: &str) -> bool {
        match (self.op, &self.regex) {
            (MatchOp::Equal, _) => value == self.value,
            (MatchOp::NotEqual, _) => value != self.value,
            (MatchOp::Regex, Some(re)) => re.is_match(value),
            (MatchOp::NotRegex, Some(re)) => !re.is_match(value),
            (MatchOp::Regex | MatchOp::NotRegex, None) => false,
        }
    }

    /// Tells whether a series' labels satisfy the matcher.
    pub fn matches_labels(&self, labels: &Labels) -> bool {
        self.matches(labels.get(&self.name).unwrap_or(""))
    }

    /// True when the matcher also selects the empty value (it cannot narrow a search alone).
    pub fn matches_empty(&self) -> bool {
        self.matches("")
    }
}

/// One series' samples, `(timestamp in ms, value)` in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesData {
    pub labels: Labels,
    pub samples: Vec<(i64, f64)>,
}

/// The bits of Prometheus's staleness marker: a NaN no exporter writes, stored when a series
/// disappears from its target so that queries stop returning it at once.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// The staleness marker value.
pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// Tells whether a value is the staleness marker (not any other NaN).
pub fn is_stale(value: f64) -> bool {
    value.to_bits() == STALE_NAN_BITS
}

/// Read access to stored series, which is all the query engine needs.
pub trait Queryable: Send + Sync {
    /// Every series matching all `matchers` that has a sample in `[mint, maxt]` (ms),
    /// with those samples (staleness markers included) in time order.
    fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Vec<SeriesData>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_sorted_unique_and_without_empty_values() {
        let l = Labels::from_pairs(&[("b", "2"), ("a", "1"), ("c", ""), ("a", "3")]);
        assert_eq!(
            l.pairs(),
            &[("a".into(), "3".into()), ("b".into(), "2".into())]
        );
        assert_eq!(l.get("c"), None);
    }

    #[test]
    fn empty_matcher_matches_missing_label() {
        let l = Labels::from_pairs(&[("__name__", "up")]);
        assert!(Matcher::equal("job", "").matches_labels(&l));
        assert!(!Matcher::equal("job", "x").matches_labels(&l));
        let re = Matcher::new("job", MatchOp::Regex, "a|").unwrap();
        assert!(re.matches_labels(&l));
        assert!(
            !Matcher::new("job", MatchOp::Regex, "a")
                .unwrap()
                .matches("ab")
        );
    }

    #[test]
    fn staleness_marker_is_a_distinct_nan() {
        assert!(is_stale(stale_nan()));
        assert!(!is_stale(f64::NAN));
    }
}
