//! Schemas of the inputs whose rules JSON Schema can state only with a `pattern`: each mirrors
//! a rule of [`crate::app::validate`], the request types or the query parsers, so the document
//! accepts exactly what the server accepts. Patterns are written for both ECMA-262 and Python
//! `re` (the schema fuzzer's), hence `\uXXXX` escapes and no lookbehind.

use std::borrow::Cow;

use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::{KnownFormat, RefOr};
use utoipa::{PartialSchema, ToSchema};

/// Whitespace as Rust's `char::is_whitespace` (and so `str::trim`) sees it, as a class body.
const WS: &str = r"\t\n\u000b\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";

/// Text with a character that is not whitespace, and no NUL anywhere ("not blank").
fn not_blank_pattern() -> String {
    format!(r"^[^\u0000]*[^\u0000{WS}][^\u0000]*$")
}

/// A local part of 1–64 characters without spaces, controls, `@(),:;<>[]\"` or stray dots,
/// `@`, then domain labels of 1–63 letters, digits or inner hyphens, or an IPv4 literal
/// (see [`crate::app::validate::is_email`]).
fn email_pattern() -> String {
    let atom = format!(r#"[^\u0000-\u001f\u007f-\u009f{WS}@(),:;<>\[\]\\".]+"#);
    let label = r"[^\W_](?:(?:[^\W_]|-){0,61}[^\W_])?";
    let octet = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])";
    format!(
        r"^(?=[^@]{{1,64}}@){atom}(?:\.{atom})*@(?:{label}(?:\.{label})*|\[(?:{octet}\.){{3}}{octet}\])$"
    )
}

/// A wire date-time, `yyyy-MM-ddTHH:mm:ss`, that exists in the proleptic Gregorian calendar.
fn date_time_pattern() -> &'static str {
    concat!(
        r"^(?:[0-9]{4}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])",
        r"|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)|02-(?:0[1-9]|1[0-9]|2[0-8]))",
        r"|(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:0[048]|[2468][048]|[13579][26])00)-02-29)",
        r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]$"
    )
}

/// Decimal numbers from 0 (or 1) up to `max`, without leading zeros, as a regex group.
fn up_to(max: &str, with_zero: bool) -> String {
    let digits: Vec<u32> = max.chars().filter_map(|c| c.to_digit(10)).collect();
    let len = digits.len();
    let mut alternatives = Vec::new();
    if with_zero {
        alternatives.push("0".to_owned());
    }
    if len > 1 {
        alternatives.push(format!("[1-9][0-9]{{0,{}}}", len - 2));
    }
    for (i, &digit) in digits.iter().enumerate() {
        let low = u32::from(i == 0);
        if digit > low {
            alternatives.push(format!(
                "{}[{low}-{}][0-9]{{{}}}",
                &max[..i],
                digit - 1,
                len - i - 1
            ));
        }
    }
    alternatives.push(max.to_owned());
    format!("(?:{})", alternatives.join("|"))
}

/// A string schema.
fn text(description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
}

/// Text that is not blank, has no NUL and is at most `max` characters long.
fn bounded_text(max: usize, example: &str) -> RefOr<Schema> {
    text(&format!("Not blank, no NUL, at most {max} characters."))
        .max_length(Some(max))
        .pattern(Some(not_blank_pattern()))
        .examples([example])
        .into()
}

/// Declares a schema type that exists only in the document.
macro_rules! doc_schema {
    ($(#[$meta:meta])* $name:ident => $body:expr) => {
        $(#[$meta])*
        pub struct $name;

        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                $body
            }
        }

        impl ToSchema for $name {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($name))
            }
        }
    };
}

doc_schema!(
    /// An e-mail address: at most 100 characters.
    Email => text("An e-mail address as Hibernate Validator's @Email accepts it: no top-level domain \
        needed, non-ASCII letters allowed, or an IP literal in brackets (IPv6 literals, \
        `[IPv6:…]`, are accepted too but not covered by the pattern). At most 100 characters.")
        .max_length(Some(100))
        .pattern(Some(email_pattern()))
        .examples(["user@example.com"])
        .into()
);

doc_schema!(
    /// Any text that is not blank.
    NotBlank => text("Text with at least one non-whitespace character and no NUL.")
        .min_length(Some(1))
        .pattern(Some(not_blank_pattern()))
        .into()
);

doc_schema!(
    /// A sign-up password.
    NewPassword => text("At least 8 characters and at most 72 bytes of UTF-8 (bcrypt's limit: \
        72 ASCII characters, 24 Hangul syllables); not blank, no NUL. The byte limit cannot be \
        written in JSON Schema, which counts characters.")
        .min_length(Some(8))
        .max_length(Some(72))
        .pattern(Some(not_blank_pattern()))
        .examples(["password123"])
        .into()
);

doc_schema!(
    /// A name of at most 50 characters.
    Name => bounded_text(50, "홍길동")
);

doc_schema!(
    /// A brand of at most 30 characters.
    Brand => bounded_text(30, "나이키")
);

doc_schema!(
    /// A title of at most 100 characters.
    Title => bounded_text(100, "[특가] 에어포스 1")
);

doc_schema!(
    /// A summary of at most 200 characters.
    Summary => bounded_text(200, "요약 설명")
);

