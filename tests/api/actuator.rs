//! Health, metrics (Prometheus text and OpenMetrics, Actuator's JSON), OpenAPI document,
//! unknown routes and CORS.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{own_servers, promtool_check, spawn_app, spawn_with};

#[tokio::test]
async fn health_checks_both_servers_and_turns_503_when_redis_is_down() {
    let mut app = spawn_app().await;
    let up = app.get("/actuator/health", None).await;
    assert_eq!(up.status, 200, "{:?}", up.body);
    assert_eq!(up.body["status"], "UP");
    assert_eq!(up.body["components"]["db"]["status"], "UP");
    assert_eq!(up.body["components"]["redis"]["status"], "UP");
    assert_eq!(app.get("/actuator/health/db", None).await.status, 200);
    app.redis.take().expect("redis").stop();
    let down = app.get("/actuator/health", None).await;
    assert_eq!(down.status, 503, "{:?}", down.body);
    assert_eq!(down.body["status"], "DOWN");
    assert_eq!(down.body["components"]["redis"]["status"], "DOWN");
    assert!(down.body["components"]["redis"]["details"]["error"].is_string());
    assert_eq!(down.body["components"]["db"]["status"], "UP");
    assert_eq!(app.get("/actuator/health/redis", None).await.status, 503);
    app.get("/actuator/health/nope", None)
        .await
        .assert_error(404, "C007");
}

/// What Prometheus 2.x sends when it scrapes.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";

#[tokio::test]
async fn prometheus_shows_requests_by_route_template_and_process_gauges() {
    let app = spawn_app().await;
    app.get("/api/v1/coupons/12345", None).await;
    let (content_type, text) = app.scrape(None).await;
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    let line = text
        .lines()
        .find(|l| {
            l.starts_with("http_server_requests_seconds_count{")
                && l.contains("uri=\"/api/v1/coupons/{id}\"")
        })
        .unwrap_or_else(|| panic!("no series for the route template in:\n{text}"));
    assert!(
        line.contains("status=\"404\"")
            && line.contains("method=\"GET\"")
            && line.contains("outcome=\"CLIENT_ERROR\"")
            && line.contains("application=\"fastpick-be\""),
        "{line}"
    );
    for name in [
        "fastpick_process_resident_memory_bytes",
        "fastpick_process_open_fds",
        "fastpick_db_pool_connections",
        "fastpick_redis_connected{application=\"fastpick-be\"} 1",
    ] {
        assert!(text.contains(name), "{name} missing");
    }
}

#[tokio::test]
async fn prometheus_answers_text_by_default_and_openmetrics_only_when_preferred() {
    let app = spawn_app().await;
    app.get("/api/v1/coupons", None).await;
    let text_type = "text/plain; version=0.0.4; charset=utf-8";
    let openmetrics_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    let cases = [
        (None, text_type, "no accept"),
        (Some("text/plain;version=0.0.4"), text_type, "text asked"),
        (Some("*/*"), text_type, "anything"),
        (
            Some(PROMETHEUS_ACCEPT),
            openmetrics_type,
            "prometheus's own header",
        ),
        (
            Some("application/openmetrics-text;q=0.2,text/plain;q=0.8"),
            text_type,
            "text preferred",
        ),
    ];
    for (accept, expected, why) in cases {
        let (content_type, text) = app.scrape(accept).await;
        assert_eq!(content_type, expected, "{why}");
        let openmetrics = expected == openmetrics_type;
        assert_eq!(
            text.trim_end().ends_with("# EOF"),
            openmetrics,
            "{why}: EOF"
        );
        let counter_type = if openmetrics {
            "# TYPE fastpick_search_cache_lookups counter"
        } else {
            "# TYPE fastpick_search_cache_lookups_total counter"
        };
        assert!(
            text.contains(counter_type),
            "{why}: {counter_type} in\n{text}"
        );
    }
}

#[tokio::test]
async fn prometheus_text_passes_promtool_check_metrics() {
    let app = spawn_app().await;
    app.get("/api/v1/coupons/12345", None).await;
    app.get("/api/v1/coupons", None).await;
    for accept in [None, Some("text/plain;version=0.0.4")] {
        let (_, text) = app.scrape(accept).await;
        if let Err(report) = promtool_check(&text) {
            panic!("accept {accept:?}: {report}");
        }
    }
}

