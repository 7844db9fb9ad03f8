//! The lab dashboard. Its boards (`assets/dashboard/boards.json`) ship as Grafana dashboards
//! under `config/grafana/`, generated here and checked equal. With an app behind the proxy, a
//! second app on the other strategy, and the monitor scraping them, PostgreSQL and Redis
//! every two seconds, a race per strategy and a search run: every query of the Grafana files
//! evaluates with data, and a real browser (Debian's chromium, driven by playwright-core from
//! `tests/browser/`) draws every board, works the time picker and the explore box, and shows
//! the runs. Screenshots land in `target/test-artifacts/dashboard/`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fastpick::config::{IssueStrategy, ScrapeJob};
use fastpick::load::race::RaceArgs;
use fastpick::load::search::SearchArgs;
use fastpick::load::{CommonArgs, LoadArgs, Scenario};
use serde_json::{Value, json};

use super::{TestMonitor, enc, job, monitor_settings};
use crate::helpers::{CouponSpec, spawn_app_with, spawn_with, test_settings};
use crate::proxy::start_proxy;

/// Panels that may have no series on a short run: locks other than the monitor's own come
/// and go within a scrape.
const MAY_BE_EMPTY: &[&str] = &["pg-locks"];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn boards() -> Value {
    let path = root().join("assets/dashboard/boards.json");
    let text = std::fs::read_to_string(&path).expect("boards.json");
    serde_json::from_str(&text).expect("boards.json is JSON")
}

/// Grafana's unit id for a board unit.
fn grafana_unit(unit: &str) -> &str {
    match unit {
        "ratio" => "percentunit",
        "cores" => "short",
        other => other,
    }
}

/// One board as a Grafana dashboard: time series panels two to a row, the data source a
/// variable (pick the monitor on import), the crosshair shared, thresholds drawn as lines.
fn grafana(board: &Value) -> Value {
    let id = board["id"].as_str().expect("board id");
    let datasource = json!({"type": "prometheus", "uid": "${datasource}"});
    let panels: Vec<Value> = board["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .enumerate()
        .map(|(i, panel)| {
            let targets: Vec<Value> = panel["queries"]
                .as_array()
                .expect("queries")
                .iter()
                .enumerate()
                .map(|(j, q)| {
                    json!({
                        "datasource": datasource,
                        "expr": q["expr"],
                        "legendFormat": q["legend"],
                        "range": true,
                        "refId": char::from(b'A' + j as u8).to_string(),
                    })
                })
                .collect();
            let mut custom = json!({
                "drawStyle": "line",
                "fillOpacity": 10,
                "lineWidth": 1,
                "showPoints": "never",
                "spanNulls": false,
            });
            let mut defaults = json!({"unit": grafana_unit(panel["unit"].as_str().expect("unit"))});
            if panel["scale"] == "log" {
                custom["scaleDistribution"] = json!({"type": "log", "log": 10});
            }
            if let Some(lines) = panel["thresholds"].as_array() {
                let mut steps = vec![json!({"color": "transparent", "value": null})];
                let mut values: Vec<f64> =
                    lines.iter().filter_map(|t| t["value"].as_f64()).collect();
                values.sort_by(f64::total_cmp);
                steps.extend(values.iter().map(|v| json!({"color": "red", "value": v})));
                defaults["thresholds"] = json!({"mode": "absolute", "steps": steps});
                custom["thresholdsStyle"] = json!({"mode": "line"});
            }
            defaults["custom"] = custom;
            json!({
                "datasource": datasource,
                "description": panel["empty"],
                "fieldConfig": {"defaults": defaults, "overrides": []},
                "gridPos": {"h": 8, "w": 12, "x": (i % 2) * 12, "y": (i / 2) * 8},
                "id": i + 1,
                "options": {
                    "legend": {"displayMode": "list", "placement": "bottom", "showLegend": true},
                    "tooltip": {"mode": "multi", "sort": "none"},
                },
                "targets": targets,
                "title": panel["title"],
                "type": "timeseries",
            })
        })
        .collect();
    json!({
        "annotations": {"list": []},
        "description": board["description"],
        "editable": true,
        "graphTooltip": 1,
        "links": [{
            "asDropdown": false,
            "includeVars": true,
            "keepTime": true,
            "tags": ["fastpick"],
            "title": "FastPick boards",
            "type": "dashboards",
        }],
        "panels": panels,
        "refresh": "5s",
        "schemaVersion": 39,
        "tags": ["fastpick"],
        "templating": {"list": [{
            "current": {},
            "label": "Data source",
            "name": "datasource",
            "query": "prometheus",
            "type": "datasource",
        }]},
        "time": {"from": "now-15m", "to": "now"},
        "timezone": "browser",
        "title": format!("FastPick · {}", board["title"].as_str().expect("title")),
        "uid": format!("fastpick-{id}"),
        "version": 1,
    })
}

fn grafana_path(id: &str) -> PathBuf {
    root().join(format!("config/grafana/fastpick-{id}.json"))
}

/// `config/grafana/` holds exactly the boards, as generated; `FASTPICK_UPDATE_GRAFANA=1`
/// rewrites the files after a change to boards.json.
#[test]
fn the_grafana_dashboards_are_the_boards() {
    let boards = boards();
    let update = std::env::var_os("FASTPICK_UPDATE_GRAFANA").is_some();
    let mut expected = Vec::new();
    for board in boards["boards"].as_array().expect("boards") {
        let id = board["id"].as_str().expect("id");
        let path = grafana_path(id);
        let text = serde_json::to_string_pretty(&grafana(board)).expect("json") + "\n";
        if update {
            std::fs::write(&path, &text).expect("write");
        }
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            on_disk == text,
            "{} is not what boards.json makes: run FASTPICK_UPDATE_GRAFANA=1 cargo test the_grafana_dashboards",
            path.display()
        );
        expected.push(path.file_name().expect("name").to_owned());
    }
    for entry in std::fs::read_dir(root().join("config/grafana")).expect("config/grafana") {
        let name = entry.expect("entry").file_name();
        let is_board = name.to_string_lossy().starts_with("fastpick-");
        assert!(
            !is_board || expected.contains(&name),
            "config/grafana/{} is no board of boards.json",
            name.to_string_lossy()
        );
    }
}

