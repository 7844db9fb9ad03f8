//! The success envelope `{code: "S000", message: "Success", data}` (API.md 1.3).

use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

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
    Json(Envelope {
        code: "S000",
        message: "Success",
        data,
    })
}
