//! The list's SQL at 1,000,000 coupons: a keyword probe, the page, and a bounded count.
//!
//! Every plan is index-driven (see `cargo bench --bench search`, which prints EXPLAIN
//! ANALYZE of each query for the scenario's keywords and filters):
//! - a keyword prefix is a byte range on `idx_coupon_keyword_prefix` (text_pattern_ops);
//! - READY, CLOSED and ISSUING use `idx_coupon_start`, `idx_coupon_end` and the boolean index
//!   `idx_coupon_exhausted`; the sold-out test is written `(issued >= total) is true/false`
//!   so the planner reads that index's statistics instead of guessing a third of the table;
//! - the page walks the primary key backwards and stops after `size + 1` rows.
//!
//! The queries that compare with "now" are not kept as prepared statements: a generic plan
//! would guess the time filters' selectivity; each execution is planned with its values.

use chrono::NaiveDateTime;
use sqlx::{PgPool, Postgres, QueryBuilder};

use crate::app::error::{ApiError, FieldError, Result};
use crate::app::extract::{QueryParams, enum_param};
use crate::app::page::PageRequest;
use crate::app::validate::NUL_REASON;
use crate::domain::search_words;

/// Longest search input accepted, in characters after trimming.
pub const MAX_SEARCH_CHARS: usize = 50;

/// The list's `filterType`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FilterType {
    #[default]
    All,
    Ready,
    Issuing,
    Closed,
}

impl FilterType {
    /// Every filter, in the contract's order.
    pub const ALL: [FilterType; 4] = [
        FilterType::All,
        FilterType::Ready,
        FilterType::Issuing,
        FilterType::Closed,
    ];

    fn parse(s: &str) -> Option<Self> {
        match s {
            "ALL" => Some(FilterType::All),
            "READY" => Some(FilterType::Ready),
            "ISSUING" => Some(FilterType::Issuing),
            "CLOSED" => Some(FilterType::Closed),
            _ => None,
        }
    }

    /// Returns the wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            FilterType::All => "ALL",
            FilterType::Ready => "READY",
            FilterType::Issuing => "ISSUING",
            FilterType::Closed => "CLOSED",
        }
    }
}

/// A parsed list request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchQuery {
    /// Normalised words, each to prefix-match one keyword; sorted, without repeats.
    pub words: Vec<String>,
    pub filter: FilterType,
    pub page: PageRequest,
}

impl SearchQuery {
    /// Parses `search`, `filterType`, `page`, `size` and `sort`; bad values are reported together.
    pub fn parse(params: &QueryParams) -> Result<SearchQuery> {
        let mut errors = Vec::new();
        let search = params.get("search").unwrap_or_default();
        if search.trim().chars().count() > MAX_SEARCH_CHARS {
            errors.push(FieldError::new(
                "search",
                search.clone(),
                "검색어는 50자 이내여야 합니다.",
            ));
        } else if search.contains('\0') {
            errors.push(FieldError::new("search", "", NUL_REASON));
        }
        let filter = enum_param(
            params,
            "filterType",
            FilterType::parse,
            "ALL, READY, ISSUING, CLOSED",
        )
        .unwrap_or_else(|e| {
            errors.push(e);
            FilterType::All
        });
        if !errors.is_empty() {
            return Err(ApiError::Invalid(errors));
        }
        let mut words = search_words(&search);
        // Every word must match, so their order does not change the answer (or the cache key).
        words.sort_unstable();
        Ok(SearchQuery {
            words,
            filter,
            page: PageRequest::from_query(params),
        })
    }

    /// The words' byte ranges: `[word, word + U+10FFFF)` covers every keyword it prefixes.
    fn ranges(&self) -> (Vec<String>, Vec<String>) {
        let upper = self
            .words
            .iter()
            .map(|w| format!("{w}{}", char::MAX))
            .collect();
        (self.words.clone(), upper)
    }
}

