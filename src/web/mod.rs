//! Embedded web UIs, served the way nginx serves a built frontend, for any role: the proxy's
//! storefront (`assets/storefront/`) today, the monitor's dashboard next.
//!
//! - `try_files $uri /index.html`: paths whose last segment has no extension get index.html;
//! - content types from file names; ETag and Last-Modified with 304 revalidation;
//! - gzip and brotli bodies compressed at build time (`build.rs`), picked by Accept-Encoding;
//! - a year of `immutable` caching only for names that carry their own content's hash
//!   (`app.3f9a2c1b.js`, checked against the file), `no-cache` for everything else.
//!
//! [`Site::answer`] decides the whole response from the method, path and request headers;
//! each role writes it with its own server library.

mod hashed;

use std::collections::HashMap;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, header};
use rust_embed::RustEmbed;

use crate::envelope::Code;

/// Every UI, embedded from `assets/`.
#[derive(RustEmbed)]
#[folder = "assets/"]
struct Embedded;

/// The gzip (`.gz`) and brotli (`.br`) bodies `build.rs` made of the text files in
/// `assets/`, under the same relative paths; only those smaller than the original exist.
#[derive(RustEmbed)]
#[folder = "$OUT_DIR/precompressed/"]
struct Precompressed;

/// One file, ready to send.
#[derive(Debug)]
pub struct Asset {
    pub body: Bytes,
    pub gzip: Option<Bytes>,
    pub brotli: Option<Bytes>,
    pub content_type: HeaderValue,
    pub etag: HeaderValue,
    pub last_modified: Option<HeaderValue>,
    pub cache_control: HeaderValue,
}

/// Which body to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Gzip,
    Brotli,
}

impl Encoding {
    /// The `Content-Encoding` value, if any.
    pub fn header(self) -> Option<&'static str> {
        match self {
            Encoding::Identity => None,
            Encoding::Gzip => Some("gzip"),
            Encoding::Brotli => Some("br"),
        }
    }
}

impl Asset {
    /// Picks the smallest body the client accepts.
    pub fn negotiate(&self, accept_encoding: &str) -> (Encoding, &Bytes) {
        let accepts = |name: &str| {
            accept_encoding.split(',').any(|part| {
                let mut it = part.split(';');
                let coding = it.next().unwrap_or("").trim();
                let refused = it.any(|p| {
                    p.trim()
                        .strip_prefix("q=")
                        .and_then(|q| q.trim().parse::<f32>().ok())
                        == Some(0.0)
                });
                coding.eq_ignore_ascii_case(name) && !refused
            })
        };
        match (&self.brotli, &self.gzip) {
            (Some(br), _) if accepts("br") => (Encoding::Brotli, br),
            (_, Some(gz)) if accepts("gzip") => (Encoding::Gzip, gz),
            _ => (Encoding::Identity, &self.body),
        }
    }

    /// Tells whether the client's cached copy is current (If-None-Match, else
    /// If-Modified-Since).
    fn not_modified(&self, request: &HeaderMap) -> bool {
        let text = |name| {
            request
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
        };
        let etag = self.etag.to_str().unwrap_or_default();
        if let Some(tags) = text(header::IF_NONE_MATCH) {
            return tags.split(',').any(|t| t.trim() == etag || t.trim() == "*");
        }
        let modified = self.last_modified.as_ref().and_then(|m| m.to_str().ok());
        text(header::IF_MODIFIED_SINCE)
            .zip(modified)
            .is_some_and(|(since, modified)| {
                httpdate::parse_http_date(since).ok() >= httpdate::parse_http_date(modified).ok()
            })
    }
}

/// What to answer a request for a UI file.
#[derive(Debug)]
pub enum Answer {
    /// A file (200) or a confirmation of the client's copy (304, empty body).
    File {
        status: u16,
        headers: Vec<(header::HeaderName, HeaderValue)>,
        body: Bytes,
    },
    /// An error for the envelope: C007 (no such file) or C008 (not GET or HEAD).
    Error(Code),
}

/// One UI: the files of one folder of `assets/`, by URL path ("/index.html").
pub struct Site {
    files: HashMap<String, Asset>,
}

/// Worth compressing: text types.
fn is_text(content_type: &str) -> bool {
    content_type.starts_with("text/")
        || content_type.contains("javascript")
        || content_type.contains("json")
        || content_type.contains("svg")
        || content_type.contains("xml")
}

impl Site {
    /// Loads the UI in `assets/<folder>/`. Nothing is compressed here: that was done once,
    /// when the binary was built.
    pub fn load(folder: &str) -> Self {
        let prefix = format!("{folder}/");
        let files = Embedded::iter()
            .filter_map(|path| {
                let url = format!("/{}", path.strip_prefix(prefix.as_str())?);
                let asset = load_asset(&path)?;
                Some((url, asset))
            })
            .collect();
        Site { files }
    }

