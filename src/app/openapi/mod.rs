//! The OpenAPI document of the API, generated from the handlers' annotations and served at
//! /api/v1/openapi.json. It states exactly what the server accepts and answers (the schema
//! fuzzer run by `.ci/schemathesis` holds it to that), and carries the compatibility notes
//! for clients of the original service.

pub mod types;

use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::app::state::AppState;
use crate::app::{admin, auth, coupons, experiment, issues, my_coupons};
use crate::envelope::Code;

/// Path of the document.
pub const OPENAPI_PATH: &str = "/api/v1/openapi.json";

#[derive(OpenApi)]
#[openapi(
    info(title = "FastPick API", description = include_str!("info.md")),
    paths(auth::signup, auth::login, auth::refresh, coupons::list_coupons, coupons::get_coupon,
        issues::issue_coupon, my_coupons::list_my_coupons, admin::create_coupon,
        experiment::current_switches, experiment::switch,
        experiment::users::lab_users, experiment::ledger::coupon_ledger),
    // The query parameters' schemas, which `params(..)` refers to but does not collect.
    components(schemas(crate::envelope::ErrorBody, crate::envelope::FieldError, types::SearchText,
        types::FilterType, types::PageParam, types::MyCouponFilter, types::AnyText)),
    modifiers(&Extras)
)]
struct ApiDoc;

/// Adds the bearer scheme and the table of error codes.
struct Extras;

impl Modify for Extras {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        let mut table = String::from(
            "\n\nError codes (envelope `{status, code, message, errors}`):\n\n| status | code | message |\n|---|---|---|\n",
        );
        for (status, code, message) in Code::ALL.map(Code::parts) {
            table.push_str(&format!("| {status} | {code} | {message} |\n"));
        }
        let description = openapi.info.description.get_or_insert_with(String::new);
        description.push_str(&table);
        for item in openapi.paths.paths.values_mut() {
            let path_operations = [
                item.get.as_mut(),
                item.post.as_mut(),
                item.put.as_mut(),
                item.delete.as_mut(),
                item.patch.as_mut(),
            ];
            for operation in path_operations.into_iter().flatten() {
                add_common_responses(operation);
            }
        }
    }
}

/// Adds the answers any operation can give, which the handlers' annotations leave out.
fn add_common_responses(operation: &mut Operation) {
    let mut common = vec![
        (
            405,
            "C008: the path exists but does not take this method (`Allow` lists those it takes)",
        ),
        (431, "C014: the request line and headers are over 8 KB"),
        (
            503,
            "C010: PostgreSQL (or a Redis the operation needs) is unavailable; retry later",
        ),
    ];
    if operation.request_body.is_some() {
        common.push((413, "C009: the body is over the limit (2 MB at the app; the proxy's `max_body_bytes`, 1 MB by default)"));
        common.push((415, "C006: the body is not sent as `application/json` (parameters such as `charset` allowed)"));
    }
    for (status, description) in common {
        operation
            .responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| error_response(description));
    }
}

/// A response carrying the error envelope.
pub fn error_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
        .into()
}

/// Returns the document.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// Routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new().route(OPENAPI_PATH, get(|| async { Json(document()) }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn doc() -> Value {
        serde_json::to_value(document()).expect("the document serialises")
    }

    #[test]
    fn request_bodies_require_every_field_the_server_requires() {
        let doc = doc();
        let cases: [(&str, &[&str]); 5] = [
            ("SignupRequest", &["email", "name", "password"]),
            ("LoginRequest", &["email", "password"]),
            ("RefreshRequest", &["refreshToken"]),
            ("IssueRequest", &["couponId"]),
            (
                "CreateCouponRequest",
                &[
                    "brand",
                    "description",
                    "endAt",
                    "startAt",
                    "summary",
                    "title",
                    "totalQuantity",
                ],
            ),
        ];
        for (schema, fields) in cases {
            let body = &doc["components"]["schemas"][schema];
            let mut required: Vec<&str> = body["required"]
                .as_array()
                .unwrap_or_else(|| panic!("{schema} has no required list"))
                .iter()
                .filter_map(Value::as_str)
                .collect();
            required.sort_unstable();
            assert_eq!(required, fields, "{schema}");
            for field in fields {
                let property = body["properties"][field].to_string();
                assert!(!property.contains("null"), "{schema}.{field} is nullable");
            }
        }
    }

    #[test]
    fn every_operation_lists_the_limits_and_bodies_list_their_type_errors() {
        let doc = doc();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("item") {
                let responses = &operation["responses"];
                for status in ["405", "431", "503"] {
                    assert!(responses.get(status).is_some(), "{method} {path} {status}");
                }
                let has_body = operation.get("requestBody").is_some();
                for status in ["413", "415"] {
                    assert_eq!(
                        responses.get(status).is_some(),
                        has_body,
                        "{method} {path} {status}"
                    );
                }
            }
        }
        let issue = &doc["paths"]["/api/v1/coupon-issues"]["post"]["responses"];
        assert!(issue.get("429").is_some(), "the proxy's issue rate limit");
    }

    #[test]
    fn filters_are_enums_of_the_values_the_server_parses() {
        let doc = doc();
        let schemas = &doc["components"]["schemas"];
        assert_eq!(
            schemas["FilterType"]["anyOf"][0]["enum"],
            serde_json::json!(["ALL", "READY", "ISSUING", "CLOSED"])
        );
        assert_eq!(
            schemas["MyCouponFilter"]["anyOf"][0]["enum"],
            serde_json::json!(["ALL", "AVAILABLE", "USED", "EXPIRED"])
        );
    }

    #[test]
    fn the_description_carries_the_compatibility_notes() {
        let description = document().info.description.unwrap_or_default();
        assert!(description.contains("Kept from the original service"));
        assert!(description.contains("Deliberately different"));
        assert!(!description.contains("API.md"));
    }
}
