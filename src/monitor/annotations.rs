//! Runs on the timeline. `fastpick load race|search --monitor URL` announces a run when it
//! starts and completes it with the summary's headline figures when it ends; the dashboard
//! draws each run as a band. Grafana's annotation fields (`time`, `timeEnd`, `text`, `tags`)
//! in the Prometheus API's JSON shapes:
//!
//! - `GET /api/v1/annotations?start=&end=`: the runs overlapping the range, oldest first;
//! - `POST /api/v1/annotations`: a new run, answers its `id`;
//! - `PUT /api/v1/annotations/{id}`: replaces a run (its end and figures).
//!
//! Kept in `annotations.jsonl` in the data dir: one JSON line per write, the last line of an
//! id wins, synced before the answer. A torn last line (a crash mid-write) is skipped on
//! open. Retention drops runs that ended before the store's retention and rewrites the file.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context;
use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, State};
use axum::response::Response;
use axum::routing::{get, put};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::monitor::Monitor;
use crate::monitor::api::{ApiError, ErrorType, Params, success};

/// The file's name in the data dir.
const FILE: &str = "annotations.jsonl";
/// The most runs kept; the oldest go first.
const MAX_KEPT: usize = 2_000;
/// The most runs one answer lists.
const MAX_LISTED: usize = 1_000;
/// The largest request body.
const MAX_BODY: usize = 64 * 1024;
const MAX_TITLE: usize = 200;
const MAX_TEXT: usize = 4 * 1024;
const MAX_TAGS: usize = 32;
const MAX_TAG_VALUE: usize = 128;
/// Timestamps are ms since the epoch, between 2000 and 2200.
const TIME_RANGE_MS: std::ops::RangeInclusive<i64> = 946_684_800_000..=7_258_118_400_000;

/// One run as stored and listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Annotation {
    pub id: String,
    /// Start, ms since the epoch.
    pub time: i64,
    /// End, ms since the epoch; `null` while the run goes on.
    pub time_end: Option<i64>,
    pub title: String,
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// The board it belongs on (`race`, `search`); every board when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub board: Option<String>,
}

/// A run as a client writes it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewAnnotation {
    pub time: i64,
    #[serde(default)]
    pub time_end: Option<i64>,
    pub title: String,
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub board: Option<String>,
}

impl NewAnnotation {
    /// Checks every field; the message names the first bad one.
    pub fn validate(&self) -> Result<(), String> {
        if !TIME_RANGE_MS.contains(&self.time) {
            return Err("time must be milliseconds since the epoch (2000..2200)".into());
        }
        if let Some(end) = self.time_end
            && (!TIME_RANGE_MS.contains(&end) || end < self.time)
        {
            return Err("timeEnd must be milliseconds since the epoch, not before time".into());
        }
        let title = self.title.trim();
        if title.is_empty() || title.chars().count() > MAX_TITLE {
            return Err(format!("title must have 1 to {MAX_TITLE} characters"));
        }
        if self.text.len() > MAX_TEXT {
            return Err(format!("text must have at most {MAX_TEXT} bytes"));
        }
        if self.tags.len() > MAX_TAGS {
            return Err(format!("at most {MAX_TAGS} tags"));
        }
        for (key, value) in &self.tags {
            if !is_name(key, 64) {
                return Err(format!(
                    "tag name {key:?} must be 1 to 64 letters, digits or _"
                ));
            }
            if value.chars().count() > MAX_TAG_VALUE {
                return Err(format!(
                    "tag {key} must have at most {MAX_TAG_VALUE} characters"
                ));
            }
        }
        if let Some(board) = &self.board {
            let ok = !board.is_empty()
                && board.len() <= 32
                && board
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !ok {
                return Err("board must be 1 to 32 of a-z, 0-9 and -".into());
            }
        }
        Ok(())
    }