#[tokio::test]
async fn metrics_lists_names_and_reads_one_with_a_tag_filter() {
    let app = spawn_app().await;
    app.get("/api/v1/coupons/12345", None).await;
    let names = app.get("/actuator/metrics", None).await;
    assert_eq!(names.status, 200);
    let names: Vec<&str> = names.body["names"]
        .as_array()
        .expect("names")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted, "sorted");
    for name in ["http.server.requests", "fastpick.process.resident.memory"] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    let uri = "/actuator/metrics/http.server.requests?tag=uri:/api/v1/coupons/%7Bid%7D";
    let metric = app.get(uri, None).await;
    assert_eq!(metric.status, 200, "{:?}", metric.body);
    let body = &metric.body;
    assert_eq!(
        (body["name"].as_str(), body["baseUnit"].as_str()),
        (Some("http.server.requests"), Some("seconds"))
    );
    assert!(body["description"].as_str().is_some_and(|d| !d.is_empty()));
    assert_eq!(
        body["measurements"][0],
        json!({"statistic": "COUNT", "value": 1.0})
    );
    assert_eq!(body["measurements"][1]["statistic"], "TOTAL_TIME");
    let tags = body["availableTags"].as_array().expect("tags");
    assert!(
        tags.iter().all(|t| t["tag"] != "uri" && t["tag"] != "le"),
        "{tags:?}"
    );
    assert!(
        tags.contains(&json!({"tag": "status", "values": ["404"]})),
        "{tags:?}"
    );
}

#[tokio::test]
async fn metrics_of_an_unknown_name_or_unmatched_tag_is_404_and_a_bad_tag_is_400() {
    let app = spawn_app().await;
    app.get("/actuator/metrics/no.such.metric", None)
        .await
        .assert_error(404, "C007");
    app.get(
        "/actuator/metrics/http.server.requests?tag=status:999",
        None,
    )
    .await
    .assert_error(404, "C007");
    app.get("/actuator/metrics/http.server.requests?tag=status", None)
        .await
        .assert_error(400, "C001");
    let gauge = app
        .get("/actuator/metrics/fastpick.process.resident.memory", None)
        .await;
    assert_eq!(gauge.body["baseUnit"], "bytes", "{:?}", gauge.body);
    assert_eq!(gauge.body["measurements"][0]["statistic"], "VALUE");
    let links = app.get("/actuator", None).await;
    assert!(
        links.body["_links"]["metrics"]["href"]
            .as_str()
            .is_some_and(|h| h.ends_with("/actuator/metrics")),
        "{:?}",
        links.body
    );
}

#[tokio::test]
async fn unknown_paths_and_methods_are_404_and_405_envelopes() {
    let app = spawn_app().await;
    app.get("/api/v1/nope", None)
        .await
        .assert_error(404, "C007");
    app.get("/api/v1/coupons/", None)
        .await
        .assert_error(404, "C007");
    app.get("/api/v1/auth/login", None)
        .await
        .assert_error(405, "C008");
    app.send(Method::DELETE, "/api/v1/coupons", None, None)
        .await
        .assert_error(405, "C008");
}

#[tokio::test]
async fn openapi_document_lists_every_route_the_server_answers() {
    let app = spawn_app().await;
    let doc = app.get("/api/v1/openapi.json", None).await;
    assert_eq!(doc.status, 200);
    let paths = doc.body["paths"].as_object().expect("paths");
    let mut listed = Vec::new();
    for (path, item) in paths {
        for method in item.as_object().expect("item").keys() {
            listed.push(format!("{} {path}", method.to_uppercase()));
            let concrete = path.replace("{id}", "1");
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let r = app
                .send_raw(m, &concrete, None, "application/json", "{}")
                .await;
            assert!(
                r.status != 404 || r.code() != "C007",
                "{method} {path} documented but not routed"
            );
            assert_ne!(r.status, 405, "{method} {path} documented but not routed");
        }
    }
    listed.sort();
    let expected = [
        "GET /api/v1/admin/experiment",
        "GET /api/v1/admin/experiment/coupons/{id}",
        "GET /api/v1/coupons",
        "GET /api/v1/coupons/{id}",
        "GET /api/v1/my/coupons",
        "POST /api/v1/admin/coupons",
        "POST /api/v1/admin/experiment/users",
        "POST /api/v1/auth/login",
        "POST /api/v1/auth/refresh",
        "POST /api/v1/auth/signup",
        "POST /api/v1/coupon-issues",
        "PUT /api/v1/admin/experiment",
    ];
    assert_eq!(listed, expected);
    let description = doc.body["info"]["description"]
        .as_str()
        .expect("description");
    for code in ["C006", "C007", "C008", "CP05"] {
        assert!(description.contains(code), "{code} not documented");
    }
}

