//! The one API error type: every failure a handler can return, mapped to a status, a code
//! and the error envelope `{status, code, message, errors}` (API.md 1.4, 1.5).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// Handler result with [`ApiError`] as the error.
pub type Result<T, E = ApiError> = std::result::Result<T, E>;

/// One rejected input: which field, what value (never a password), why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    pub field: String,
    pub value: String,
    pub reason: String,
}

impl FieldError {
    /// Makes an entry; the caller decides whether the value may be echoed.
    pub fn new(field: &str, value: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            value: value.into(),
            reason: reason.into(),
        }
    }
}

/// The error envelope written for every failed request.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Always equal to the HTTP status.
    #[schema(example = 400)]
    pub status: u16,
    /// Stable machine-readable code, e.g. `C001`, `CP04`.
    #[schema(example = "C001")]
    pub code: &'static str,
    /// User-visible message (Korean, as the original frontend shows it).
    pub message: &'static str,
    /// Field errors for C001/C002; empty otherwise.
    pub errors: Vec<FieldError>,
}

/// Everything that can go wrong in a request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    #[error("input type mismatch")]
    TypeMismatch(Vec<FieldError>),
    #[error("authentication required")]
    Unauthenticated,
    #[error("invalid token")]
    InvalidToken,
    #[error("expired token")]
    ExpiredToken,
    #[error("wrong e-mail or password")]
    BadCredentials,
    #[error("admin role required")]
    Forbidden,
    #[error("e-mail already registered")]
    EmailTaken,
    #[error("no such route")]
    RouteNotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("content type must be application/json")]
    UnsupportedMediaType,
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("coupon not found")]
    CouponNotFound,
    #[error("coupon already issued to this user")]
    AlreadyIssued,
    #[error("coupon disabled")]
    CouponDisabled,
    #[error("coupon outside its issuing period")]
    OutOfPeriod,
    #[error("coupon sold out")]
    SoldOut,
    #[error("database unavailable")]
    Unavailable(#[source] sqlx::Error),
    #[error("redis unavailable")]
    RedisUnavailable,
    #[error("database error")]
    Sqlx(#[source] sqlx::Error),
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

/// Every code the API can answer with: status, code, message. The OpenAPI document lists it.
pub const CODES: [(u16, &str, &str); 24] = [
    (400, "C001", "올바르지 않은 입력값입니다."),
    (400, "C002", "입력 타입이 일치하지 않습니다."),
    (401, "C003", "인증이 필요한 서비스입니다."),
    (403, "C004", "권한이 없는 사용자입니다."),
    (500, "C005", "서버 내부 오류가 발생했습니다."),
    (
        415,
        "C006",
        "지원하지 않는 Content-Type입니다. application/json으로 보내 주세요.",
    ),
    (404, "C007", "요청한 경로를 찾을 수 없습니다."),
    (405, "C008", "허용되지 않은 HTTP 메서드입니다."),
    (413, "C009", "요청 본문이 너무 큽니다."),
    (
        503,
        "C010",
        "일시적으로 서비스를 이용할 수 없습니다. 잠시 후 다시 시도해 주세요.",
    ),
    (
        429,
        "C011",
        "요청이 너무 많습니다. 잠시 후 다시 시도해 주세요.",
    ),
    (
        502,
        "C012",
        "서버에 연결할 수 없습니다. 잠시 후 다시 시도해 주세요.",
    ),
    (504, "C013", "서버 응답 시간이 초과되었습니다."),
    (431, "C014", "요청 헤더가 너무 큽니다."),
    (409, "U002", "이미 존재하는 이메일입니다."),
    (401, "A001", "유효하지 않은 토큰입니다."),
    (401, "A002", "만료된 토큰입니다."),
    (401, "A003", "아이디 또는 비밀번호가 일치하지 않습니다."),
    (404, "CP01", "존재하지 않는 쿠폰입니다."),
    (400, "CP02", "사용 중지된 쿠폰입니다."),
    (400, "CP03", "쿠폰 발급 기간이 아닙니다."),
    (400, "CP04", "쿠폰 수량이 모두 소진되었습니다."),
    (400, "CP05", "이미 발급받은 쿠폰입니다."),
    (200, "S000", "Success"),
];

impl ApiError {
    /// Returns the contract code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Invalid(_) => "C001",
            ApiError::TypeMismatch(_) => "C002",
            ApiError::Unauthenticated => "C003",
            ApiError::Forbidden => "C004",
            ApiError::Sqlx(_) | ApiError::Internal(_) => "C005",
            ApiError::UnsupportedMediaType => "C006",
            ApiError::RouteNotFound => "C007",
            ApiError::MethodNotAllowed => "C008",
            ApiError::PayloadTooLarge => "C009",
            ApiError::Unavailable(_) | ApiError::RedisUnavailable => "C010",
            ApiError::EmailTaken => "U002",
            ApiError::InvalidToken => "A001",
            ApiError::ExpiredToken => "A002",
            ApiError::BadCredentials => "A003",
            ApiError::CouponNotFound => "CP01",
            ApiError::CouponDisabled => "CP02",
            ApiError::OutOfPeriod => "CP03",
            ApiError::SoldOut => "CP04",
            ApiError::AlreadyIssued => "CP05",
        }
    }

    /// Builds the envelope for this error, logging internal failures once with their cause.
    fn body(self) -> ErrorBody {
        let code = self.code();
        let (status, message) = lookup(code);
        if status >= 500 {
            tracing::error!(code, error = %self_source(&self), "request failed");
        }
        let errors = match self {
            ApiError::Invalid(errors) | ApiError::TypeMismatch(errors) => errors,
            _ => Vec::new(),
        };
        ErrorBody {
            status,
            code,
            message,
            errors,
        }
    }
}

