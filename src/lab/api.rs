//! The lab's ADMIN session with the app: log in, flip the experiment's switches, make a coupon
//! for a race, hand out its users, and read the database's truth after it. Everything goes
//! through the API (and the proxy in front of it), so the load host needs no database access
//! and no shell on VM1.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// How long one admin call may take (handing out 10,000 users is the longest).
const TIMEOUT: Duration = Duration::from_secs(120);

/// Who the lab logs in as.
pub struct Credentials {
    pub email: String,
    pub password: SecretString,
    /// Where they came from, for the log line.
    pub source: String,
}

impl Credentials {
    /// From `FASTPICK_ADMIN_EMAIL`/`FASTPICK_ADMIN_PASSWORD`, else the ADMIN line of
    /// `file` (the demo's credentials file), else of the one demo file in the temp dir.
    pub fn find(email: Option<&str>, file: Option<&Path>) -> anyhow::Result<Credentials> {
        if let Some(email) = email {
            let password = std::env::var("FASTPICK_ADMIN_PASSWORD").context(
                "FASTPICK_ADMIN_PASSWORD is not set: the admin's password is read from the environment, never from a flag",
            )?;
            return Ok(Credentials {
                email: email.to_owned(),
                password: password.into(),
                source: "FASTPICK_ADMIN_EMAIL/FASTPICK_ADMIN_PASSWORD".into(),
            });
        }
        let path = match file {
            Some(path) => path.to_owned(),
            None => newest_demo_file(&std::env::temp_dir())?,
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("failed to read {}", path.display()))?;
        let (email, password) =
            admin_line(&text).with_context(|| format!("{} has no ADMIN line", path.display()))?;
        Ok(Credentials {
            email,
            password,
            source: path.display().to_string(),
        })
    }
}

/// The `ADMIN\temail\tpassword` line of a demo credentials file.
fn admin_line(text: &str) -> Option<(String, SecretString)> {
    text.lines().find_map(|line| {
        let mut parts = line.splitn(3, '\t');
        match (parts.next(), parts.next(), parts.next()) {
            (Some("ADMIN"), Some(email), Some(password)) => {
                Some((email.to_owned(), password.to_owned().into()))
            }
            _ => None,
        }
    })
}

/// The newest `fastpick-demo-*.credentials` in `dir` (a running demo keeps one).
fn newest_demo_file(dir: &Path) -> anyhow::Result<PathBuf> {
    let missing = || {
        anyhow::anyhow!(
            "no admin credentials: set FASTPICK_ADMIN_EMAIL and FASTPICK_ADMIN_PASSWORD, or pass \
             --credentials FILE (a running `fastpick demo` keeps one in {})",
            dir.display()
        )
    };
    let entries = std::fs::read_dir(dir).map_err(|_| missing())?;
    entries
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("fastpick-demo-") && name.ends_with(".credentials")
        })
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .max()
        .map(|(_, path)| path)
        .ok_or_else(missing)
}

/// The switches as the app reports them.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Switches {
    pub issue_strategy: String,
    pub search_cache: String,
    pub switchable: bool,
}

/// One coupon's counter and rows, from the database.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(rename_all(deserialize = "camelCase"))]
pub struct Ledger {
    pub total_quantity: i64,
    pub issued_quantity: i64,
    pub issued_rows: i64,
    pub distinct_users: i64,
    pub duplicate_rows: i64,
}

/// A logged-in ADMIN.
pub struct Admin {
    client: reqwest::Client,
    base: String,
    token: SecretString,
}

impl Admin {
    /// Logs in at `base` (the proxy or the app).
    pub async fn login(base: &str, credentials: &Credentials) -> anyhow::Result<Admin> {
        let client = reqwest::Client::builder().timeout(TIMEOUT).build()?;
        let mut admin = Admin {
            client,
            base: base.trim_end_matches('/').to_owned(),
            token: SecretString::from(String::new()),
        };
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Tokens {
            access_token: String,
        }
        let body = json!({
            "email": credentials.email,
            "password": credentials.password.expose_secret(),
        });
        let tokens: Tokens = admin
            .call(reqwest::Method::POST, "/api/v1/auth/login", Some(body))
            .await
            .with_context(|| format!("the admin login ({}) failed", credentials.source))?;
        admin.token = tokens.access_token.into();
        Ok(admin)
    }

    /// The switches in effect.
    pub async fn switches(&self) -> anyhow::Result<Switches> {
        self.call(reqwest::Method::GET, "/api/v1/admin/experiment", None)
            .await
    }