#[tokio::test]
async fn cors_preflight_allows_the_frontend_origin_with_credentials() {
    let app = spawn_app().await;
    let preflight = |origin: &'static str| {
        app.client
            .request(
                Method::OPTIONS,
                format!("{}/api/v1/coupon-issues", app.base),
            )
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
    };
    let ok = preflight("http://localhost:3000").await.expect("sent");
    let h = ok.headers();
    assert_eq!(
        h.get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some("http://localhost:3000")
    );
    assert_eq!(
        h.get("access-control-allow-credentials")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    let evil = preflight("http://evil.example").await.expect("sent");
    assert!(evil.headers().get("access-control-allow-origin").is_none());
    assert_eq!(
        evil.status(),
        403,
        "Spring refuses a foreign origin's preflight"
    );
    let body: serde_json::Value = evil.json().await.expect("envelope");
    assert_eq!(body["code"], "C004");
    assert_eq!(body["errors"][0]["reason"], "Invalid CORS request");
}

#[tokio::test]
async fn a_foreign_origin_is_refused_and_the_own_origin_is_not_cors() {
    let app = spawn_app().await;
    let get = |origin: String| {
        app.client
            .get(format!("{}/api/v1/coupons", app.base))
            .header("origin", origin)
            .send()
    };
    let evil = get("http://evil.example".into()).await.expect("sent");
    assert_eq!(evil.status(), 403);
    let body: serde_json::Value = evil.json().await.expect("envelope");
    assert_eq!(body["code"], "C004");
    assert_eq!(body["errors"][0]["reason"], "Invalid CORS request");
    // The storefront served by the proxy calls the API on its own host.
    let own = get(app.base.clone()).await.expect("sent");
    assert_eq!(own.status(), 200);
    let listed = get("http://localhost:3000".into()).await.expect("sent");
    assert_eq!(listed.status(), 200);
}

#[tokio::test]
async fn api_answers_carry_spring_securitys_default_headers() {
    let app = spawn_app().await;
    for path in ["/api/v1/coupons", "/api/v1/coupons/987654", "/api/v1/nope"] {
        let resp = app
            .client
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .expect("sent");
        let h = resp.headers();
        for (name, value) in [
            ("x-content-type-options", "nosniff"),
            (
                "cache-control",
                "no-cache, no-store, max-age=0, must-revalidate",
            ),
            ("pragma", "no-cache"),
            ("expires", "0"),
            ("x-frame-options", "DENY"),
        ] {
            assert_eq!(
                h.get(name).and_then(|v| v.to_str().ok()),
                Some(value),
                "{path}: {name}"
            );
        }
    }
}

#[tokio::test]
async fn graceful_stop_answers_in_flight_requests_and_closes_the_pool() {
    let app = spawn_app().await;
    let db = app.db.clone();
    let client = app.client.clone();
    let url = format!("{}/api/v1/coupons?search=a+b+c", app.base);
    let in_flight: Vec<_> = (0..20)
        .map(|_| tokio::spawn(client.get(url.clone()).send()))
        .collect();
    app.stop().await.expect("serve returns cleanly");
    for request in in_flight {
        // Each request either completed with 200 or was never accepted; none is cut off half-way.
        if let Ok(resp) = request.await.expect("task") {
            assert_eq!(resp.status().as_u16(), 200);
            resp.text().await.expect("whole body");
        }
    }
    assert!(db.is_closed(), "pool closed after stop");
}

#[tokio::test]
async fn database_down_answers_503_c010_and_health_says_so() {
    let (pg, redis, mut settings) = own_servers().await;
    settings.database.acquire_timeout = std::time::Duration::from_millis(500);
    let app = spawn_with(settings, Some(redis)).await;
    let id = app.coupon(Default::default()).await;
    assert_eq!(
        app.get(&format!("/api/v1/coupons/{id}"), None).await.status,
        200
    );
    tokio::task::spawn_blocking(move || pg.stop())
        .await
        .expect("stopped");
    for _ in 0..3 {
        app.get(&format!("/api/v1/coupons/{id}"), None)
            .await
            .assert_error(503, "C010");
    }
    let health = app.get("/actuator/health", None).await;
    assert_eq!(
        (
            health.status,
            health.body["components"]["db"]["status"].as_str()
        ),
        (503, Some("DOWN"))
    );
}

#[tokio::test]
async fn oversized_bodies_are_413_c009() {
    let app = spawn_app().await;
    let huge = format!("{{\"email\":\"{}\"}}", "a".repeat(3 * 1024 * 1024));
    app.send_raw(
        Method::POST,
        "/api/v1/auth/login",
        None,
        "application/json",
        &huge,
    )
    .await
    .assert_error(413, "C009");
}