/// index.html carries the first board's title and description as static text (painted
/// before any script runs) and a link per board: they must follow boards.json.
#[test]
fn the_static_page_names_the_boards_of_boards_json() {
    let html = std::fs::read_to_string(root().join("assets/dashboard/index.html")).expect("html");
    let boards = boards();
    let boards = boards["boards"].as_array().expect("boards");
    let first = &boards[0];
    for text in [&first["title"], &first["description"]] {
        let text = text.as_str().expect("text");
        assert!(html.contains(text), "index.html lacks {text:?}");
    }
    for board in boards {
        let link = format!(
            "<a href=\"#/{}\" data-view=\"{}\">{}</a>",
            board["id"].as_str().expect("id"),
            board["id"].as_str().expect("id"),
            board["title"].as_str().expect("title")
        );
        assert!(html.contains(&link), "index.html lacks {link}");
    }
}

/// Every query of the Grafana files, by panel: (file, panel title, exprs).
fn grafana_queries() -> Vec<(String, String, Vec<String>)> {
    let mut out = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("config/grafana"))
        .expect("config/grafana")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    for path in files {
        let text = std::fs::read_to_string(&path).expect("read");
        let dashboard: Value = serde_json::from_str(&text).expect("Grafana JSON");
        for panel in dashboard["panels"].as_array().expect("panels") {
            let exprs = panel["targets"]
                .as_array()
                .expect("targets")
                .iter()
                .map(|t| t["expr"].as_str().expect("expr").to_owned())
                .collect();
            out.push((
                path.file_name()
                    .expect("name")
                    .to_string_lossy()
                    .into_owned(),
                panel["title"].as_str().expect("title").to_owned(),
                exprs,
            ));
        }
    }
    out
}

fn common(base: &str, monitor: &str) -> CommonArgs {
    CommonArgs {
        base_url: base.to_owned(),
        timeout: Duration::from_secs(30),
        json: None,
        quiet: true,
        monitor: Some(monitor.to_owned()),
        // Sold-out 400s are expected answers of these races, as k6's
        // `http.setResponseCallback(http.expectedStatuses({ min: 200, max: 399 }, 400))`.
        k6: fastpick::load::k6::K6Args {
            expected_statuses: "200-399,400".parse().expect("statuses"),
            ..Default::default()
        },
    }
}

fn addr_of(base: &str) -> String {
    base.trim_start_matches("http://").to_owned()
}

