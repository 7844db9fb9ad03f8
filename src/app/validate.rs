//! Field rules shared by the request types: not blank, lengths, e-mail syntax.

use crate::envelope::FieldError;

/// Why a text holding a NUL character is refused (PostgreSQL cannot store it).
pub const NUL_REASON: &str = "허용되지 않는 문자(NUL)가 포함되어 있습니다.";

/// Collects field errors for one request body.
#[derive(Debug, Default)]
pub struct Rules {
    errors: Vec<FieldError>,
}

impl Rules {
    /// Starts an empty set of findings.
    pub fn new() -> Self {
        Self::default()
    }

    /// Requires a value with a non-whitespace character and no NUL; returns it when valid.
    pub fn not_blank<'a>(
        &mut self,
        field: &str,
        value: &'a Option<String>,
        reason: &str,
    ) -> Option<&'a str> {
        match value.as_deref() {
            Some(v) if v.contains('\0') => {
                self.fail_secret(field, NUL_REASON);
                None
            }
            Some(v) if !v.trim().is_empty() => Some(v),
            other => {
                self.fail(field, other.unwrap_or(""), reason);
                None
            }
        }
    }

    /// Requires at most `max` characters.
    pub fn max_chars(&mut self, field: &str, value: Option<&str>, max: usize) {
        if let Some(v) = value.filter(|v| v.chars().count() > max) {
            self.fail(field, v, &format!("{max}자 이하로 입력해 주세요."));
        }
    }

    /// Records a failure; the value is echoed (never call this with a password value).
    pub fn fail(&mut self, field: &str, value: &str, reason: &str) {
        self.errors.push(FieldError::new(field, value, reason));
    }

    /// Records a failure without echoing the value.
    pub fn fail_secret(&mut self, field: &str, reason: &str) {
        self.errors.push(FieldError::new(field, "", reason));
    }

    /// Returns the findings.
    pub fn finish(self) -> Vec<FieldError> {
        self.errors
    }
}

/// Checks e-mail syntax about as leniently as Hibernate Validator's `@Email`:
/// a local part of 1–64 characters, `@`, and dot-separated domain labels of 1–63
/// characters (letters, digits, hyphens, non-ASCII), or an IP literal in brackets.
pub fn is_email(value: &str) -> bool {
    let Some((local, domain)) = value.rsplit_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local.chars().count() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local.chars().all(|c| {
            !c.is_whitespace()
                && !c.is_control()
                && !matches!(
                    c,
                    '@' | '(' | ')' | ',' | ':' | ';' | '<' | '>' | '[' | ']' | '\\' | '"'
                )
        });
    local_ok && (is_ip_literal(domain) || is_domain(domain))
}

fn is_domain(domain: &str) -> bool {
    !domain.is_empty()
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.chars().count() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
}

fn is_ip_literal(domain: &str) -> bool {
    domain
        .strip_prefix('[')
        .and_then(|d| d.strip_suffix(']'))
        .is_some_and(|ip| {
            ip.parse::<std::net::IpAddr>().is_ok()
                || ip
                    .strip_prefix("IPv6:")
                    .is_some_and(|v6| v6.parse::<std::net::Ipv6Addr>().is_ok())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_rule_is_lenient_like_hibernate() {
        for ok in [
            "a@b",
            "user@example.com",
            "first.last+tag@sub.example.co.kr",
            "홍길동@회사.한국",
            "x@[127.0.0.1]",
        ] {
            assert!(is_email(ok), "{ok} should pass");
        }
        let long_local = format!("{}@b.c", "a".repeat(65));
        let long_label = format!("a@{}.com", "b".repeat(64));
        for bad in [
            "",
            "plain",
            "@b.c",
            "a@",
            "a b@c.d",
            "a@b..c",
            "a@-b.c",
            ".a@b.c",
            "a@b@c",
            long_local.as_str(),
            long_label.as_str(),
        ] {
            assert!(!is_email(bad), "{bad} should fail");
        }
    }

    #[test]
    fn rules_collect_blank_and_length_failures() {
        let mut rules = Rules::new();
        assert_eq!(rules.not_blank("a", &Some("x".into()), "r"), Some("x"));
        assert_eq!(rules.not_blank("b", &Some("  ".into()), "r"), None);
        assert_eq!(rules.not_blank("c", &None, "r"), None);
        assert_eq!(rules.not_blank("n", &Some("a\0b".into()), "r"), None);
        rules.max_chars("d", Some("가나다"), 2);
        rules.max_chars("e", Some("가나"), 2);
        let fields: Vec<String> = rules.finish().into_iter().map(|e| e.field).collect();
        assert_eq!(fields, vec!["b", "c", "n", "d"]);
    }
}
