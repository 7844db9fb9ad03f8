//! bcrypt password hashing, run off the async runtime; hashes are `$2a$` like the original's.

use std::sync::OnceLock;

use anyhow::Context;

/// Longest password bcrypt can take in full, in UTF-8 bytes.
pub const MAX_PASSWORD_BYTES: usize = 72;

/// Hashes a password with the given cost on a blocking thread.
pub async fn hash(password: String, cost: u32) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || hash_blocking(&password, cost))
        .await
        .context("password hashing task failed")?
}

/// Hashes on the current thread (for tools that hash many in parallel themselves).
pub fn hash_blocking(password: &str, cost: u32) -> anyhow::Result<String> {
    let parts = bcrypt::hash_with_result(password, cost).context("failed to hash password")?;
    Ok(parts.format_for_version(bcrypt::Version::TwoA))
}

/// Checks a password against a stored hash on a blocking thread.
///
/// With no hash (unknown user) it still spends the time of one check, so response time
/// does not tell which e-mail addresses exist.
pub async fn verify(password: String, hash_opt: Option<String>) -> anyhow::Result<bool> {
    tokio::task::spawn_blocking(move || match hash_opt {
        Some(hash) => bcrypt::verify(&password, &hash).unwrap_or(false),
        None => {
            let _ = bcrypt::verify(&password, dummy_hash());
            false
        }
    })
    .await
    .context("password check task failed")
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_blocking("fastpick-timing-equaliser", 10).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_2a_and_verify() {
        let h = hash("password123".into(), 4).await.expect("hashes");
        assert!(h.starts_with("$2a$04$"), "{h}");
        assert!(
            verify("password123".into(), Some(h.clone()))
                .await
                .expect("runs")
        );
        assert!(!verify("password124".into(), Some(h)).await.expect("runs"));
        assert!(!verify("x".into(), None).await.expect("runs"));
    }
}