/// Adds the conditions the page and the count share.
fn push_conditions(qb: &mut QueryBuilder<Postgres>, q: &SearchQuery, now: NaiveDateTime) {
    qb.push(" from tb_coupon c where c.use_status = 'AVAILABLE'");
    // The one status rule (the OpenAPI document's description states it): READY before the
    // period, ISSUING inside it with stock, CLOSED = EXPIRED or EXHAUSTED.
    match q.filter {
        FilterType::All => {}
        FilterType::Ready => {
            qb.push(" and c.start_at > ").push_bind(now);
        }
        FilterType::Issuing => {
            qb.push(" and c.start_at <= ").push_bind(now);
            qb.push(" and c.end_at > ").push_bind(now);
            qb.push(" and (c.issued_quantity >= c.total_quantity) is false");
        }
        FilterType::Closed => {
            qb.push(" and c.start_at <= ").push_bind(now);
            qb.push(" and (c.end_at <= ").push_bind(now);
            qb.push(" or (c.issued_quantity >= c.total_quantity) is true)");
        }
    }
    for word in &q.words {
        // A literal prefix, wildcards included: a byte range, not LIKE.
        let upper = format!("{word}{}", char::MAX);
        qb.push(" and c.id in (select k.coupon_id from tb_coupon_keyword k where k.keyword ~>=~ ");
        qb.push_bind(word.clone())
            .push(" and k.keyword ~<~ ")
            .push_bind(upper)
            .push(")");
    }
}

/// The page: `size + 1` rows from `offset`, newest first (the extra row tells `last`).
pub fn page_query(q: &SearchQuery, now: NaiveDateTime, prefix: &str) -> QueryBuilder<Postgres> {
    let mut qb = QueryBuilder::new(prefix);
    qb.push(
        "select c.id, c.brand, c.title, c.summary, c.total_quantity, c.issued_quantity, \
         c.start_at, c.end_at, c.use_status",
    );
    push_conditions(&mut qb, q, now);
    qb.push(" order by c.id desc limit ")
        .push_bind(q.page.size + 1);
    qb.push(" offset ").push_bind(q.page.offset());
    qb
}

/// Matches counted up to `limit`.
pub fn count_query(
    q: &SearchQuery,
    now: NaiveDateTime,
    limit: i64,
    prefix: &str,
) -> QueryBuilder<Postgres> {
    let mut qb = QueryBuilder::new(prefix);
    qb.push("select count(*) from (select 1");
    push_conditions(&mut qb, q, now);
    qb.push(" limit ").push_bind(limit).push(") matched");
    qb
}

/// Tells whether some word prefixes no keyword at all (then nothing matches); one index
/// probe per word, no time condition, so it stays a prepared statement.
const PROBE_SQL: &str = "select exists (select 1 from unnest($1::text[], $2::text[]) as w(lo, hi)
     where not exists (select 1 from tb_coupon_keyword k where k.keyword ~>=~ w.lo and k.keyword ~<~ w.hi))";

/// A row of the page.
#[derive(Debug, sqlx::FromRow)]
pub struct SummaryRow {
    pub id: i64,
    pub brand: String,
    pub title: String,
    pub summary: Option<String>,
    pub total_quantity: i32,
    pub issued_quantity: i32,
    pub start_at: NaiveDateTime,
    pub end_at: NaiveDateTime,
    pub use_status: String,
}

/// A page of matches and the total to report.
#[derive(Debug)]
pub struct Found {
    pub rows: Vec<SummaryRow>,
    /// Exact while below the count limit; past it, a floor that still puts `last` right.
    pub total: i64,
    /// Some word prefixes no keyword: answered by the probe alone (not worth caching).
    pub unknown_word: bool,
}

/// Which statement a duration belongs to (for the metrics).
#[derive(Debug, Clone, Copy)]
pub enum Statement {
    Probe,
    Page,
    Count,
}

