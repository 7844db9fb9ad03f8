//! The inverted index: label name → value → sorted ids of the series with that pair.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};

use crate::monitor::series::{Labels, MatchOp, Matcher};

use super::labels::SeriesLabels;

/// A series' id in memory (not stable across restarts).
pub(super) type SeriesId = u32;

/// A label set's pairs as an iterator that knows its length and can be restarted.
pub(super) fn pairs_of(labels: &Labels) -> impl ExactSizeIterator<Item = (&str, &str)> + Clone {
    labels.pairs().iter().map(|(n, v)| (n.as_str(), v.as_str()))
}

/// Label name → value → ids of the series that have that pair, ascending.
#[derive(Debug, Default)]
pub(super) struct Postings {
    map: BTreeMap<Box<str>, BTreeMap<Box<str>, Vec<SeriesId>>>,
}

impl Postings {
    /// Indexes a series under each of its pairs.
    pub(super) fn add<'a>(
        &mut self,
        id: SeriesId,
        pairs: impl Iterator<Item = (&'a str, &'a str)>,
    ) {
        for (name, value) in pairs {
            if !self.map.contains_key(name) {
                self.map.insert(Box::from(name), BTreeMap::new());
            }
            let Some(values) = self.map.get_mut(name) else {
                continue;
            };
            match values.get_mut(value) {
                Some(ids) => insert_sorted(ids, id),
                None => {
                    values.insert(Box::from(value), vec![id]);
                }
            }
        }
    }

    /// Removes the given series, dropping values and names left without series.
    pub(super) fn remove(&mut self, dropped: &[(SeriesId, SeriesLabels)]) {
        let ids: HashSet<SeriesId> = dropped.iter().map(|(id, _)| *id).collect();
        for (_, labels) in dropped {
            for (name, value) in labels.pairs() {
                let Some(values) = self.map.get_mut(name) else {
                    continue;
                };
                if let Some(list) = values.get_mut(value) {
                    list.retain(|id| !ids.contains(id));
                    if list.is_empty() {
                        values.remove(value);
                    }
                }
                if values.is_empty() {
                    self.map.remove(name);
                }
            }
        }
    }

    /// The ids of series that may match all `matchers`, ascending, or `None` when no
    /// matcher narrows the search (every matcher also matches the empty value).
    ///
    /// Each matcher that rejects the empty value needs the label present with a matching
    /// value: its candidates are the union of those values' postings (one lookup for `=`).
    /// The candidates of all such matchers are intersected, smallest first. The caller still
    /// checks every matcher against the labels.
    pub(super) fn candidates(&self, matchers: &[Matcher]) -> Option<Vec<SeriesId>> {
        let mut lists: Vec<Cow<'_, [SeriesId]>> = Vec::new();
        for m in matchers.iter().filter(|m| !m.matches_empty()) {
            let list = self.matching(m);
            if list.is_empty() {
                return Some(Vec::new());
            }
            lists.push(list);
        }
        lists.sort_by_key(|l| l.len());
        let mut lists = lists.into_iter();
        let mut out = lists.next()?.into_owned();
        for list in lists {
            out = intersect(&out, &list);
        }
        Some(out)
    }

    fn matching(&self, m: &Matcher) -> Cow<'_, [SeriesId]> {
        let Some(values) = self.map.get(m.name.as_str()) else {
            return Cow::Borrowed(&[]);
        };
        if m.op == MatchOp::Equal {
            return values
                .get(m.value.as_str())
                .map_or(Cow::Borrowed(&[]), |l| Cow::Borrowed(l.as_slice()));
        }
        let mut union: Vec<SeriesId> = values
            .iter()
            .filter(|(v, _)| m.matches(v))
            .flat_map(|(_, ids)| ids.iter().copied())
            .collect();
        // A series has one value per name, so the lists are disjoint: no dedup needed.
        union.sort_unstable();
        Cow::Owned(union)
    }

    /// Every label name with the ids of its series, by name.
    pub(super) fn names(&self) -> impl Iterator<Item = (&str, impl Iterator<Item = &[SeriesId]>)> {
        self.map
            .iter()
            .map(|(n, values)| (&**n, values.values().map(Vec::as_slice)))
    }

    /// The values of `name` with the ids of their series, by value.
    pub(super) fn values(&self, name: &str) -> impl Iterator<Item = (&str, &[SeriesId])> {
        self.map
            .get(name)
            .into_iter()
            .flat_map(|values| values.iter().map(|(v, ids)| (&**v, ids.as_slice())))
    }
}

