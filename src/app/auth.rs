//! Sign-up, login and refresh-token rotation under /api/v1/auth; what differs from the original
//! service (token types, rotation, password rules) is in the OpenAPI descriptions of these operations.

use axum::extract::{FromRef, FromRequestParts, State};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::routing::post;
use axum::{Json, Router};
use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::ToSchema;

use crate::app::error::{ApiError, Result};
use crate::app::extract::{ApiJson, Validate};
use crate::app::state::AppState;
use crate::app::validate::{NUL_REASON, Rules, is_email};
use crate::envelope::{Envelope, ok};
use crate::password;
use crate::token::TokenKind;

/// Routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/auth/signup", post(signup))
        .route("/api/v1/auth/login", post(login))
        .route("/api/v1/auth/refresh", post(refresh))
}

/// Sign-up body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SignupRequest {
    #[serde(default, deserialize_with = "crate::app::lenient::opt_string")]
    #[schema(value_type = crate::app::openapi::types::Email, required = true)]
    pub email: Option<String>,
    #[serde(default, deserialize_with = "crate::app::lenient::opt_string")]
    #[schema(value_type = crate::app::openapi::types::NewPassword, required = true)]
    pub password: Option<String>,
    #[serde(default, deserialize_with = "crate::app::lenient::opt_string")]
    #[schema(value_type = crate::app::openapi::types::Name, required = true)]
    pub name: Option<String>,
}

/// Login body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    #[serde(default, deserialize_with = "crate::app::lenient::opt_string")]
    #[schema(value_type = crate::app::openapi::types::Email, required = true)]
    pub email: Option<String>,
    /// No length rule: accounts made by the original log in with what they have.
    #[serde(default, deserialize_with = "crate::app::lenient::opt_string")]
    #[schema(value_type = crate::app::openapi::types::NotBlank, required = true)]
    pub password: Option<String>,
}

/// Refresh body: the refresh token from sign-up, login or the last refresh.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefreshRequest {
    #[serde(default, deserialize_with = "crate::app::lenient::opt_string")]
    #[schema(value_type = crate::app::openapi::types::NotBlank, required = true)]
    pub refresh_token: Option<String>,
}

/// The user part of an auth answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserInfo {
    pub id: i64,
    pub email: String,
    pub name: String,
}

/// Tokens and user, as sign-up, login and refresh return them.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthData {
    pub access_token: String,
    pub refresh_token: String,
    #[schema(example = "Bearer")]
    pub grant_type: &'static str,
    pub user: UserInfo,
}

fn check_email(rules: &mut Rules, email: &Option<String>) {
    if let Some(e) = rules.not_blank("email", email, "이메일은 필수 입력값입니다.") {
        if !is_email(e) {
            rules.fail("email", e, "올바른 이메일 형식이 아닙니다.");
        }
        rules.max_chars("email", Some(e), 100);
    }
}

impl Validate for SignupRequest {
    fn validate(&self) -> Vec<crate::envelope::FieldError> {
        let mut rules = Rules::new();
        check_email(&mut rules, &self.email);
        match self.password.as_deref() {
            Some(p) if p.contains('\0') => rules.fail_secret("password", NUL_REASON),
            Some(p) if !p.trim().is_empty() => {
                // Characters, as people and JSON Schema's minLength count them (the original
                // counted UTF-16 units, so four emoji passed there).
                if p.chars().count() < 8 {
                    rules.fail_secret("password", "비밀번호는 최소 8자 이상이어야 합니다.");
                }
                if p.len() > password::MAX_PASSWORD_BYTES {
                    rules.fail_secret("password", "비밀번호는 72바이트(UTF-8) 이하여야 합니다.");
                }
            }
            _ => rules.fail_secret("password", "비밀번호는 필수 입력값입니다."),
        }
        let name = rules.not_blank("name", &self.name, "이름은 필수 입력값입니다.");
        rules.max_chars("name", name, 50);
        rules.finish()
    }
}

impl Validate for LoginRequest {
    fn validate(&self) -> Vec<crate::envelope::FieldError> {
        let mut rules = Rules::new();
        check_email(&mut rules, &self.email);
        if self.password.as_deref().is_none_or(|p| p.trim().is_empty()) {
            rules.fail_secret("password", "비밀번호는 필수 입력값입니다.");
        }
        rules.finish()
    }
}

impl Validate for RefreshRequest {
    fn validate(&self) -> Vec<crate::envelope::FieldError> {
        let mut rules = Rules::new();
        if self
            .refresh_token
            .as_deref()
            .is_none_or(|t| t.trim().is_empty())
        {
            rules.fail_secret("refreshToken", "리프레시 토큰은 필수입니다.");
        }
        rules.finish()
    }
}

