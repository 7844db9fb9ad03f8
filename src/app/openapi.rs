//! The OpenAPI document of the API, generated from the handlers' annotations and served at
//! /api/v1/openapi.json.

use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::app::state::AppState;
use crate::app::{admin, auth, coupons, issues, my_coupons};
use crate::envelope::Code;

/// Path of the document.
pub const OPENAPI_PATH: &str = "/api/v1/openapi.json";

#[derive(OpenApi)]
#[openapi(
    info(title = "FastPick API", description = "Wire-compatible with the original coupon service; see API.md."),
    paths(auth::signup, auth::login, auth::refresh, coupons::list_coupons, coupons::get_coupon,
        issues::issue_coupon, my_coupons::list_my_coupons, admin::create_coupon),
    components(schemas(crate::envelope::ErrorBody, crate::envelope::FieldError)),
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
    }
}

/// Returns the document.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// Routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new().route(OPENAPI_PATH, get(|| async { Json(document()) }))
}
