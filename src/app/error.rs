//! The one API error type: every failure a handler can return, each mapped to its code in
//! the wire envelope ([`crate::envelope`]).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

pub use crate::envelope::FieldError;
use crate::envelope::{Code, ErrorBody};

/// Handler result with [`ApiError`] as the error.
pub type Result<T, E = ApiError> = std::result::Result<T, E>;

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
    #[error("cross-origin request from an origin not allowed")]
    CorsRefused(Vec<FieldError>),
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

impl ApiError {
    /// Returns the envelope code of this error: every variant names one, or this does not
    /// compile.
    pub fn code(&self) -> Code {
        match self {
            ApiError::Invalid(_) => Code::C001,
            ApiError::TypeMismatch(_) => Code::C002,
            ApiError::Unauthenticated => Code::C003,
            ApiError::Forbidden | ApiError::CorsRefused(_) => Code::C004,
            ApiError::Sqlx(_) | ApiError::Internal(_) => Code::C005,
            ApiError::UnsupportedMediaType => Code::C006,
            ApiError::RouteNotFound => Code::C007,
            ApiError::MethodNotAllowed => Code::C008,
            ApiError::PayloadTooLarge => Code::C009,
            ApiError::Unavailable(_) | ApiError::RedisUnavailable => Code::C010,
            ApiError::EmailTaken => Code::U002,
            ApiError::InvalidToken => Code::A001,
            ApiError::ExpiredToken => Code::A002,
            ApiError::BadCredentials => Code::A003,
            ApiError::CouponNotFound => Code::CP01,
            ApiError::CouponDisabled => Code::CP02,
            ApiError::OutOfPeriod => Code::CP03,
            ApiError::SoldOut => Code::CP04,
            ApiError::AlreadyIssued => Code::CP05,
        }
    }

    /// Builds the envelope for this error, logging internal failures once with their cause
    /// (the request log only counts them).
    fn body(self) -> ErrorBody {
        let code = self.code();
        if code.status() >= 500 {
            tracing::error!(code = code.as_str(), error = %self_source(&self), "request failed");
        }
        let errors = match self {
            ApiError::Invalid(errors)
            | ApiError::TypeMismatch(errors)
            | ApiError::CorsRefused(errors) => errors,
            _ => Vec::new(),
        };
        ErrorBody::new(code, errors)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// One value of every variant: adding a variant breaks this match until it is listed.
    fn one_of_each() -> Vec<ApiError> {
        let samples = vec![
            ApiError::Invalid(vec![]),
            ApiError::TypeMismatch(vec![]),
            ApiError::Unauthenticated,
            ApiError::InvalidToken,
            ApiError::ExpiredToken,
            ApiError::BadCredentials,
            ApiError::Forbidden,
            ApiError::CorsRefused(vec![]),
            ApiError::EmailTaken,
            ApiError::RouteNotFound,
            ApiError::MethodNotAllowed,
            ApiError::UnsupportedMediaType,
            ApiError::PayloadTooLarge,
            ApiError::CouponNotFound,
            ApiError::AlreadyIssued,
            ApiError::CouponDisabled,
            ApiError::OutOfPeriod,
            ApiError::SoldOut,
            ApiError::Unavailable(sqlx::Error::PoolTimedOut),
            ApiError::RedisUnavailable,
            ApiError::Sqlx(sqlx::Error::RowNotFound),
            ApiError::Internal(anyhow::anyhow!("boom")),
        ];
        for err in &samples {
            match err {
                ApiError::Invalid(_)
                | ApiError::TypeMismatch(_)
                | ApiError::Unauthenticated
                | ApiError::InvalidToken
                | ApiError::ExpiredToken
                | ApiError::BadCredentials
                | ApiError::Forbidden
                | ApiError::CorsRefused(_)
                | ApiError::EmailTaken
                | ApiError::RouteNotFound
                | ApiError::MethodNotAllowed
                | ApiError::UnsupportedMediaType
                | ApiError::PayloadTooLarge
                | ApiError::CouponNotFound
                | ApiError::AlreadyIssued
                | ApiError::CouponDisabled
                | ApiError::OutOfPeriod
                | ApiError::SoldOut
                | ApiError::Unavailable(_)
                | ApiError::RedisUnavailable
                | ApiError::Sqlx(_)
                | ApiError::Internal(_) => {}
            }
        }
        samples
    }

    #[test]
    fn every_variant_answers_its_contract_status_and_code() {
        let expected = [
            (400, "C001"),
            (400, "C002"),
            (401, "C003"),
            (401, "A001"),
            (401, "A002"),
            (401, "A003"),
            (403, "C004"),
            (403, "C004"),
            (409, "U002"),
            (404, "C007"),
            (405, "C008"),
            (415, "C006"),
            (413, "C009"),
            (404, "CP01"),
            (400, "CP05"),
            (400, "CP02"),
            (400, "CP03"),
            (400, "CP04"),
            (503, "C010"),
            (503, "C010"),
            (500, "C005"),
            (500, "C005"),
        ];
        let samples = one_of_each();
        assert_eq!(samples.len(), expected.len());
        for (err, (status, code)) in samples.into_iter().zip(expected) {
            assert_eq!(err.code().as_str(), code);
            assert_eq!(err.into_response().status().as_u16(), status, "{code}");
        }
    }

    #[test]
    fn pool_timeouts_are_unavailable_not_internal() {
        assert_eq!(ApiError::from(sqlx::Error::PoolTimedOut).code(), Code::C010);
        assert_eq!(ApiError::from(sqlx::Error::RowNotFound).code(), Code::C005);
    }
}
