//! The wire envelopes every role answers in: `{code: "S000", message, data}` for success and
//! `{status, code, message, errors}` for failure, with the one table of codes. The codes,
//! statuses and Korean messages are the original service's; FastPick adds C009–C014 for the
//! limits the original left to nginx and Tomcat (each listed in the OpenAPI document).

use axum::Json;
use bytes::Bytes;
use serde::Serialize;
use utoipa::ToSchema;

/// Every code the API can answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    /// A rejected input (validation, malformed JSON or HTTP).
    C001,
    /// A value of the wrong type.
    C002,
    /// No or no usable credentials.
    C003,
    /// Authenticated but not allowed (or not on the allowlist).
    C004,
    /// An internal failure.
    C005,
    /// A body that is not JSON.
    C006,
    /// No such route.
    C007,
    /// The route does not take this method.
    C008,
    /// The body is too large.
    C009,
    /// A server the API needs is down.
    C010,
    /// Rate limited.
    C011,
    /// The proxy cannot reach an app.
    C012,
    /// The app did not answer the proxy in time.
    C013,
    /// The request head (URL and headers) is too large.
    C014,
    /// The e-mail is taken.
    U002,
    /// The token is not valid.
    A001,
    /// The token expired.
    A002,
    /// Wrong e-mail or password.
    A003,
    /// No such coupon.
    CP01,
    /// The coupon is disabled.
    CP02,
    /// Outside the coupon's issuing period.
    CP03,
    /// Sold out.
    CP04,
    /// Already issued to this user.
    CP05,
    /// Success.
    S000,
}

impl Code {
    /// Every code, in the order of the table the OpenAPI document shows.
    pub const ALL: [Code; 24] = [
        Code::C001,
        Code::C002,
        Code::C003,
        Code::C004,
        Code::C005,
        Code::C006,
        Code::C007,
        Code::C008,
        Code::C009,
        Code::C010,
        Code::C011,
        Code::C012,
        Code::C013,
        Code::C014,
        Code::U002,
        Code::A001,
        Code::A002,
        Code::A003,
        Code::CP01,
        Code::CP02,
        Code::CP03,
        Code::CP04,
        Code::CP05,
        Code::S000,
    ];

    /// Returns the HTTP status, the code as sent and the user-visible message (Korean, as
    /// the original frontend shows it).
    pub const fn parts(self) -> (u16, &'static str, &'static str) {
        match self {
            Code::C001 => (400, "C001", "올바르지 않은 입력값입니다."),
            Code::C002 => (400, "C002", "입력 타입이 일치하지 않습니다."),
            Code::C003 => (401, "C003", "인증이 필요한 서비스입니다."),
            Code::C004 => (403, "C004", "권한이 없는 사용자입니다."),
            Code::C005 => (500, "C005", "서버 내부 오류가 발생했습니다."),
            Code::C006 => (
                415,
                "C006",
                "지원하지 않는 Content-Type입니다. application/json으로 보내 주세요.",
            ),
            Code::C007 => (404, "C007", "요청한 경로를 찾을 수 없습니다."),
            Code::C008 => (405, "C008", "허용되지 않은 HTTP 메서드입니다."),
            Code::C009 => (413, "C009", "요청 본문이 너무 큽니다."),
            Code::C010 => (
                503,
                "C010",
                "일시적으로 서비스를 이용할 수 없습니다. 잠시 후 다시 시도해 주세요.",
            ),
            Code::C011 => (
                429,
                "C011",
                "요청이 너무 많습니다. 잠시 후 다시 시도해 주세요.",
            ),
            Code::C012 => (
                502,
                "C012",
                "서버에 연결할 수 없습니다. 잠시 후 다시 시도해 주세요.",
            ),
            Code::C013 => (504, "C013", "서버 응답 시간이 초과되었습니다."),
            Code::C014 => (431, "C014", "요청 헤더가 너무 큽니다."),
            Code::U002 => (409, "U002", "이미 존재하는 이메일입니다."),
            Code::A001 => (401, "A001", "유효하지 않은 토큰입니다."),
            Code::A002 => (401, "A002", "만료된 토큰입니다."),
            Code::A003 => (401, "A003", "아이디 또는 비밀번호가 일치하지 않습니다."),
            Code::CP01 => (404, "CP01", "존재하지 않는 쿠폰입니다."),
            Code::CP02 => (400, "CP02", "사용 중지된 쿠폰입니다."),
            Code::CP03 => (400, "CP03", "쿠폰 발급 기간이 아닙니다."),
            Code::CP04 => (400, "CP04", "쿠폰 수량이 모두 소진되었습니다."),
            Code::CP05 => (400, "CP05", "이미 발급받은 쿠폰입니다."),
            Code::S000 => (200, "S000", "Success"),
        }
    }