/// Queries the monitor until `query` has a value of at least `at_least`.
async fn wait_for(monitor: &TestMonitor, query: &str, at_least: f64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, body) = monitor
            .get(&format!("/api/v1/query?query={}", enc(query)))
            .await;
        let value = body["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
        if value >= at_least {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{query} stayed at {value} < {at_least}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_dashboard_draws_every_board_of_a_live_lab_in_a_real_browser() {
    let browser = root().join("tests/browser");
    assert!(
        browser.join("node_modules/playwright-core").is_dir(),
        "playwright-core is not installed: run `npm ci --prefix tests/browser` (the README's test command does)"
    );
    // The lab: db-lock behind the proxy, redis-gate beside it, one database and one Redis.
    let lock = spawn_app_with(|s| s.issue.strategy = IssueStrategy::DbLock).await;
    let redis_port = lock.redis.as_ref().expect("own redis").port;
    let mut gate_settings = test_settings(lock.db_port, &lock.db_name, redis_port);
    gate_settings.issue.strategy = IssueStrategy::RedisGate;
    let gate = spawn_with(gate_settings.clone(), None).await;
    let proxy = start_proxy(&format!(
        "upstreams = [\"{}\"]\nactuator_allow = [\"127.0.0.1\"]\n",
        addr_of(&lock.base)
    ))
    .await;
    // Every 2 s rather than the lab's 1 s: a debug-built app racing on a busy 2-core machine
    // can miss a 1 s scrape timeout, and a gap longer than the 4 s rate window then hides
    // the race from a panel. At 2 s the dashboard's rate window is 8 s.
    let every = Duration::from_secs(2);
    // As on VM3: the app behind the proxy is scraped through it; the other one directly.
    let apps = ScrapeJob {
        targets: vec![addr_of(&proxy.base), addr_of(&gate.base)],
        ..job("fastpick-app", "", "/actuator/prometheus", every)
    };
    let mut settings = monitor_settings(vec![
        apps,
        job(
            "fastpick-proxy",
            &addr_of(&proxy.base),
            "/actuator/proxy/prometheus",
            every,
        ),
    ]);
    settings.monitor.scrape_interval = every;
    settings.monitor.scrape_timeout = every;
    settings.monitor.postgres = true;
    settings.monitor.redis = true;
    settings.monitor.self_scrape = true;
    settings.monitor.processes = vec!["postgres".into(), "redis-server".into()];
    settings.database = gate_settings.database.clone();
    settings.redis = gate_settings.redis.clone();
    let monitor = TestMonitor::start(settings).await;
    // Both apps, the proxy, PostgreSQL, Redis, the host's processes and the monitor itself.
    wait_for(&monitor, "count(up == 1)", 7.0).await;
    // The servers the harness started are found by name on this host.
    for name in ["postgres", "redis-server"] {
        let query = format!("namedprocess_namegroup_num_procs{{groupname=\"{name}\"}}");
        wait_for(&monitor, &query, 1.0).await;
    }

    // Each app answers one issue (200) and one refusal (400) first, and the monitor scrapes
    // them: a series born during a race has no earlier sample, so rate() shows no increase
    // for a race that falls between two scrapes (PromQL's rule, Prometheus's too).
    for (base, prefix) in [(&proxy.base, "warm-lock"), (&gate.base, "warm-gate")] {
        let coupon = lock
            .coupon(CouponSpec {
                total: 1,
                ..Default::default()
            })
            .await;
        let csv = lock.users_csv(&lock.users_named(prefix, 2).await);
        let mut quiet = common(base, "");
        quiet.monitor = None;
        let warm = LoadArgs {
            scenario: Scenario::Race(RaceArgs {
                common: quiet,
                users: csv.clone(),
                coupon_id: coupon,
                vus: 2,
                max_failed_rate: 0.05,
                connect_at_barrier: false,
            }),
        };
        let result = fastpick::load::run(warm).await;
        std::fs::remove_file(&csv).ok();
        result.expect("warm-up issues pass");
    }
    wait_for(
        &monitor,
        r#"count(http_server_requests_seconds_count{uri="/api/v1/coupon-issues"})"#,
        4.0,
    )
    .await;

    // One search twice (a miss, then a hit), so the cache's hit series exists from here on:
    // a series born during the search run below needs two scrapes inside the 8 s rate window
    // before the hit-ratio panel shows it, and a busy machine's late scrape hid it once.
    for _ in 0..2 {
        let search = format!(
            "{}/api/v1/coupons?search=nike&filterType=ISSUING",
            proxy.base
        );
        let status = reqwest::get(&search).await.expect("search").status();
        assert_eq!(status, 200);
    }

    // A race per strategy and a search run, each announced to the monitor.
    // FASTPICK_DASHBOARD_VUS=1000 gives the original's race for screenshots.
    let vus: usize = std::env::var("FASTPICK_DASHBOARD_VUS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150);
    let mut issued = 0;
    for (base, prefix) in [(&proxy.base, "locker"), (&gate.base, "gater")] {
        let coupon = lock
            .coupon(CouponSpec {
                total: 50,
                ..Default::default()
            })
            .await;
        let tokens = lock.users_named(prefix, vus).await;
        let csv = lock.users_csv(&tokens);
        let race = LoadArgs {
            scenario: Scenario::Race(RaceArgs {
                common: common(base, &monitor.base),
                users: csv.clone(),
                coupon_id: coupon,
                vus,
                max_failed_rate: 0.05,
                connect_at_barrier: false,
            }),
        };
        let result = fastpick::load::run(race).await;
        std::fs::remove_file(&csv).ok();
        result.expect("race passes");
        issued += vus;
    }
    let search = LoadArgs {
        scenario: Scenario::Search(SearchArgs {
            common: common(&proxy.base, &monitor.base),
            stages: String::new(),
            think_min: Duration::from_millis(5),
            think_max: Duration::from_millis(15),
            rate: Some(20),
            duration: Duration::from_secs(8),
            max_vus: 50,
            ghost_ratio: 0.3,
            // A busy CI machine: the point here is the picture, not the bar.
            max_p99: Duration::from_secs(30),
            max_failed_rate: 0.01,
        }),
    };
    fastpick::load::run(search).await.expect("search passes");
    // The warm-up's four requests, then the races'.
    wait_for(
        &monitor,
        "sum(fastpick_issue_requests_total)",
        (issued + 4) as f64,
    )
    .await;

    // Every query of the Grafana files evaluates, and every panel has data.
    let (_, runs) = monitor.get("/api/v1/annotations").await;
    let runs = runs["data"].as_array().expect("runs").clone();
    assert_eq!(runs.len(), 3, "{runs:?}");
    assert!(runs.iter().all(|r| r["timeEnd"].is_i64()), "{runs:?}");
    let titles: Vec<&str> = runs.iter().filter_map(|r| r["title"].as_str()).collect();
    for strategy in ["db-lock", "redis-gate"] {
        let title = format!("race · {strategy} · {vus} VUs");
        assert!(titles.contains(&title.as_str()), "{title} in {titles:?}");
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let mut empty = Vec::new();
    for (file, title, exprs) in grafana_queries() {
        let mut series = 0;
        for expr in &exprs {
            let expr = expr.replace("$__rate_interval", "8s");
            let (status, body) = monitor
                .get(&format!(
                    "/api/v1/query_range?query={}&start={}&end={now}&step=1",
                    enc(&expr),
                    now - 120
                ))
                .await;
            assert_eq!(status, 200, "{file} {title}: {expr}: {body}");
            series += body["data"]["result"].as_array().map_or(0, Vec::len);
        }
        if series == 0 {
            empty.push(title);
        }
    }
    let allowed: Vec<String> = boards()["boards"]
        .as_array()
        .expect("boards")
        .iter()
        .flat_map(|b| b["panels"].as_array().expect("panels").clone())
        .filter(|p| MAY_BE_EMPTY.contains(&p["id"].as_str().unwrap_or("")))
        .filter_map(|p| p["title"].as_str().map(str::to_owned))
        .collect();
    empty.retain(|t| !allowed.contains(t));
    assert!(empty.is_empty(), "panels without data: {empty:?}");

    // The browser.
    let artifacts = root().join("target/test-artifacts/dashboard");
    std::fs::create_dir_all(&artifacts).expect("artifact dir");
    let out = tokio::process::Command::new("node")
        .arg(browser.join("dashboard.mjs"))
        .env("MONITOR_URL", &monitor.base)
        .env("ARTIFACT_DIR", &artifacts)
        .env("ALLOW_EMPTY", MAY_BE_EMPTY.join(","))
        .env("EXPECT_ANNOTATION", "race · db-lock")
        .kill_on_drop(true)
        .output()
        .await
        .expect("node runs");
    assert!(
        out.status.success(),
        "the browser check failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    drop(proxy);
    gate.stop().await.expect("gate app stops");
    lock.stop().await.expect("lock app stops");
}

/// The dashboard's data transforms, by `node --test` (they hold no DOM).
#[test]
fn the_dashboards_transforms_pass_their_unit_tests() {
    let out = std::process::Command::new("node")
        .args(["--test", "tests/browser/unit/"])
        .current_dir(root())
        .output()
        .expect("node runs");
    assert!(
        out.status.success(),
        "node --test failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