/// A user row as the auth handlers need it.
#[derive(Debug, sqlx::FromRow)]
struct UserRow {
    id: i64,
    email: String,
    name: String,
    role: String,
}

// POST /api/v1/auth/signup
#[utoipa::path(post, path = "/api/v1/auth/signup", tag = "auth", request_body = SignupRequest,
    description = "Creates a USER and returns a token pair. The e-mail is stored as sent (no trimming, no lower-casing) and must be unique, compared exactly. \
        Compatibility: the password needs 8 characters (the original counted UTF-16 units) and at most 72 bytes of UTF-8 (the original failed with 500); \
        a racing duplicate is 409 U002 (was 500); a rejected password is never echoed in `errors` (the original echoed it).",
    responses((status = 200, body = Envelope<AuthData>), (status = 400, body = crate::envelope::ErrorBody, description = "C001 invalid input, C002 wrong type"),
        (status = 409, body = crate::envelope::ErrorBody, description = "U002 e-mail taken"), (status = 415, body = crate::envelope::ErrorBody)))]
#[tracing::instrument(level = "debug", skip_all)]
async fn signup(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<SignupRequest>,
) -> Result<Json<Envelope<AuthData>>> {
    // Validation guarantees all three fields are present.
    let (Some(email), Some(password), Some(name)) = (req.email, req.password, req.name) else {
        return Err(ApiError::Internal(anyhow::anyhow!(
            "validated sign-up body lacks a field"
        )));
    };
    let taken: bool = sqlx::query_scalar("select exists(select 1 from tb_user where email = $1)")
        .bind(&email)
        .fetch_one(&state.db)
        .await?;
    if taken {
        return Err(ApiError::EmailTaken);
    }
    let hash = password::hash(password, state.bcrypt_cost).await?;
    let now = state.clock.now();
    let mut tx = state.db.begin().await?;
    // A concurrent sign-up with the same e-mail loses here, not with a 500.
    let user: UserRow = sqlx::query_as(
        "insert into tb_user (created_at, updated_at, email, password, name, role)
         values ($1, $1, $2, $3, $4, 'USER') on conflict do nothing
         returning id, email, name, role",
    )
    .bind(now)
    .bind(&email)
    .bind(&hash)
    .bind(&name)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(ApiError::EmailTaken)?;
    let data = issue_tokens(&state, &mut tx, user, now).await?;
    tx.commit().await?;
    Ok(ok(data))
}

// POST /api/v1/auth/login
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    description = "Returns a new token pair for a known e-mail and password. Passwords are checked against the stored bcrypt hash \
        (hashes written by the original service, `$2a$10$…`, work); the password has no length rule here, as in the original. \
        The access token lasts 30 minutes and the refresh token 7 days by default. Compatibility: tokens now carry a type, \
        so a refresh token is not accepted where an access token is expected (the original accepted it).",
    responses((status = 200, body = Envelope<AuthData>), (status = 400, body = crate::envelope::ErrorBody),
        (status = 401, body = crate::envelope::ErrorBody, description = "A003 wrong e-mail or password")))]
#[tracing::instrument(level = "debug", skip_all)]
async fn login(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Json<Envelope<AuthData>>> {
    let row: Option<(i64, String, String, String, String)> =
        sqlx::query_as("select id, email, name, role, password from tb_user where email = $1")
            .bind(&req.email)
            .fetch_optional(&state.db)
            .await?;
    let hash_opt = row.as_ref().map(|r| r.4.clone());
    let matches = password::verify(req.password.unwrap_or_default(), hash_opt).await?;
    let Some((id, email, name, role, _)) = row.filter(|_| matches) else {
        return Err(ApiError::BadCredentials);
    };
    let user = UserRow {
        id,
        email,
        name,
        role,
    };
    let now = state.clock.now();
    let mut tx = state.db.begin().await?;
    let data = issue_tokens(&state, &mut tx, user, now).await?;
    tx.commit().await?;
    Ok(ok(data))
}

// POST /api/v1/auth/refresh
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    description = "Exchanges a refresh token for a new pair; the old refresh token stops working (rotation, one live refresh token per user). \
        New in FastPick: the original issued refresh tokens but had no operation that took them.",
    responses((status = 200, body = Envelope<AuthData>), (status = 400, body = crate::envelope::ErrorBody),
        (status = 401, body = crate::envelope::ErrorBody, description = "A001 invalid or already used, A002 expired")))]