    /// Sets the issue strategy and/or the search cache.
    pub async fn switch(
        &self,
        strategy: Option<&str>,
        cache: Option<&str>,
    ) -> anyhow::Result<Switches> {
        let body = json!({ "issueStrategy": strategy, "searchCache": cache });
        self.call(reqwest::Method::PUT, "/api/v1/admin/experiment", Some(body))
            .await
    }

    /// Makes a coupon that is issuing now, with `stock` to give; returns its id.
    pub async fn create_coupon(&self, title: &str, stock: u32) -> anyhow::Result<i64> {
        // Wide enough for any timezone the app may run in.
        let now = chrono::Utc::now().naive_utc();
        let wire = |t: chrono::NaiveDateTime| t.format("%Y-%m-%dT%H:%M:%S").to_string();
        let body = json!({
            "brand": "FastPick Lab",
            "title": title,
            "summary": "fastpick lab race",
            "description": "Made by `fastpick lab race` for one race.",
            "totalQuantity": stock,
            "startAt": wire(now - chrono::Duration::days(1)),
            "endAt": wire(now + chrono::Duration::days(2)),
        });
        self.call(reqwest::Method::POST, "/api/v1/admin/coupons", Some(body))
            .await
    }

    /// Tokens of `count` lab users.
    pub async fn lab_users(&self, count: usize) -> anyhow::Result<Vec<String>> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct User {
            access_token: String,
        }
        #[derive(Deserialize)]
        struct Users {
            users: Vec<User>,
        }
        let users: Users = self
            .call(
                reqwest::Method::POST,
                "/api/v1/admin/experiment/users",
                Some(json!({ "count": count })),
            )
            .await?;
        if users.users.len() < count {
            bail!(
                "the app handed out {} of {count} lab users: lab<N>@lab.fastpick.test addresses taken by signed-up accounts are never handed out",
                users.users.len()
            );
        }
        Ok(users.users.into_iter().map(|u| u.access_token).collect())
    }

    /// The database's truth about a coupon.
    pub async fn ledger(&self, coupon_id: i64) -> anyhow::Result<Ledger> {
        let path = format!("/api/v1/admin/experiment/coupons/{coupon_id}");
        self.call(reqwest::Method::GET, &path, None).await
    }

    /// One call; the envelope's `data` on success, its code and message as the error.
    async fn call<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<T> {
        let mut request = self
            .client
            .request(method.clone(), format!("{}{path}", self.base));
        if !self.token.expose_secret().is_empty() {
            request = request.bearer_auth(self.token.expose_secret());
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("{method} {}{path}", self.base))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let envelope: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if !status.is_success() {
            let code = envelope["code"].as_str().unwrap_or("");
            let message = envelope["message"].as_str().unwrap_or("");
            let hint = if status == reqwest::StatusCode::FORBIDDEN
                && path.starts_with("/api/v1/admin/experiment")
            {
                " (the app's lab endpoints are off: set app.experiment_switch = true, or FASTPICK_APP__EXPERIMENT_SWITCH=true)"
            } else {
                ""
            };
            bail!("{method} {path}: {status} {code} {message}{hint}");
        }
        serde_json::from_value(envelope["data"].clone())
            .with_context(|| format!("{method} {path}: unexpected answer"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_admin_line_of_a_demo_file_gives_the_credentials() {
        let text = "USER\tdemo@fastpick.local\tpw1\nADMIN\tadmin@fastpick.local\tp\tw2\n";
        let (email, password) = admin_line(text).expect("an admin line");
        assert_eq!(email, "admin@fastpick.local");
        assert_eq!(password.expose_secret(), "p\tw2");
        assert!(admin_line("USER\ta@b\tx\n").is_none());
    }

    #[test]
    fn the_newest_demo_file_is_found_and_none_is_a_clear_error() {
        let dir = std::env::temp_dir().join(format!("fastpick-lab-creds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let error = newest_demo_file(&dir).expect_err("none yet").to_string();
        assert!(error.contains("FASTPICK_ADMIN_PASSWORD"), "{error}");
        std::fs::write(dir.join("fastpick-demo-a.credentials"), "x").expect("write");
        std::fs::write(dir.join("other.credentials"), "x").expect("write");
        assert_eq!(
            newest_demo_file(&dir).expect("found"),
            dir.join("fastpick-demo-a.credentials")
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
