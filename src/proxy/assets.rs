//! The web UI, embedded at build time from `assets/` and served as nginx served the built
//! frontend: `try_files $uri /index.html` (SPA routes get index.html), content types from the
//! file name, ETag and Last-Modified with 304 revalidation, gzip or brotli for text when the
//! client accepts it, and a year of caching for content-hashed file names (`index-5d2f8a91.js`).

use std::collections::HashMap;
use std::io::Write;

use bytes::Bytes;
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "assets/"]
struct Embedded;

/// One file, ready to send.
#[derive(Debug)]
pub struct Asset {
    pub body: Bytes,
    pub gzip: Option<Bytes>,
    pub brotli: Option<Bytes>,
    pub content_type: String,
    pub etag: String,
    pub last_modified: Option<String>,
    pub cache_control: &'static str,
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
}

/// Every embedded file by its URL path ("/index.html").
pub struct Assets {
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

/// Tells whether a file name carries a content hash (`name-[hash].ext`, as Vite writes).
pub fn is_hashed(path: &str) -> bool {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = file.split('.').next().unwrap_or(file);
    stem.rsplit_once('-').is_some_and(|(_, hash)| {
        hash.len() >= 8 && hash.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

fn gzip(data: &[u8]) -> Option<Bytes> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(data).ok()?;
    enc.finish().ok().map(Bytes::from)
}

fn brotli(data: &[u8]) -> Option<Bytes> {
    let mut out = Vec::new();
    {
        // A window no larger than the file (brotli's least is 2^10): the encoder's memory
        // follows the window, and a 4 MiB one for a 1 KiB file would stay with the process.
        let window = data
            .len()
            .max(1024)
            .next_power_of_two()
            .trailing_zeros()
            .min(22);
        let mut enc = brotli::CompressorWriter::new(&mut out, 4096, 11, window);
        enc.write_all(data).ok()?;
    }
    Some(Bytes::from(out))
}

impl Assets {
    /// Loads every embedded file, compressing text once (kept only when smaller).
    pub fn load() -> Self {
        let mut files = HashMap::new();
        for path in Embedded::iter() {
            let Some(file) = Embedded::get(&path) else {
                continue;
            };
            let body = Bytes::from(file.data.into_owned());
            let content_type = file.metadata.mimetype().to_owned();
            let content_type =
                if content_type.starts_with("text/") || content_type.contains("javascript") {
                    format!("{content_type}; charset=utf-8")
                } else {
                    content_type
                };
            let smaller = |c: Option<Bytes>| c.filter(|c| c.len() < body.len());
            let (gzip, brotli) = if is_text(&content_type) && body.len() > 256 {
                (smaller(gzip(&body)), smaller(brotli(&body)))
            } else {
                (None, None)
            };
            let hash = file.metadata.sha256_hash();
            let etag = format!(
                "\"{}\"",
                hash[..12]
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            );
            let last_modified = file.metadata.last_modified().map(|secs| {
                httpdate::fmt_http_date(
                    std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs),
                )
            });
            let cache_control = if is_hashed(&path) {
                "public, max-age=31536000, immutable"
            } else {
                "no-cache"
            };
            files.insert(
                format!("/{path}"),
                Asset {
                    body,
                    gzip,
                    brotli,
                    content_type,
                    etag,
                    last_modified,
                    cache_control,
                },
            );
        }
        Assets { files }
    }

    /// The file for a request path: the file itself, or index.html for SPA routes (paths
    /// whose last segment has no extension). `None` is a 404.
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashed_names_are_recognised() {
        assert!(is_hashed("/assets/index-5d2f8a91.js"));
        assert!(is_hashed("/assets/vendor-Bq3x_9aZ.css"));
        assert!(!is_hashed("/index.html"));
        assert!(!is_hashed("/favicon.svg"));
        assert!(!is_hashed("/assets/my-app.js"));
    }

    #[test]
    fn spa_routes_get_index_and_missing_files_do_not() {
        let assets = Assets::load();
        let index = assets.lookup("/").expect("index");
        assert!(index.content_type.starts_with("text/html"));
        assert_eq!(index.cache_control, "no-cache");
        assert!(std::ptr::eq(assets.lookup("/mypage").expect("spa"), index));
        assert!(std::ptr::eq(
            assets.lookup("/coupons/19").expect("spa"),
            index
        ));
        assert!(assets.lookup("/missing.js").is_none());
        let js = assets.lookup("/assets/index-5d2f8a91.js").expect("js");
        assert!(
            js.content_type.contains("javascript"),
            "{}",
            js.content_type
        );
        assert!(js.cache_control.contains("immutable"));
    }

    #[test]
    fn encodings_follow_accept_encoding() {
        let assets = Assets::load();
        let js = assets.lookup("/assets/index-5d2f8a91.js").expect("js");
        assert!(js.gzip.is_some() && js.brotli.is_some());
        assert_eq!(js.negotiate("gzip, deflate, br").0, Encoding::Brotli);
        assert_eq!(js.negotiate("gzip").0, Encoding::Gzip);
        assert_eq!(js.negotiate("br;q=0, gzip").0, Encoding::Gzip);
        assert_eq!(js.negotiate("").0, Encoding::Identity);
        let (_, body) = js.negotiate("gzip");
        let mut plain = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut plain)
            .expect("gunzip");
        assert_eq!(plain, js.body);
    }
}