impl Statement {
    /// Returns the metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            Statement::Probe => "probe",
            Statement::Page => "page",
            Statement::Count => "count",
        }
    }
}

/// Runs the search: a probe when there are words, the page, and a count only when the page
/// alone cannot tell the total. `timed` receives each statement's duration.
pub async fn run(
    db: &PgPool,
    q: &SearchQuery,
    now: NaiveDateTime,
    count_limit: i64,
    timed: impl Fn(Statement, std::time::Duration),
) -> Result<Found> {
    if !q.words.is_empty() {
        let started = std::time::Instant::now();
        let (lo, hi) = q.ranges();
        let unmatched: bool = sqlx::query_scalar(PROBE_SQL)
            .bind(lo)
            .bind(hi)
            .fetch_one(db)
            .await?;
        timed(Statement::Probe, started.elapsed());
        if unmatched {
            return Ok(Found {
                rows: Vec::new(),
                total: 0,
                unknown_word: true,
            });
        }
    }
    let started = std::time::Instant::now();
    let mut rows: Vec<SummaryRow> = page_query(q, now, "")
        .build_query_as()
        .persistent(false)
        .fetch_all(db)
        .await?;
    timed(Statement::Page, started.elapsed());
    let size = usize::try_from(q.page.size).unwrap_or(usize::MAX);
    let more = rows.len() > size;
    rows.truncate(size);
    let offset = q.page.offset();
    let known = if more {
        None
    } else if !rows.is_empty() || offset == 0 {
        // The page ends the list: the total is what lies before it plus what it holds.
        Some(offset + rows.len() as i64)
    } else {
        None
    };
    let total = match known {
        Some(total) => total,
        None => {
            // Past the limit the count stops; it still exceeds this page when more follow.
            let limit = count_limit.max(offset + q.page.size + 1);
            let started = std::time::Instant::now();
            let counted: i64 = count_query(q, now, limit, "")
                .build_query_scalar()
                .persistent(false)
                .fetch_one(db)
                .await?;
            timed(Statement::Count, started.elapsed());
            counted
        }
    };
    Ok(Found {
        rows,
        total,
        unknown_word: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(query: &str) -> Result<SearchQuery> {
        SearchQuery::parse(&QueryParams::parse(query))
    }

    #[test]
    fn words_are_normalised_sorted_and_unique() {
        let q =
            parse("search=%20Nike%20%EB%B0%B1%ED%8C%A9+nike+AIR&filterType=ISSUING").expect("ok");
        assert_eq!(q.words, vec!["air", "nike", "백팩"]);
        assert_eq!(q.filter, FilterType::Issuing);
        assert_eq!(
            parse("search=b+a").expect("ok"),
            parse("search=a+b").expect("ok")
        );
    }

    #[test]
    fn bad_search_and_filter_are_reported_together() {
        let long = "x".repeat(MAX_SEARCH_CHARS + 1);
        match parse(&format!("search={long}&filterType=SOON")) {
            Err(ApiError::Invalid(errors)) => assert_eq!(errors.len(), 2),
            other => panic!("expected C001, got {other:?}"),
        }
    }

    #[test]
    fn time_filters_bind_now_and_use_the_indexed_sold_out_test() {
        let now = chrono::NaiveDate::from_ymd_opt(2026, 1, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .expect("valid");
        let mut q = parse("search=nike&filterType=CLOSED").expect("ok");
        let sql = page_query(&q, now, "").into_sql().as_str().to_owned();
        assert!(
            sql.contains("(c.issued_quantity >= c.total_quantity) is true"),
            "{sql}"
        );
        assert!(sql.contains("k.keyword ~>=~ $3"), "{sql}");
        q.filter = FilterType::Issuing;
        let sql = count_query(&q, now, 1000, "explain ")
            .into_sql()
            .as_str()
            .to_owned();
        assert!(sql.starts_with("explain select count(*)"), "{sql}");
        assert!(sql.contains("is false"), "{sql}");
    }
}
