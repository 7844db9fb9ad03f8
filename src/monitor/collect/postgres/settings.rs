//! `pg_settings_*`: every boolean, integer and real server parameter as a gauge, named and
//! converted as postgres_exporter does, so `pg_settings_shared_buffers_bytes` and friends
//! read the same on dashboards.
//!
//! The rules: the family is `pg_settings_<name>` with `.` and `-` (any character invalid in a
//! metric name) turned into `_`; a parameter measured in time gets `_seconds` and is converted
//! to seconds, one measured in memory gets `_bytes` and is converted to bytes (a block unit such
//! as `8kB` counts its blocks); `-1` ("disabled") is kept as it is; booleans are 1 for `on`.
//! Parameters with a unit the rules do not know are left out.
//!
//! Values come from `setting`, as the exporter reads them (octal modes such as
//! `data_directory_mode` = `0700` read as 700, the TCP keepalive settings show the socket's
//! values), except for the two the scrape's own transaction changes, `statement_timeout` and
//! `transaction_read_only`, which are read from `reset_val` (the session default).

use sqlx::PgConnection;

use crate::monitor::collect::exposition::{Exposition, sanitize_name};

/// Why a setting could not be turned into a number.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SettingError {
    /// The value is not a number although its type says it is.
    #[error("setting value {0:?} is not a number")]
    NotANumber(String),
    /// The unit is neither a time nor a memory unit PostgreSQL documents.
    #[error("unknown setting unit {0:?}")]
    UnknownUnit(String),
}

/// One parameter as `pg_settings` lists it.
type SettingRow = (String, String, String, String, String);

const SETTINGS_SQL: &str = "select name, \
       case when name in ('statement_timeout', 'transaction_read_only') then reset_val \
            else setting end, \
       coalesce(unit, ''), coalesce(short_desc, ''), vartype \
     from pg_settings where vartype in ('bool', 'integer', 'real') order by name";

/// Reads `pg_settings` and adds one gauge per parameter.
pub(super) async fn collect(
    conn: &mut PgConnection,
    exp: &mut Exposition,
) -> Result<(), sqlx::Error> {
    let rows: Vec<SettingRow> = sqlx::query_as(SETTINGS_SQL).fetch_all(conn).await?;
    for (name, setting, unit, short_desc, vartype) in rows {
        let (value, suffix) = if vartype == "bool" {
            (if setting == "on" { 1.0 } else { 0.0 }, None)
        } else {
            match normalise(&setting, &unit) {
                Ok(converted) => converted,
                Err(err) => {
                    tracing::debug!(setting = %name, error = %err, "skipping postgres setting");
                    continue;
                }
            }
        };
        let family = family_name(&name, suffix);
        let help = match suffix {
            Some(unit_name) => format!("{short_desc} [Units converted to {unit_name}.]"),
            None => short_desc,
        };
        exp.gauge(&family, &help, &[], value);
    }
    Ok(())
}

/// The family name for parameter `name` whose converted unit is `suffix`.
fn family_name(name: &str, suffix: Option<&str>) -> String {
    match suffix {
        Some(unit_name) => format!("pg_settings_{}_{unit_name}", sanitize_name(name)),
        None => format!("pg_settings_{}", sanitize_name(name)),
    }
}

/// Converts a numeric setting in `unit` to seconds or bytes; returns the value and the unit
/// name for the family (`None` for unitless settings).
pub(super) fn normalise(
    setting: &str,
    unit: &str,
) -> Result<(f64, Option<&'static str>), SettingError> {
    let value: f64 = setting
        .trim()
        .parse()
        .map_err(|_| SettingError::NotANumber(setting.to_owned()))?;
    if unit.is_empty() {
        return Ok((value, None));
    }
    let (scale, unit_name) =
        unit_scale(unit).ok_or_else(|| SettingError::UnknownUnit(unit.to_owned()))?;
    // -1 conventionally means "disabled" and stays -1 whatever the unit.
    let converted = if value == -1.0 { value } else { value * scale };
    Ok((converted, Some(unit_name)))
}

/// The factor to seconds or bytes for a `pg_settings.unit`, and which of the two it is.
fn unit_scale(unit: &str) -> Option<(f64, &'static str)> {
    let time = match unit {
        "ms" => Some(0.001),
        "s" => Some(1.0),
        "min" => Some(60.0),
        "h" => Some(3600.0),
        "d" => Some(86400.0),
        _ => None,
    };
    if let Some(scale) = time {
        return Some((scale, "seconds"));
    }
    // Memory units, optionally a block size: "B", "kB", "8kB", "16MB".
    let digits = unit.len() - unit.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let (count, base) = unit.split_at(digits);
    let blocks: f64 = if count.is_empty() {
        1.0
    } else {
        count.parse().ok()?
    };
    let base_bytes = match base {
        "B" => 1.0,
        "kB" => 1024.0,
        "MB" => 1024.0 * 1024.0,
        "GB" => 1024.0 * 1024.0 * 1024.0,
        "TB" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some((blocks * base_bytes, "bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalise_converts_units_like_postgres_exporter() {
        let cases = [
            ("100", "", 100.0, None),
            ("4", "", 4.0, None),
            ("1.1", "", 1.1, None),
            ("16384", "8kB", 134_217_728.0, Some("bytes")),
            ("4096", "kB", 4_194_304.0, Some("bytes")),
            ("1024", "MB", 1_073_741_824.0, Some("bytes")),
            ("80", "MB", 83_886_080.0, Some("bytes")),
            ("2", "GB", 2_147_483_648.0, Some("bytes")),
            ("1", "TB", 1_099_511_627_776.0, Some("bytes")),
            ("64", "16MB", 1_073_741_824.0, Some("bytes")),
            ("512", "B", 512.0, Some("bytes")),
            ("300", "s", 300.0, Some("seconds")),
            ("1000", "ms", 1.0, Some("seconds")),
            ("2", "min", 120.0, Some("seconds")),
            ("1", "h", 3600.0, Some("seconds")),
            ("1", "d", 86400.0, Some("seconds")),
            ("-1", "ms", -1.0, Some("seconds")),
            ("-1", "kB", -1.0, Some("bytes")),
            ("0", "ms", 0.0, Some("seconds")),
        ];
        for (setting, unit, want, want_unit) in cases {
            let got = normalise(setting, unit);
            assert_eq!(
                got,
                Ok((want, want_unit)),
                "setting {setting:?} unit {unit:?}"
            );
        }
    }

    #[test]
    fn normalise_rejects_unknown_units_and_non_numbers() {
        assert_eq!(
            normalise("5", "us"),
            Err(SettingError::UnknownUnit("us".to_owned()))
        );
        assert_eq!(
            normalise("5", "8XB"),
            Err(SettingError::UnknownUnit("8XB".to_owned()))
        );
        assert_eq!(
            normalise("on", ""),
            Err(SettingError::NotANumber("on".to_owned()))
        );
    }

    #[test]
    fn family_name_sanitises_and_appends_the_unit() {
        assert_eq!(
            family_name("shared_buffers", Some("bytes")),
            "pg_settings_shared_buffers_bytes"
        );
        assert_eq!(
            family_name("pg_stat_statements.max", None),
            "pg_settings_pg_stat_statements_max"
        );
        assert_eq!(
            family_name("max_connections", None),
            "pg_settings_max_connections"
        );
    }
}