    /// Returns the file for a request path: the file itself, or index.html for SPA routes
    /// (paths whose last segment has no extension). `None` is a 404.
    pub fn lookup(&self, path: &str) -> Option<&Asset> {
        let path = if path == "/" { "/index.html" } else { path };
        if let Some(asset) = self.files.get(path) {
            return Some(asset);
        }
        let last = path.rsplit('/').next().unwrap_or("");
        if last.contains('.') {
            None
        } else {
            self.files.get("/index.html")
        }
    }

    /// Decides the whole answer to a request for `path` (HEAD gets GET's headers; the
    /// caller leaves the body out).
    pub fn answer(&self, method: &Method, path: &str, request: &HeaderMap) -> Answer {
        if method != Method::GET && method != Method::HEAD {
            return Answer::Error(Code::C008);
        }
        let Some(asset) = self.lookup(path) else {
            return Answer::Error(Code::C007);
        };
        let mut headers = vec![
            (header::ETAG, asset.etag.clone()),
            (header::CACHE_CONTROL, asset.cache_control.clone()),
        ];
        if let Some(modified) = &asset.last_modified {
            headers.push((header::LAST_MODIFIED, modified.clone()));
        }
        if asset.not_modified(request) {
            return Answer::File {
                status: 304,
                headers,
                body: Bytes::new(),
            };
        }
        let accept = request
            .get(header::ACCEPT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let (encoding, body) = asset.negotiate(accept);
        headers.push((header::CONTENT_TYPE, asset.content_type.clone()));
        if asset.gzip.is_some() || asset.brotli.is_some() {
            headers.push((header::VARY, HeaderValue::from_static("Accept-Encoding")));
        }
        if let Some(coding) = encoding.header() {
            headers.push((header::CONTENT_ENCODING, HeaderValue::from_static(coding)));
        }
        Answer::File {
            status: 200,
            headers,
            body: body.clone(),
        }
    }
}

impl Answer {
    /// Writes the answer as an HTTP response (HEAD without a body; errors in the wire
    /// envelope), for roles served by a `http`-typed server such as axum.
    pub fn into_response(self, method: &Method) -> http::Response<Bytes> {
        let (status, headers, body) = match self {
            Answer::File {
                status,
                headers,
                body,
            } => (status, headers, body),
            Answer::Error(code) => {
                let (status, _, _) = code.parts();
                let headers = vec![(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )];
                (status, headers, crate::envelope::ErrorBody::json(code))
            }
        };
        let mut headers = headers;
        if status == 200 {
            // HEAD answers GET's length without the body.
            headers.push((header::CONTENT_LENGTH, HeaderValue::from(body.len())));
        }
        let body = if method == Method::HEAD {
            Bytes::new()
        } else {
            body
        };
        let mut response = http::Response::new(body);
        *response.status_mut() =
            http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
        response.headers_mut().extend(headers);
        response
    }
}

/// Wraps embedded data without copying it when it lives in the binary (release builds);
/// debug builds read the files from disk, and those bytes are moved in.
fn shared_bytes(data: std::borrow::Cow<'static, [u8]>) -> Bytes {
    match data {
        std::borrow::Cow::Borrowed(bytes) => Bytes::from_static(bytes),
        std::borrow::Cow::Owned(bytes) => Bytes::from(bytes),
    }
}

/// Reads one embedded file with its precompressed bodies.
fn load_asset(path: &str) -> Option<Asset> {
    let file = Embedded::get(path)?;
    let body = shared_bytes(file.data);
    let mime = file.metadata.mimetype();
    let content_type = if mime.starts_with("text/") || mime.contains("javascript") {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_owned()
    };
    let precompressed = |ext: &str| {
        is_text(&content_type)
            .then(|| Precompressed::get(&format!("{path}.{ext}")))
            .flatten()
            .map(|f| shared_bytes(f.data))
    };
    let hash = file.metadata.sha256_hash();
    let etag = format!("\"{}\"", hashed::hex(&hash[..12]));
    let last_modified = file.metadata.last_modified().map(|secs| {
        httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
    });
    let cache_control = if hashed::names_its_content(path, &hash) {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    Some(Asset {
        gzip: precompressed("gz"),
        brotli: precompressed("br"),
        body,
        content_type: HeaderValue::from_str(&content_type).ok()?,
        etag: HeaderValue::from_str(&etag).ok()?,
        last_modified: last_modified.and_then(|m| HeaderValue::from_str(&m).ok()),
        cache_control: HeaderValue::from_static(cache_control),
    })
}

/// Routes `/api` and `/actuator` paths to `api` and every other path to the site, as the proxy
/// routes them: for a process that serves the API without the proxy (`app.storefront`, on in
/// the demo).
pub fn beside_api(api: axum::Router, site: Site) -> axum::Router {
    use axum::response::IntoResponse;
    use tower::ServiceExt;
    let site = std::sync::Arc::new(site);
    axum::Router::new().fallback(move |request: axum::extract::Request| {
        let (api, site) = (api.clone(), site.clone());
        async move {
            let path = request.uri().path();
            let under = |prefix: &str| {
                path.strip_prefix(prefix)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            };
            if under("/api") || under("/actuator") {
                return match api.oneshot(request).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                };
            }
            site.answer(request.method(), path, request.headers())
                .into_response(request.method())
                .map(axum::body::Body::from)
                .into_response()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site() -> Site {
        Site::load("storefront")
    }

    #[test]
    fn spa_routes_get_index_and_missing_files_do_not() {
        let site = site();
        let index = site.lookup("/").expect("index");
        assert!(
            index
                .content_type
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        assert_eq!(index.cache_control, "no-cache");
        assert!(std::ptr::eq(site.lookup("/mypage").expect("spa"), index));
        assert!(std::ptr::eq(site.lookup("/coupon/19").expect("spa"), index));
        assert!(site.lookup("/missing.js").is_none());
    }

    #[test]
    fn only_names_carrying_their_content_hash_are_cached_for_a_year() {
        let site = site();
        let hashed: Vec<_> = site
            .files
            .iter()
            .filter(|(_, a)| a.cache_control.to_str().unwrap().contains("immutable"))
            .map(|(p, _)| p.clone())
            .collect();
        assert!(!hashed.is_empty(), "the storefront has hashed assets");
        for path in hashed {
            assert!(path.starts_with("/assets/"), "{path}");
        }
    }

    #[test]
    fn encodings_follow_accept_encoding_and_were_made_at_build_time() {
        let site = site();
        let index = site.lookup("/").expect("index");
        assert!(index.gzip.is_some() && index.brotli.is_some());
        assert_eq!(index.negotiate("gzip, deflate, br").0, Encoding::Brotli);
        assert_eq!(index.negotiate("gzip").0, Encoding::Gzip);
        assert_eq!(index.negotiate("br;q=0, gzip").0, Encoding::Gzip);
        assert_eq!(index.negotiate("").0, Encoding::Identity);
        let (_, body) = index.negotiate("gzip");
        let mut plain = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut plain)
            .expect("gunzip");
        assert_eq!(plain, index.body);
    }

    /// Vendored libraries (`assets/*/vendor/<lib>/`) stay as published: every file listed in
    /// their SHA256SUMS has that hash, and every vendored file is listed.
    #[test]
    fn vendored_files_match_their_pinned_checksums() {
        let sums: Vec<_> = Embedded::iter()
            .filter(|p| p.contains("/vendor/") && p.ends_with("/SHA256SUMS"))
            .collect();
        assert!(!sums.is_empty(), "the dashboard vendors uPlot");
        for sums_path in sums {
            let dir = sums_path.trim_end_matches("SHA256SUMS");
            let text = Embedded::get(&sums_path).expect("sums").data;
            let text = std::str::from_utf8(&text).expect("utf-8").to_owned();
            let mut listed = Vec::new();
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let (hash, name) = line.split_once("  ").expect("sha256sum format");
                let path = format!("{dir}{name}");
                let file = Embedded::get(&path).unwrap_or_else(|| panic!("{path} is vendored"));
                assert_eq!(
                    hashed::hex(&file.metadata.sha256_hash()),
                    hash,
                    "{path} differs from the published file"
                );
                listed.push(path);
            }
            for path in Embedded::iter().filter(|p| p.starts_with(dir)) {
                let own = ["SHA256SUMS", "VERSION"].iter().any(|f| path.ends_with(f));
                assert!(
                    own || listed.contains(&path.to_string()),
                    "{path} is not in {sums_path}"
                );
            }
        }
    }

    #[test]
    fn answers_304_to_a_current_copy_and_refuses_other_methods() {
        let site = site();
        let Answer::File { headers, .. } = site.answer(&Method::GET, "/", &HeaderMap::new()) else {
            panic!("index");
        };
        let etag = headers
            .iter()
            .find(|(n, _)| n == header::ETAG)
            .unwrap()
            .1
            .clone();
        let mut request = HeaderMap::new();
        request.insert(header::IF_NONE_MATCH, etag);
        assert!(matches!(
            site.answer(&Method::GET, "/", &request),
            Answer::File { status: 304, .. }
        ));
        assert!(matches!(
            site.answer(&Method::POST, "/", &HeaderMap::new()),
            Answer::Error(Code::C008)
        ));
        assert!(matches!(
            site.answer(&Method::GET, "/nope.css", &HeaderMap::new()),
            Answer::Error(Code::C007)
        ));
    }
}