    /// Returns the code that stands for a bare HTTP status a server library chose (a parse
    /// error, a limit): 400 C001, 404 C007, 405 C008, 413 C009, 414 and 431 C014, 429 C011,
    /// 502 C012, 503 C010, 504 C013, anything else C005.
    pub const fn for_status(status: u16) -> Code {
        match status {
            400 => Code::C001,
            404 => Code::C007,
            405 => Code::C008,
            413 => Code::C009,
            414 | 431 => Code::C014,
            429 => Code::C011,
            502 => Code::C012,
            503 => Code::C010,
            504 => Code::C013,
            _ => Code::C005,
        }
    }

    /// Returns the HTTP status of this code.
    pub const fn status(self) -> u16 {
        self.parts().0
    }

    /// Returns the code as it is sent (`"CP04"`).
    pub const fn as_str(self) -> &'static str {
        self.parts().1
    }
}

/// How much of a rejected value an error echoes back (characters).
pub const ECHO_LIMIT: usize = 64;

/// One rejected input: which field, what value (a short prefix, never a password), why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    pub field: String,
    /// The rejected value, cut to its first 64 characters (then `…`).
    pub value: String,
    pub reason: String,
}

impl FieldError {
    /// Makes an entry; the caller decides whether the value may be echoed, and a long value
    /// is cut to [`ECHO_LIMIT`] characters so an error never mirrors a huge input.
    pub fn new(field: &str, value: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            value: echo(value.into()),
            reason: reason.into(),
        }
    }
}

/// Keeps the first [`ECHO_LIMIT`] characters of a value.
fn echo(value: String) -> String {
    match value.char_indices().nth(ECHO_LIMIT) {
        Some((cut, _)) => format!("{}…", &value[..cut]),
        None => value,
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

impl ErrorBody {
    /// Builds the envelope of a code.
    pub fn new(code: Code, errors: Vec<FieldError>) -> Self {
        let (status, code, message) = code.parts();
        ErrorBody {
            status,
            code,
            message,
            errors,
        }
    }

    /// Serialises the envelope of a code without field errors (for answers written outside
    /// axum: the proxy's, and rejections of a malformed request head).
    pub fn json(code: Code) -> Bytes {
        // Serialising plain fields cannot fail; an empty body would still carry the status.
        Bytes::from(serde_json::to_vec(&ErrorBody::new(code, Vec::new())).unwrap_or_default())
    }
}

/// Every successful body.
#[derive(Debug, Serialize, ToSchema)]
pub struct Envelope<T> {
    #[schema(example = "S000")]
    pub code: &'static str,
    #[schema(example = "Success")]
    pub message: &'static str,
    pub data: T,
}

/// Wraps a payload in the success envelope.
pub fn ok<T: Serialize>(data: T) -> Json<Envelope<T>> {
    let (_, code, message) = Code::S000.parts();
    Json(Envelope {
        code,
        message,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_listed_once_and_sent_as_its_name() {
        for code in Code::ALL {
            assert_eq!(
                Code::ALL.iter().filter(|c| **c == code).count(),
                1,
                "{code:?}"
            );
            assert_eq!(format!("{code:?}"), code.as_str());
        }
    }

    #[test]
    fn statuses_follow_the_code_families() {
        for code in Code::ALL {
            let status = code.status();
            let expected_class = match code.as_str() {
                "S000" => 2,
                "C005" | "C010" | "C012" | "C013" => 5,
                _ => 4,
            };
            assert_eq!(status / 100, expected_class, "{code:?} {status}");
        }
    }

    #[test]
    fn a_long_value_is_echoed_as_a_short_prefix() {
        let long = "가".repeat(1_000_000);
        let err = FieldError::new("name", long, "too long");
        assert_eq!(err.value.chars().count(), ECHO_LIMIT + 1);
        assert!(err.value.ends_with('…'));
        assert_eq!(FieldError::new("name", "short", "x").value, "short");
    }

    #[test]
    fn the_json_envelope_carries_status_code_and_message() {
        let body: serde_json::Value = serde_json::from_slice(&ErrorBody::json(Code::C014)).unwrap();
        assert_eq!(body["status"], 431);
        assert_eq!(body["code"], "C014");
        assert_eq!(body["errors"], serde_json::json!([]));
    }
}