doc_schema!(
    /// A wire date-time.
    WireDateTime => text("Local date-time in the service's zone (Asia/Seoul by default), exactly \
        `yyyy-MM-ddTHH:mm:ss`: no fraction, no zone, a day that exists.")
        .pattern(Some(date_time_pattern()))
        .examples(["2026-01-02T00:00:00"])
        .into()
);

doc_schema!(
    /// A coupon id in a body: a 64-bit integer, or its decimal text.
    CouponId => AnyOfBuilder::new()
        .description(Some("A 64-bit integer; its decimal text (`\"19\"`, kept from the original's \
            Jackson) is accepted too, as is an integral float (`19.0`). A fraction is 400 C002."))
        .item(ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .minimum(Some(i64::MIN))
            .maximum(Some(i64::MAX)))
        .item(text("Decimal text of a 64-bit integer.").pattern(Some(format!(
            r"^(?:\+?0*{}|-0*{})$",
            up_to("9223372036854775807", true),
            up_to("9223372036854775808", true)
        ))))
        .examples([19])
        .into()
);

doc_schema!(
    /// A coupon's quantity: 1 to 2^31-1, or its decimal text.
    Quantity => AnyOfBuilder::new()
        .description(Some("1 to 2147483647; its decimal text is accepted too, as is an integral float."))
        .item(ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
            .minimum(Some(1))
            .maximum(Some(i32::MAX)))
        .item(text("Decimal text of 1 to 2147483647.")
            .pattern(Some(format!(r"^\+?0*{}$", up_to("2147483647", false)))))
        .examples([100])
        .into()
);

doc_schema!(
    /// How many lab users: 1 to 10,000, or its decimal text.
    LabUserCount => AnyOfBuilder::new()
        .description(Some("1 to 10000; its decimal text is accepted too, as is an integral float."))
        .item(ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(1))
            .maximum(Some(crate::app::experiment::users::MAX_USERS)))
        .item(text("Decimal text of 1 to 10000.")
            .pattern(Some(format!(r"^\+?0*{}$", up_to("10000", false)))))
        .examples([1000])
        .into()
);

doc_schema!(
    /// The list's search text.
    SearchText => text("At most 50 characters once surrounding whitespace is trimmed; no NUL. \
        Words separated by spaces; each must prefix-match one of a coupon's keywords, \
        case-insensitively for Latin letters; `%` and `_` are literal.")
        .pattern(Some(format!(
            r"^[{WS}]*(?:[^\u0000{WS}](?:[^\u0000]{{0,48}}[^\u0000{WS}])?)?[{WS}]*$"
        )))
        .examples(["NIKE 팬츠"])
        .into()
);

doc_schema!(
    /// Text without NUL.
    AnyText => text("Any text without NUL.")
        .pattern(Some(r"^[^\u0000]*$"))
        .into()
);

doc_schema!(
    /// A lenient page-number or page-size parameter.
    PageParam => text("An integer, read as Spring Data reads it: a value that is not a 32-bit \
        integer (or has spaces around it) is the default; see the operation for bounds.")
        .examples(["0"])
        .into()
);

/// An enum query value as `enum_param` parses it: one of `values`, or empty, with any
/// surrounding whitespace. The first branch lists the values; the second admits the padding.
fn enum_param(values: &[&str], description: &str) -> RefOr<Schema> {
    AnyOfBuilder::new()
        .description(Some(description))
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(values.iter().copied())),
        )
        .item(
            text("The same values with whitespace around them.")
                .pattern(Some(format!("^[{WS}]*(?:{})?[{WS}]*$", values.join("|")))),
        )
        .into()
}

doc_schema!(
    /// The list's filter.
    FilterType => enum_param(&["ALL", "READY", "ISSUING", "CLOSED"], "Case-sensitive; \
        surrounding whitespace is ignored; empty or absent means ALL. READY: before the issuing \
        period. ISSUING: inside it with stock left. CLOSED: ended or sold out.")
);

doc_schema!(
    /// The my-coupons filter.
    MyCouponFilter => enum_param(&["ALL", "AVAILABLE", "USED", "EXPIRED"], "Case-sensitive; \
        surrounding whitespace is ignored; empty or absent means ALL. AVAILABLE: not used and \
        not ended. USED: used. EXPIRED: not used and ended.")
);

doc_schema!(
    /// An issue strategy's name.
    IssueStrategyName => ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some("db-lock: the original's row lock. db-atomic: one conditional UPDATE. \
            redis-gate: a Redis script admits, PostgreSQL writes."))
        .enum_values(Some(["db-lock", "db-atomic", "redis-gate"]))
        .into()
);

doc_schema!(
    /// The search cache's setting.
    SearchCacheName => ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some("off: every search goes to PostgreSQL. redis: pages are cached in Redis."))
        .enum_values(Some(["off", "redis"]))
        .into()
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn up_to_lists_every_shorter_and_smaller_number() {
        assert_eq!(up_to("7", true), "(?:0|[1-6][0-9]{0}|7)");
        assert_eq!(
            up_to("215", false),
            "(?:[1-9][0-9]{0,1}|[1-1][0-9]{2}|2[0-0][0-9]{1}|21[0-4][0-9]{0}|215)"
        );
    }
}
