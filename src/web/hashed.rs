//! Content-hashed file names: a name may be cached for a year only when the hash it carries
//! is its own content's, so a name that merely looks hashed (`react-dashboard.js`) never is.

/// Shortest hash part that counts (hex digits of the content's SHA-256).
const MIN_HASH_DIGITS: usize = 8;

/// Writes bytes as lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Tells whether the file name's hash part (`name.<hash>.ext` or `name-<hash>.ext`) is a
/// prefix, at least 8 hex digits long, of the hex SHA-256 of the file's content.
pub fn names_its_content(path: &str, sha256: &[u8; 32]) -> bool {
    let file = path.rsplit('/').next().unwrap_or(path);
    let Some((stem, _ext)) = file.rsplit_once('.') else {
        return false;
    };
    let Some(claimed) = stem.rsplit(['.', '-']).next().filter(|h| *h != stem) else {
        return false;
    };
    claimed.len() >= MIN_HASH_DIGITS
        && claimed.bytes().all(|b| b.is_ascii_hexdigit())
        && hex(sha256).starts_with(&claimed.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(byte: u8) -> [u8; 32] {
        [byte; 32]
    }

    #[test]
    fn a_name_counts_only_with_its_own_content_hash() {
        let content = sha(0xab);
        assert!(names_its_content("/assets/app.abababab.js", &content));
        assert!(names_its_content("/assets/app-ABABABABAB.css", &content));
        assert!(!names_its_content("/assets/app.abababac.js", &content));
        assert!(
            !names_its_content("/assets/app.ababab.js", &content),
            "too short"
        );
        assert!(!names_its_content("/react-dashboard.js", &content));
        assert!(!names_its_content("/index.html", &content));
        assert!(!names_its_content("/abababab.js", &content), "no name part");
        assert!(!names_its_content("/assets/noext", &content));
    }
}
