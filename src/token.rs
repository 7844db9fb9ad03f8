//! JWTs: HS256 access and refresh tokens told apart by a `typ` claim (change 5).

use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// What a token may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    Access,
    Refresh,
}

/// The claims we sign: the original's `sub`, `auth`, `iat`, `exp`, plus `typ`, a `jti`, and
/// the user id `uid` (so issuing needs no user lookup; tokens without it are looked up by `sub`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub auth: String,
    pub iat: i64,
    pub exp: i64,
    pub typ: TokenKind,
    pub jti: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<i64>,
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    Invalid,
    Expired,
}

/// A freshly issued pair; the refresh token's `jti` is what the database keeps.
#[derive(Debug, Clone)]
pub struct TokenPair {
    pub access: String,
    pub refresh: String,
    pub refresh_jti: String,
    pub refresh_exp: i64,
}

/// Signs and verifies tokens with the configured secret.
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    access_ttl: Duration,
    refresh_ttl: Duration,
}

impl TokenKeys {
    /// Makes the keys; the secret's length was checked by the config validation.
    pub fn new(secret: &SecretString, access_ttl: Duration, refresh_ttl: Duration) -> Self {
        let bytes = secret.expose_secret().as_bytes();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(bytes),
            decoding: DecodingKey::from_secret(bytes),
            validation,
            access_ttl,
            refresh_ttl,
        }
    }

    /// How long an access token from `issue_pair` lives.
    pub fn access_ttl(&self) -> Duration {
        self.access_ttl
    }

    /// Issues an access and a refresh token for a user.
    pub fn issue_pair(&self, uid: i64, email: &str, role: &str) -> anyhow::Result<TokenPair> {
        let now = chrono::Utc::now().timestamp();
        let access = self.sign(uid, email, role, TokenKind::Access, now, self.access_ttl)?;
        let refresh_exp = now + secs(self.refresh_ttl);
        let refresh_claims = claims(uid, email, role, TokenKind::Refresh, now, refresh_exp);
        let refresh_jti = refresh_claims.jti.clone();
        let refresh = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &refresh_claims,
            &self.encoding,
        )?;
        Ok(TokenPair {
            access,
            refresh,
            refresh_jti,
            refresh_exp,
        })
    }

    /// Signs an access token with its own lifetime (the load tool's users.csv).
    pub fn access_token(
        &self,
        uid: i64,
        email: &str,
        role: &str,
        ttl: Duration,
    ) -> anyhow::Result<String> {
        let now = chrono::Utc::now().timestamp();
        self.sign(uid, email, role, TokenKind::Access, now, ttl)
    }

    fn sign(
        &self,
        uid: i64,
        email: &str,
        role: &str,
        kind: TokenKind,
        now: i64,
        ttl: Duration,
    ) -> anyhow::Result<String> {
        let claims = claims(uid, email, role, kind, now, now + secs(ttl));
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.encoding,
        )?)
    }

    /// Verifies signature, expiry and kind.
    pub fn verify(&self, token: &str, kind: TokenKind) -> Result<Claims, TokenError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })?;
        if data.claims.typ == kind {
            Ok(data.claims)
        } else {
            Err(TokenError::Invalid)
        }
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 2)
}

fn claims(uid: i64, email: &str, role: &str, typ: TokenKind, iat: i64, exp: i64) -> Claims {
    let jti: u128 = rand::rng().random();
    Claims {
        sub: email.to_owned(),
        auth: format!("ROLE_{role}"),
        iat,
        exp,
        typ,
        jti: format!("{jti:032x}"),
        uid: Some(uid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(secret: &str) -> TokenKeys {
        TokenKeys::new(
            &SecretString::from(secret.to_owned()),
            Duration::from_secs(60),
            Duration::from_secs(600),
        )
    }

    const SECRET: &str = "an-unguessable-secret-of-more-than-32-bytes";

    #[test]
    fn access_and_refresh_are_not_interchangeable() {
        let k = keys(SECRET);
        let pair = k.issue_pair(7, "a@b.c", "USER").expect("issues");
        let access = k
            .verify(&pair.access, TokenKind::Access)
            .expect("access verifies");
        assert_eq!((access.sub.as_str(), access.uid), ("a@b.c", Some(7)));
        assert_eq!(access.auth, "ROLE_USER");
        assert_eq!(
            k.verify(&pair.refresh, TokenKind::Access).unwrap_err(),
            TokenError::Invalid
        );
        assert_eq!(
            k.verify(&pair.access, TokenKind::Refresh).unwrap_err(),
            TokenError::Invalid
        );
        let refresh = k
            .verify(&pair.refresh, TokenKind::Refresh)
            .expect("refresh verifies");
        assert_eq!(refresh.jti, pair.refresh_jti);
    }

    #[test]
    fn tampered_foreign_and_expired_tokens_are_refused() {
        let k = keys(SECRET);
        let pair = k.issue_pair(7, "a@b.c", "USER").expect("issues");
        let mut tampered = pair.access.clone();
        tampered.pop();
        tampered.push(if pair.access.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(
            k.verify(&tampered, TokenKind::Access).unwrap_err(),
            TokenError::Invalid
        );
        let other = keys("another-secret-that-is-also-32-bytes-long");
        assert_eq!(
            other.verify(&pair.access, TokenKind::Access).unwrap_err(),
            TokenError::Invalid
        );
        assert_eq!(
            k.verify("not.a.jwt", TokenKind::Access).unwrap_err(),
            TokenError::Invalid
        );
        let now = chrono::Utc::now().timestamp();
        let old = claims(7, "a@b.c", "USER", TokenKind::Access, now - 100, now - 10);
        let expired = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &old, &k.encoding)
            .expect("encodes");
        assert_eq!(
            k.verify(&expired, TokenKind::Access).unwrap_err(),
            TokenError::Expired
        );
    }
}
