//! A series' labels as the store keeps them: one shared allocation holding each name and
//! value followed by `0xff` (a byte UTF-8 never uses). Comparing with incoming labels then
//! touches one or two cache lines instead of one per string, which is most of the cost of
//! an append, and takes less memory than a vector of strings.

use std::fmt;
use std::sync::Arc;

use crate::monitor::series::{Labels, Matcher};

const SEP: u8 = 0xff;

/// Packed labels; cheap to clone (shared).
#[derive(Clone, PartialEq, Eq)]
pub(super) struct SeriesLabels(Arc<[u8]>);

impl SeriesLabels {
    /// Packs pairs, which must be sorted by name with unique names (as in [`Labels`]).
    pub(super) fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> SeriesLabels {
        let mut bytes = Vec::new();
        for (name, value) in pairs {
            bytes.extend_from_slice(name.as_bytes());
            bytes.push(SEP);
            bytes.extend_from_slice(value.as_bytes());
            bytes.push(SEP);
        }
        SeriesLabels(bytes.into())
    }

    /// The pairs, sorted by name.
    pub(super) fn pairs(&self) -> Pairs<'_> {
        Pairs { rest: &self.0 }
    }

    /// Number of pairs.
    pub(super) fn len(&self) -> usize {
        self.0.iter().filter(|&&b| b == SEP).count() / 2
    }

    /// The value of `name`, empty when absent (as matchers see it).
    pub(super) fn get(&self, name: &str) -> &str {
        self.pairs()
            .find(|(n, _)| *n == name)
            .map_or("", |(_, v)| v)
    }

    /// Tells whether the labels satisfy every matcher.
    pub(super) fn matches(&self, matchers: &[Matcher]) -> bool {
        matchers.iter().all(|m| m.matches(self.get(&m.name)))
    }

    /// Tells whether these are exactly `pairs`, without allocating.
    pub(super) fn same_as<'a>(&self, pairs: impl Iterator<Item = (&'a str, &'a str)>) -> bool {
        let mut rest: &[u8] = &self.0;
        for (name, value) in pairs {
            for part in [name, value] {
                let Some(tail) = rest.strip_prefix(part.as_bytes()) else {
                    return false;
                };
                let Some((&SEP, tail)) = tail.split_first() else {
                    return false;
                };
                rest = tail;
            }
        }
        rest.is_empty()
    }

    /// Copies the labels into the shared [`Labels`] type.
    pub(super) fn to_labels(&self) -> Labels {
        Labels::new(
            self.pairs()
                .map(|(n, v)| (n.to_owned(), v.to_owned()))
                .collect(),
        )
    }
}

impl fmt::Debug for SeriesLabels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.pairs()).finish()
    }
}

/// Iterator over packed pairs.
#[derive(Clone)]
pub(super) struct Pairs<'a> {
    rest: &'a [u8],
}

impl<'a> Pairs<'a> {
    fn next_str(&mut self) -> Option<&'a str> {
        let end = self.rest.iter().position(|&b| b == SEP)?;
        let (part, tail) = (&self.rest[..end], &self.rest[end + 1..]);
        self.rest = tail;
        // Built from `&str`s, so always UTF-8.
        Some(std::str::from_utf8(part).unwrap_or_default())
    }
}

impl<'a> Iterator for Pairs<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        Some((self.next_str()?, self.next_str()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::series::MatchOp;

    #[test]
    fn packed_labels_round_trip_and_compare_exactly() {
        let l = Labels::from_pairs(&[("__name__", "up"), ("job", "api"), ("x", "ünï\0cödé")]);
        let packed = SeriesLabels::from_pairs(l.iter());
        assert_eq!(packed.to_labels(), l);
        assert_eq!(packed.len(), 3);
        assert_eq!((packed.get("job"), packed.get("nope")), ("api", ""));
        assert!(packed.same_as(l.iter()));
        for other in [
            Labels::from_pairs(&[("__name__", "up"), ("job", "api")]),
            Labels::from_pairs(&[("__name__", "up"), ("job", "apix"), ("x", "ünï\0cödé")]),
            Labels::from_pairs(&[
                ("__name__", "up"),
                ("job", "api"),
                ("x", "ünï\0cödé"),
                ("y", "1"),
            ]),
            Labels::from_pairs(&[("__name__", "upjob"), ("api", "x")]),
        ] {
            assert!(!packed.same_as(other.iter()), "{other}");
        }
    }

    #[test]
    fn matchers_see_absent_labels_as_empty() {
        let packed = SeriesLabels::from_pairs([("job", "api")]);
        assert!(packed.matches(&[Matcher::equal("instance", ""), Matcher::equal("job", "api")]));
        assert!(!packed.matches(&[Matcher::new("job", MatchOp::NotRegex, "a.*").unwrap()]));
        assert!(SeriesLabels::from_pairs([]).matches(&[]));
    }
}