    fn with_id(self, id: String) -> Annotation {
        Annotation {
            id,
            time: self.time,
            time_end: self.time_end,
            title: self.title.trim().to_owned(),
            text: self.text,
            tags: self.tags,
            board: self.board,
        }
    }
}

fn is_name(text: &str, max: usize) -> bool {
    !text.is_empty()
        && text.len() <= max
        && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The runs, in memory and in their file.
pub struct Annotations {
    path: PathBuf,
    state: Mutex<Kept>,
}

struct Kept {
    by_id: BTreeMap<String, Annotation>,
    file: File,
    /// Lines in the file; a rewrite is due when far above the runs kept.
    lines: usize,
}

impl Annotations {
    /// Opens (or creates) the runs' file in `dir`, skipping lines that do not parse.
    pub fn open(dir: &Path) -> anyhow::Result<Annotations> {
        let path = dir.join(FILE);
        let mut by_id = BTreeMap::new();
        let mut lines = 0;
        match File::open(&path) {
            Ok(file) => {
                // Bytes, not text: a torn line may end inside a multi-byte character.
                for line in BufReader::new(file).split(b'\n') {
                    let line =
                        line.with_context(|| format!("failed to read {}", path.display()))?;
                    lines += 1;
                    match serde_json::from_slice::<Annotation>(&line) {
                        Ok(a) => {
                            by_id.insert(a.id.clone(), a);
                        }
                        Err(e) => tracing::warn!(error = %e, "skipped a torn annotation line"),
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("failed to open {}", path.display())),
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("failed to open {}", path.display()))?;
        let annotations = Annotations {
            path,
            state: Mutex::new(Kept { by_id, file, lines }),
        };
        // A torn line must not glue itself to the next record.
        annotations.rewrite()?;
        Ok(annotations)
    }

    /// Stores a new run and returns its id; past [`MAX_KEPT`] runs the oldest goes.
    pub fn add(&self, new: NewAnnotation) -> anyhow::Result<String> {
        let id: String = rand::rng()
            .sample_iter(&rand::distr::Alphanumeric)
            .take(12)
            .map(char::from)
            .collect();
        self.write(new.with_id(id.clone()))?;
        let full = self.lock().by_id.len() > MAX_KEPT;
        if full {
            self.maintain(i64::MIN)?;
        }
        Ok(id)
    }

    /// Replaces a run; `false` when there is no run with that id.
    pub fn replace(&self, id: &str, new: NewAnnotation) -> anyhow::Result<bool> {
        let known = self.lock().by_id.contains_key(id);
        if known {
            self.write(new.with_id(id.to_owned()))?;
        }
        Ok(known)
    }

    /// The runs overlapping `[start, end]` (ms), oldest first; a running run reaches now.
    pub fn list(&self, start: i64, end: i64) -> Vec<Annotation> {
        let mut runs: Vec<Annotation> = self
            .lock()
            .by_id
            .values()
            .filter(|a| a.time <= end && a.time_end.unwrap_or(i64::MAX) >= start)
            .cloned()
            .collect();
        runs.sort_by(|a, b| (a.time, &a.id).cmp(&(b.time, &b.id)));
        let skip = runs.len().saturating_sub(MAX_LISTED);
        runs.split_off(skip)
    }

    /// Drops runs that ended before `oldest` (ms) and the oldest beyond the cap.
    pub fn maintain(&self, oldest: i64) -> anyhow::Result<()> {
        let dropped = {
            let mut state = self.lock();
            let before = state.by_id.len();
            state
                .by_id
                .retain(|_, a| a.time_end.unwrap_or(a.time).max(a.time) >= oldest);
            let excess = state.by_id.len().saturating_sub(MAX_KEPT);
            if excess > 0 {
                let mut oldest: Vec<(i64, String)> = state
                    .by_id
                    .values()
                    .map(|a| (a.time, a.id.clone()))
                    .collect();
                oldest.sort();
                for (_, id) in oldest.into_iter().take(excess) {
                    state.by_id.remove(&id);
                }
            }
            before - state.by_id.len() > 0 || state.lines > 2 * state.by_id.len() + 64
        };
        if dropped { self.rewrite() } else { Ok(()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        // A panic while holding the lock leaves whole records behind: keep going.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self, annotation: Annotation) -> anyhow::Result<()> {
        let mut line = serde_json::to_vec(&annotation)?;
        line.push(b'\n');
        let mut state = self.lock();
        let written = state
            .file
            .write_all(&line)
            .and_then(|()| state.file.sync_data());
        if let Err(e) = written {
            // A partial line must not glue itself to the next record: write the file anew
            // from what is kept (without this run).
            drop(state);
            let _ = self.rewrite();
            return Err(e).context("failed to write the annotations file");
        }
        state.lines += 1;
        state.by_id.insert(annotation.id.clone(), annotation);
        Ok(())
    }

    /// Writes the kept runs to a new file and renames it over the old one.
    fn rewrite(&self) -> anyhow::Result<()> {
        let mut state = self.lock();
        let temp = self.path.with_extension("jsonl.tmp");
        let mut out = File::create(&temp)?;
        for annotation in state.by_id.values() {
            let mut line = serde_json::to_vec(annotation)?;
            line.push(b'\n');
            out.write_all(&line)?;
        }
        out.sync_all()?;
        std::fs::rename(&temp, &self.path)?;
        // The rename itself is durable only once the directory is synced.
        if let Some(dir) = self.path.parent() {
            File::open(dir)?.sync_all()?;
        }
        state.file = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.path)
            .with_context(|| format!("failed to reopen {}", self.path.display()))?;
        state.lines = state.by_id.len();
        Ok(())
    }
}

/// The runs' routes.
pub fn router() -> Router<Monitor> {
    Router::new()
        .route("/api/v1/annotations", get(list).post(create))
        .route("/api/v1/annotations/{id}", put(update))
        .layer(DefaultBodyLimit::max(MAX_BODY))
}

async fn list(State(monitor): State<Monitor>, params: Params) -> Result<Response, ApiError> {
    let now = crate::monitor::scrape::now_ms();
    let end = params.time("end", now)?;
    let start = params.time("start", i64::MIN)?;
    if end < start {
        return Err(ApiError::bad_data(
            "invalid parameter \"end\": end timestamp must not be before start time",
        ));
    }
    let runs = blocking(move || Ok(monitor.annotations().list(start, end))).await?;
    Ok(success(runs))
}

/// Runs file work (a synced write, or a wait for one) off the async workers.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(internal(e)),
        Err(e) => Err(internal(anyhow::anyhow!("annotation task failed: {e}"))),
    }
}

fn body(json: Result<axum::Json<NewAnnotation>, JsonRejection>) -> Result<NewAnnotation, ApiError> {
    let axum::Json(new) = json.map_err(|e| ApiError::bad_data(e.body_text()))?;
    new.validate().map_err(ApiError::bad_data)?;
    Ok(new)
}

fn internal(e: anyhow::Error) -> ApiError {
    tracing::error!(error = %e, "failed to store an annotation");
    ApiError {
        kind: ErrorType::Internal,
        message: "failed to store the annotation".into(),
    }
}

async fn create(
    State(monitor): State<Monitor>,
    json: Result<axum::Json<NewAnnotation>, JsonRejection>,
) -> Result<Response, ApiError> {
    let new = body(json)?;
    let id = blocking(move || monitor.annotations().add(new)).await?;
    Ok(success(serde_json::json!({ "id": id })))
}

async fn update(
    State(monitor): State<Monitor>,
    UrlPath(id): UrlPath<String>,
    json: Result<axum::Json<NewAnnotation>, JsonRejection>,
) -> Result<Response, ApiError> {
    let new = body(json)?;
    let key = id.clone();
    if !blocking(move || monitor.annotations().replace(&key, new)).await? {
        return Err(ApiError {
            kind: ErrorType::NotFound,
            message: format!("no annotation with id {id:?}"),
        });
    }
    Ok(success(serde_json::json!({ "id": id })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(time: i64, end: Option<i64>) -> NewAnnotation {
        NewAnnotation {
            time,
            time_end: end,
            title: "race · db-lock · 100 VUs".into(),
            text: String::new(),
            tags: BTreeMap::from([("scenario".into(), "race".into())]),
            board: Some("race".into()),
        }
    }

    const T: i64 = 1_764_000_000_000;

    #[test]
    fn runs_survive_a_reopen_and_a_torn_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let store = Annotations::open(dir.path()).unwrap();
        let id = store.add(run(T, None)).unwrap();
        assert!(store.replace(&id, run(T, Some(T + 5_000))).unwrap());
        assert!(!store.replace("nope", run(T, None)).unwrap());
        drop(store);
        // A crash in the middle of a write leaves half a line.
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join(FILE))
            .unwrap();
        // Cut inside the two bytes of '·' in a title.
        let torn = "{\"id\":\"half\",\"title\":\"race ·".as_bytes();
        file.write_all(&torn[..torn.len() - 1]).unwrap();
        let store = Annotations::open(dir.path()).unwrap();
        let runs = store.list(i64::MIN, i64::MAX);
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].time_end, Some(T + 5_000));
        // The next record is not glued to the torn one.
        store.add(run(T + 10_000, None)).unwrap();
        let store = Annotations::open(dir.path()).unwrap();
        assert_eq!(store.list(i64::MIN, i64::MAX).len(), 2);
    }

    #[test]
    fn lists_the_runs_overlapping_the_range() {
        let dir = tempfile::tempdir().unwrap();
        let store = Annotations::open(dir.path()).unwrap();
        store.add(run(T, Some(T + 1_000))).unwrap();
        store.add(run(T + 10_000, None)).unwrap();
        assert_eq!(store.list(T + 500, T + 600).len(), 1);
        assert_eq!(store.list(T + 2_000, T + 3_000).len(), 0);
        // A run that goes on overlaps every later range.
        assert_eq!(store.list(T + 50_000, T + 60_000).len(), 1);
        assert_eq!(store.list(T - 10, T + 20_000).len(), 2);
    }

    #[test]
    fn retention_drops_old_runs_and_rewrites_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = Annotations::open(dir.path()).unwrap();
        store.add(run(T, Some(T + 1_000))).unwrap();
        store.add(run(T + 100_000, Some(T + 101_000))).unwrap();
        store.maintain(T + 50_000).unwrap();
        assert_eq!(store.list(i64::MIN, i64::MAX).len(), 1);
        let text = std::fs::read_to_string(dir.path().join(FILE)).unwrap();
        assert_eq!(text.lines().count(), 1);
    }

    #[test]
    fn bad_runs_are_refused_with_the_field_named() {
        let bad = |f: &dyn Fn(&mut NewAnnotation)| {
            let mut a = run(T, None);
            f(&mut a);
            a.validate().unwrap_err()
        };
        assert!(bad(&|a| a.time = 5).contains("time"));
        assert!(bad(&|a| a.time_end = Some(T - 1)).contains("timeEnd"));
        assert!(bad(&|a| a.title = "  ".into()).contains("title"));
        assert!(bad(&|a| a.title = "x".repeat(201)).contains("title"));
        assert!(bad(&|a| a.text = "x".repeat(MAX_TEXT + 1)).contains("text"));
        assert!(
            bad(&|a| {
                a.tags.insert("bad name".into(), "v".into());
            })
            .contains("tag")
        );
        assert!(bad(&|a| a.board = Some("Race!".into())).contains("board"));
        assert!(bad(&|a| a.board = Some(String::new())).contains("board"));
        assert!(run(T, Some(T)).validate().is_ok());
    }
}
