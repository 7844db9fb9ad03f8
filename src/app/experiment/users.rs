//! `POST /api/v1/admin/experiment/users`: the lab's race needs a thousand users with tokens,
//! and the load host has no database access. An ADMIN asks for N users and gets their access
//! tokens; the users are `lab1@lab.fastpick.test` … `labN@lab.fastpick.test`, made on first
//! use and reused after. They have no password that any login accepts: only these tokens
//! (valid for `auth.access_token_ttl`) act for them. An account that someone signed up under
//! such an address is never handed out: it has a password. Off unless `app.experiment_switch`.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::auth::AdminUser;
use crate::app::error::{ApiError, Result};
use crate::app::extract::{ApiJson, Validate};
use crate::app::state::AppState;
use crate::app::validate::Rules;
use crate::envelope::{Envelope, ErrorBody, FieldError, ok};

/// Most users one request may ask for.
pub const MAX_USERS: i64 = 10_000;

/// Stored in place of a password hash: bcrypt never verifies it, so no login succeeds.
const NO_PASSWORD: &str = "!lab-user: tokens only";

/// The lab users' e-mail address.
pub fn lab_email(n: i64) -> String {
    format!("lab{n}@lab.fastpick.test")
}

/// How many lab users to hand out.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LabUsersRequest {
    #[serde(default, deserialize_with = "crate::app::lenient::opt_i64")]
    #[schema(value_type = crate::app::openapi::types::LabUserCount, required = true)]
    pub count: Option<i64>,
}

impl Validate for LabUsersRequest {
    fn validate(&self) -> Vec<FieldError> {
        let mut rules = Rules::new();
        match self.count {
            None => rules.fail("count", "", "사용자 수는 필수입니다."),
            Some(n) if !(1..=MAX_USERS).contains(&n) => rules.fail(
                "count",
                &n.to_string(),
                "사용자 수는 1 이상 10000 이하여야 합니다.",
            ),
            Some(_) => {}
        }
        rules.finish()
    }
}

/// One lab user and the token that acts for it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LabUser {
    pub id: i64,
    pub email: String,
    pub access_token: String,
}

/// The users asked for, in order.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LabUsers {
    pub users: Vec<LabUser>,
    /// Seconds the tokens stay valid.
    pub expires_in: u64,
}

// POST /api/v1/admin/experiment/users
#[utoipa::path(post, path = "/api/v1/admin/experiment/users", tag = "admin", request_body = LabUsersRequest,
    security(("bearer" = [])),
    description = "Hands out `count` lab users (`lab1@lab.fastpick.test` …), made on first use, with an access token each, so that `fastpick lab race` needs no database access. \
        The users cannot log in: only these tokens act for them. Off unless `app.experiment_switch = true`. FastPick only.",
    responses((status = 200, body = Envelope<LabUsers>),
        (status = 400, body = ErrorBody, description = "C001 count missing or outside 1..10000, C002 wrong type"),
        (status = 401, body = ErrorBody, description = "C003 missing, A001 invalid, A002 expired token"),
        (status = 403, body = ErrorBody, description = "C004 not an admin, or the lab's endpoints are off in this deployment")))]
#[tracing::instrument(level = "debug", skip_all, fields(admin_id = admin.id))]
pub(super) async fn lab_users(
    State(state): State<AppState>,
    admin: AdminUser,
    ApiJson(req): ApiJson<LabUsersRequest>,
) -> Result<Json<Envelope<LabUsers>>> {
    if !state.experiment.switchable() {
        return Err(ApiError::Forbidden);
    }
    let count = req.count.unwrap_or(1);
    let emails: Vec<String> = (1..=count).map(lab_email).collect();
    let now = state.clock.now();
    sqlx::query(
        "insert into tb_user (created_at, updated_at, email, password, name, role)
         select $1, $1, e, $3, split_part(e, '@', 1), 'USER' from unnest($2::text[]) as t(e)
         on conflict (email) do nothing",
    )
    .bind(now)
    .bind(&emails)
    .bind(NO_PASSWORD)
    .execute(&state.db)
    .await?;
    let rows: Vec<(i64, String)> = sqlx::query_as(
        "select u.id, u.email from unnest($1::text[]) with ordinality as t(e, n)
         join tb_user u on u.email = t.e and u.role = 'USER' and u.password = $2 order by t.n",
    )
    .bind(&emails)
    .bind(NO_PASSWORD)
    .fetch_all(&state.db)
    .await?;
    let tokens = state.tokens.clone();
    let users = tokio::task::spawn_blocking(move || {
        let ttl = tokens.access_ttl();
        rows.into_iter()
            .map(|(id, email)| {
                let access_token = tokens.access_token(id, &email, "USER", ttl)?;
                Ok(LabUser {
                    id,
                    email,
                    access_token,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()
    })
    .await
    .map_err(|e| ApiError::Internal(e.into()))??;
    tracing::info!(
        target: "fastpick::audit",
        admin_id = admin.id,
        count,
        "lab users handed out"
    );
    Ok(ok(LabUsers {
        users,
        expires_in: state.tokens.access_ttl().as_secs(),
    }))
}