fn insert_sorted(ids: &mut Vec<SeriesId>, id: SeriesId) {
    match ids.last() {
        Some(&last) if last >= id => {
            if let Err(pos) = ids.binary_search(&id) {
                ids.insert(pos, id);
            }
        }
        _ => ids.push(id),
    }
}

/// Intersects two ascending lists.
pub(super) fn intersect(a: &[SeriesId], b: &[SeriesId]) -> Vec<SeriesId> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::with_capacity(a.len().min(b.len()));
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(series: &[&[(&str, &str)]]) -> (Postings, Vec<SeriesLabels>) {
        let mut postings = Postings::default();
        let labels = series
            .iter()
            .enumerate()
            .map(|(id, pairs)| {
                postings.add(id as SeriesId, pairs.iter().copied());
                SeriesLabels::from_pairs(pairs.iter().copied())
            })
            .collect();
        (postings, labels)
    }

    fn m(name: &str, op: MatchOp, value: &str) -> Matcher {
        Matcher::new(name, op, value).unwrap()
    }

    #[test]
    fn equal_and_regex_matchers_intersect_their_postings() {
        let (p, _) = index(&[
            &[("__name__", "up"), ("job", "api")],
            &[("__name__", "up"), ("job", "db")],
            &[("__name__", "requests"), ("job", "api")],
        ]);
        let up_api = [
            m("__name__", MatchOp::Equal, "up"),
            m("job", MatchOp::Regex, "a.*"),
        ];
        assert_eq!(p.candidates(&up_api), Some(vec![0]));
        assert_eq!(
            p.candidates(&[m("job", MatchOp::Regex, "api|db")]),
            Some(vec![0, 1, 2])
        );
        assert_eq!(
            p.candidates(&[m("job", MatchOp::NotEqual, "")]),
            Some(vec![0, 1, 2])
        );
        assert_eq!(
            p.candidates(&[m("job", MatchOp::Equal, "nope")]),
            Some(vec![])
        );
    }

    #[test]
    fn matchers_that_match_empty_do_not_narrow() {
        let (p, _) = index(&[&[("__name__", "up")]]);
        assert_eq!(p.candidates(&[m("job", MatchOp::Equal, "")]), None);
        assert_eq!(p.candidates(&[m("job", MatchOp::NotEqual, "x")]), None);
        assert_eq!(p.candidates(&[m("job", MatchOp::Regex, "x|")]), None);
        assert_eq!(p.candidates(&[]), None);
    }

    #[test]
    fn removing_series_drops_empty_values_and_names() {
        let (mut p, labels) = index(&[&[("job", "api"), ("x", "1")], &[("job", "api")]]);
        p.remove(&[(0, labels[0].clone())]);
        assert_eq!(
            p.candidates(&[m("job", MatchOp::Equal, "api")]),
            Some(vec![1])
        );
        assert_eq!(p.names().map(|(n, _)| n).collect::<Vec<_>>(), vec!["job"]);
        assert_eq!(p.values("x").count(), 0);
    }

    #[test]
    fn intersect_keeps_common_ids_in_order() {
        assert_eq!(intersect(&[1, 3, 5, 7], &[2, 3, 4, 7, 9]), vec![3, 7]);
        assert_eq!(intersect(&[], &[1]), Vec::<SeriesId>::new());
    }
}