#[tracing::instrument(level = "debug", skip_all)]
async fn refresh(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<RefreshRequest>,
) -> Result<Json<Envelope<AuthData>>> {
    let token = req.refresh_token.unwrap_or_default();
    let claims = state.tokens.verify(&token, TokenKind::Refresh)?;
    let now = state.clock.now();
    let mut tx = state.db.begin().await?;
    // Locks the user's stored token: of two concurrent refreshes with one token, one wins.
    let user: UserRow = sqlx::query_as(
        "select u.id, u.email, u.name, u.role from tb_refresh_token t join tb_user u on u.id = t.user_id
         where u.email = $1 and t.token = $2 and t.expiry_at > $3 for update of t",
    )
    .bind(&claims.sub)
    .bind(&claims.jti)
    .bind(now)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(ApiError::InvalidToken)?;
    let data = issue_tokens(&state, &mut tx, user, now).await?;
    tx.commit().await?;
    Ok(ok(data))
}

/// Signs a new pair and stores the refresh token's id (one per user, as the schema has it).
async fn issue_tokens(
    state: &AppState,
    conn: &mut PgConnection,
    user: UserRow,
    now: NaiveDateTime,
) -> Result<AuthData> {
    let pair = state.tokens.issue_pair(user.id, &user.email, &user.role)?;
    let expiry = state.clock.local_at(pair.refresh_exp);
    sqlx::query(
        "insert into tb_refresh_token (created_at, updated_at, token, user_id, expiry_at)
         values ($1, $1, $2, $3, $4)
         on conflict (user_id) do update
         set token = excluded.token, updated_at = excluded.updated_at, expiry_at = excluded.expiry_at",
    )
    .bind(now)
    .bind(&pair.refresh_jti)
    .bind(user.id)
    .bind(expiry)
    .execute(conn)
    .await?;
    Ok(AuthData {
        access_token: pair.access,
        refresh_token: pair.refresh,
        grant_type: "Bearer",
        user: UserInfo {
            id: user.id,
            email: user.email,
            name: user.name,
        },
    })
}

/// The user behind a valid access token. Tokens carry the user id, so no lookup is needed;
/// a token without one (older ones) is resolved by its e-mail. A deleted user's token stays
/// valid until it expires, and writes for it fail on the foreign key (401 A001).
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub id: i64,
    pub email: String,
}

/// Returns the token of an `Authorization: Bearer <token>` header; any other form is absent.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .filter(|t| !t.is_empty())
}

/// Verifies the bearer access token of a request.
fn access_claims(parts: &Parts, state: &AppState) -> Result<crate::token::Claims, ApiError> {
    let token = bearer_token(&parts.headers).ok_or(ApiError::Unauthenticated)?;
    Ok(state.tokens.verify(token, TokenKind::Access)?)
}

/// Looks a token's user up by e-mail: (id, role).
async fn lookup(state: &AppState, email: &str) -> Result<(i64, String), ApiError> {
    let row: Option<(i64, String)> =
        sqlx::query_as("select id, role from tb_user where email = $1")
            .bind(email)
            .fetch_optional(&state.db)
            .await?;
    // A valid token for a user that no longer exists is not a valid identity.
    row.ok_or(ApiError::InvalidToken)
}

impl<S> FromRequestParts<S> for AuthUser
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        let claims = access_claims(parts, &state)?;
        let id = match claims.uid {
            Some(id) => id,
            None => lookup(&state, &claims.sub).await?.0,
        };
        Ok(AuthUser {
            id,
            email: claims.sub,
        })
    }
}

/// An authenticated user whose current role (read from the database on every request) is
/// ADMIN; 403 C004 for everyone else.
pub struct AdminUser {
    pub id: i64,
}

impl<S> FromRequestParts<S> for AdminUser
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        let claims = access_claims(parts, &state)?;
        let (id, role) = lookup(&state, &claims.sub).await?;
        if role == "ADMIN" {
            Ok(AdminUser { id })
        } else {
            Err(ApiError::Forbidden)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn only_exact_bearer_prefix_counts() {
        let mut h = HeaderMap::new();
        for (value, expected) in [
            ("Bearer abc", Some("abc")),
            ("bearer abc", None),
            ("Bearer", None),
            ("Bearer ", None),
            ("Basic abc", None),
        ] {
            h.insert(AUTHORIZATION, HeaderValue::from_static(value));
            assert_eq!(bearer_token(&h), expected, "{value}");
        }
    }
}