/// Renders the error chain of an internal failure for the log.
fn self_source(err: &ApiError) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Finds the status and message of a code in [`CODES`].
fn lookup(code: &str) -> (u16, &'static str) {
    CODES
        .iter()
        .find(|(_, c, _)| *c == code)
        .map(|(status, _, message)| (*status, *message))
        .unwrap_or((500, "서버 내부 오류가 발생했습니다."))
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        if is_unavailable(&err) {
            ApiError::Unavailable(err)
        } else {
            ApiError::Sqlx(err)
        }
    }
}

/// Tells whether the database could not be reached or went away (retry later), as opposed
/// to a failed statement: pool timeouts, I/O errors, and SQLSTATE classes 08 (connection
/// exception) and 57 (operator intervention, e.g. a server shutting down).
fn is_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| code.starts_with("08") || code.starts_with("57")),
        _ => false,
    }
}

impl From<crate::token::TokenError> for ApiError {
    fn from(err: crate::token::TokenError) -> Self {
        match err {
            crate::token::TokenError::Expired => ApiError::ExpiredToken,
            crate::token::TokenError::Invalid => ApiError::InvalidToken,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.body();
        let status = StatusCode::from_u16(body.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(body)).into_response()
    }
}

/// Turns named constraint violations into client errors.
pub trait ResultExt<T> {
    /// Maps a violation of `constraint` to the error `f` returns; other errors pass through.
    fn on_constraint(self, constraint: &str, f: impl FnOnce() -> ApiError) -> Result<T>;
}

impl<T> ResultExt<T> for std::result::Result<T, sqlx::Error> {
    fn on_constraint(self, constraint: &str, f: impl FnOnce() -> ApiError) -> Result<T> {
        self.map_err(|err| match &err {
            sqlx::Error::Database(db) if db.constraint() == Some(constraint) => f(),
            _ => ApiError::from(err),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_code_is_listed_once_with_a_matching_status_class() {
        let samples = [
            ApiError::Invalid(vec![]),
            ApiError::Unauthenticated,
            ApiError::Forbidden,
            ApiError::SoldOut,
            ApiError::AlreadyIssued,
            ApiError::RouteNotFound,
            ApiError::UnsupportedMediaType,
            ApiError::Unavailable(sqlx::Error::PoolTimedOut),
            ApiError::Internal(anyhow::anyhow!("boom")),
        ];
        let expected = [400, 401, 403, 400, 400, 404, 415, 503, 500];
        for (err, status) in samples.into_iter().zip(expected) {
            let code = err.code();
            assert_eq!(
                CODES.iter().filter(|(_, c, _)| *c == code).count(),
                1,
                "{code}"
            );
            assert_eq!(err.body().status, status, "{code}");
        }
    }

    #[test]
    fn pool_timeouts_are_unavailable_not_internal() {
        assert_eq!(ApiError::from(sqlx::Error::PoolTimedOut).code(), "C010");
        assert_eq!(ApiError::from(sqlx::Error::RowNotFound).code(), "C005");
    }
}
