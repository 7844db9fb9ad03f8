//! `/federate`: the latest sample of every series matching `match[]`, in Prometheus text
//! format 0.0.4 with timestamps, so another Prometheus can scrape this one.

use std::collections::BTreeMap;
use std::fmt::Write;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::{ApiError, Params, format_value};
use crate::monitor::Monitor;
use crate::monitor::promql::selector_matchers;
use crate::monitor::scrape::now_ms;
use crate::monitor::series::{Labels, METRIC_NAME, Queryable, is_stale};

/// `GET /federate?match[]=...`.
pub async fn federate(
    State(monitor): State<Monitor>,
    params: Params,
) -> Result<Response, ApiError> {
    let selectors = params.all("match[]");
    if selectors.is_empty() {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    let now = now_ms();
    let mint = now - monitor.lookback_ms();
    // By name, then labels: one `# TYPE` per name, series in a stable order, no repeats.
    let mut latest: BTreeMap<String, BTreeMap<Labels, (i64, f64)>> = BTreeMap::new();
    for text in selectors {
        let matchers = selector_matchers(text)
            .map_err(|e| ApiError::bad_data(format!("invalid parameter \"match[]\": {e}")))?;
        for series in monitor.db().select(&matchers, mint, now) {
            let Some(&(t, v)) = series.samples.last() else {
                continue;
            };
            if is_stale(v) {
                continue;
            }
            let name = series.labels.metric_name().unwrap_or_default().to_owned();
            latest
                .entry(name)
                .or_default()
                .insert(series.labels, (t, v));
        }
    }
    let mut body = String::new();
    for (name, series) in &latest {
        let _ = writeln!(body, "# TYPE {name} untyped");
        for (labels, (t, v)) in series {
            body.push_str(name);
            let mut pairs = labels.iter().filter(|(k, _)| *k != METRIC_NAME).peekable();
            if pairs.peek().is_some() {
                body.push('{');
                for (i, (k, v)) in pairs.enumerate() {
                    if i > 0 {
                        body.push(',');
                    }
                    let _ = write!(body, "{k}=\"{}\"", escape(v));
                }
                body.push('}');
            }
            let _ = writeln!(body, " {} {t}", format_value(*v));
        }
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response())
}

/// Escapes a label value for the text format.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
