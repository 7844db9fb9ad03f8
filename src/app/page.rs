//! Paging as Spring Data does it, as the original service did: lenient `page`/`size`/`sort`
//! parsing and the `PageImpl` JSON the frontend reads.

use serde::Serialize;
use utoipa::ToSchema;

use crate::app::extract::QueryParams;

/// Largest page size; bigger requests are clamped.
pub const MAX_PAGE_SIZE: i64 = 2000;
/// Page size when none (or nonsense) is given.
pub const DEFAULT_PAGE_SIZE: i64 = 10;

/// A parsed page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub page: i64,
    pub size: i64,
    pub sorted: bool,
}

impl PageRequest {
    /// Parses leniently: a bad or negative page is 0, a bad or small size is 10, a big one 2000.
    pub fn from_query(params: &QueryParams) -> Self {
        let page = params
            .get("page")
            .and_then(|p| p.parse::<i32>().ok())
            .map_or(0, |p| i64::from(p.max(0)));
        let size = params
            .get("size")
            .and_then(|s| s.parse::<i32>().ok())
            .map_or(DEFAULT_PAGE_SIZE, i64::from);
        let size = if size < 1 {
            DEFAULT_PAGE_SIZE
        } else {
            size.min(MAX_PAGE_SIZE)
        };
        PageRequest {
            page,
            size,
            sorted: params.has_value("sort"),
        }
    }

    /// Returns the row offset of the page.
    pub fn offset(&self) -> i64 {
        self.page * self.size
    }
}

/// Spring's `Sort` as serialised.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SortInfo {
    pub empty: bool,
    pub sorted: bool,
    pub unsorted: bool,
}

/// Spring's `Pageable` as serialised.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PageableInfo {
    pub page_number: i64,
    pub page_size: i64,
    pub sort: SortInfo,
    pub offset: i64,
    pub paged: bool,
    pub unpaged: bool,
}

/// A page of results in Spring Data's `PageImpl` JSON shape (all 11 keys).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    pub content: Vec<T>,
    pub pageable: PageableInfo,
    pub last: bool,
    pub total_pages: i64,
    pub total_elements: i64,
    pub size: i64,
    pub number: i64,
    pub sort: SortInfo,
    pub first: bool,
    pub number_of_elements: usize,
    pub empty: bool,
}

impl<T> Page<T> {
    /// Builds the page; like `PageImpl`, a short non-empty last page fixes up the total.
    pub fn new(content: Vec<T>, req: PageRequest, count: i64) -> Self {
        let len = content.len() as i64;
        let total = if len > 0 && req.offset() + req.size > count {
            req.offset() + len
        } else {
            count
        };
        let total_pages = (total + req.size - 1) / req.size;
        let sort = SortInfo {
            empty: !req.sorted,
            sorted: req.sorted,
            unsorted: !req.sorted,
        };
        Page {
            number_of_elements: content.len(),
            empty: content.is_empty(),
            content,
            pageable: PageableInfo {
                page_number: req.page,
                page_size: req.size,
                sort: sort.clone(),
                offset: req.offset(),
                paged: true,
                unpaged: false,
            },
            last: req.page + 1 >= total_pages,
            total_pages,
            total_elements: total,
            size: req.size,
            number: req.page,
            sort,
            first: req.page == 0,
        }
    }

    /// Returns an empty page for the request (a count of zero skips the content query).
    pub fn empty(req: PageRequest) -> Self {
        Page::new(Vec::new(), req, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(query: &str) -> PageRequest {
        PageRequest::from_query(&QueryParams::parse(query))
    }

    #[test]
    fn page_and_size_are_clamped_like_spring() {
        let cases = [
            ("", 0, 10),
            ("page=2&size=5", 2, 5),
            ("page=-3&size=0", 0, 10),
            ("page=abc&size=xyz", 0, 10),
            ("page=99999999999&size=5000", 0, 2000),
            ("page= 1&size=-1", 0, 10),
            ("page=2147483647&size=2000", 2147483647, 2000),
        ];
        for (query, page, size) in cases {
            let r = req(query);
            assert_eq!((r.page, r.size), (page, size), "query {query:?}");
        }
        assert!(req("sort=id,desc").sorted);
        assert!(!req("sort=").sorted);
    }

    #[test]
    fn totals_and_flags_follow_page_impl() {
        let r = req("page=0&size=10");
        let p = Page::new(vec![1, 2, 3], r, 3);
        assert_eq!(
            (p.total_elements, p.total_pages, p.last, p.first),
            (3, 1, true, true)
        );
        let r = req("page=1&size=2");
        let p = Page::new(vec![3, 4], r, 5);
        assert_eq!((p.total_pages, p.last, p.number_of_elements), (3, false, 2));
        let p: Page<i32> = Page::empty(req("page=5"));
        assert_eq!(
            (p.total_elements, p.total_pages, p.last, p.empty),
            (0, 0, true, true)
        );
        // A stale count smaller than what was found is corrected from the content.
        let p = Page::new(vec![1, 2], req("page=1&size=10"), 3);
        assert_eq!(p.total_elements, 12);
    }
}
