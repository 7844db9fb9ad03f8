//! `--summary-export FILE`: the summary in the JSON shape `k6 run --summary-export` writes (its
//! legacy summary), so tools that read k6 summaries read ours. Shape, as k6 v1.1 writes it:
//! `root_group` with the checks by name (`passes`, `fails`, `path` `::NAME`, `id` the MD5 of
//! the path), and `metrics` by name: trends `{avg, min, med, max, p(90), p(95)}` in ms, rates
//! `{passes, fails, value}`, counters `{count, rate}`, each with `thresholds: {EXPR: bool}`
//! when it has thresholds, where (as in k6's file) `true` means the threshold FAILED.
//!
//! Of k6's default metrics we write those we measure: `http_reqs`, `iterations` (one request
//! per iteration in both scenarios), `http_req_duration` and its `{expected_response:true}`,
//! `http_req_blocked`, `http_req_connecting`, `http_req_tls_handshaking` (always 0: plain
//! HTTP), `http_req_sending`, `http_req_waiting`, `http_req_receiving`, `data_sent`,
//! `data_received`, `http_req_failed`, `checks`. We do not write `iteration_duration` (k6's
//! includes the script's sleeps: the race's wait for its start), `vus` and `vus_max`.

use serde_json::{Map, Value, json};

use crate::load::stats::{Latency, Rate, Summary};

/// The summary as k6's summary-export JSON.
pub fn summary_export(s: &Summary) -> Value {
    let mut metrics = Map::new();
    let trend = |l: &Latency| {
        json!({
            "avg": l.mean,
            "min": l.min,
            "med": l.p50,
            "max": l.max,
            "p(90)": l.p90,
            "p(95)": l.p95,
        })
    };
    let rate = |r: &Rate| json!({ "passes": r.passes, "fails": r.fails, "value": r.rate });
    let counter = json!({ "count": s.requests, "rate": s.rps });
    metrics.insert("http_reqs".into(), counter.clone());
    metrics.insert("iterations".into(), counter);
    metrics.insert("http_req_duration".into(), trend(&s.latency_ms));
    metrics.insert(
        "http_req_duration{expected_response:true}".into(),
        trend(&s.latency_expected_ms),
    );
    metrics.insert("http_req_connecting".into(), trend(&s.connecting_ms));
    metrics.insert("http_req_blocked".into(), trend(&s.blocked_ms));
    metrics.insert("http_req_sending".into(), trend(&s.sending_ms));
    metrics.insert("http_req_waiting".into(), trend(&s.waiting_ms));
    metrics.insert("http_req_receiving".into(), trend(&s.receiving_ms));
    let bytes = |n: u64| json!({ "count": n, "rate": n as f64 / s.duration_s });
    metrics.insert("data_sent".into(), bytes(s.data_sent));
    metrics.insert("data_received".into(), bytes(s.data_received));
    metrics.insert(
        "http_req_tls_handshaking".into(),
        trend(&Latency::default()),
    );
    metrics.insert("http_req_failed".into(), rate(&s.http_req_failed));
    metrics.insert("checks".into(), rate(&s.checks_rate));
    for t in &s.thresholds {
        let entry = metrics.entry(t.metric.clone()).or_insert_with(|| {
            // A submetric k6 makes for a threshold: a check's own rate.
            let name = t
                .metric
                .strip_prefix("checks{check:")
                .and_then(|n| n.strip_suffix('}'));
            match name {
                Some(name) => rate(&s.checks_of(Some(name.trim()))),
                None => json!({}),
            }
        });
        if let Value::Object(entry) = entry {
            let thresholds = entry
                .entry("thresholds")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(thresholds) = thresholds {
                thresholds.insert(t.expr.clone(), Value::Bool(!t.passed));
            }
        }
    }
    let checks: Map<String, Value> = s
        .checks
        .iter()
        .map(|(name, [passes, fails])| {
            let path = format!("::{name}");
            let check = json!({
                "name": name,
                "path": path,
                "id": md5_hex(path.as_bytes()),
                "passes": passes,
                "fails": fails,
            });
            (name.clone(), check)
        })
        .collect();
    json!({
        "root_group": {
            "name": "",
            "path": "",
            "id": md5_hex(b""),
            "groups": {},
            "checks": checks,
        },
        "metrics": metrics,
    })
}

/// MD5 (RFC 1321) as lowercase hex: k6 names groups and checks by the MD5 of their path.
fn md5_hex(data: &[u8]) -> String {
    const S: [u32; 64] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5,
        9, 14, 20, 5, 9, 14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10,
        15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
    ];
    // K[i] = floor(abs(sin(i + 1)) * 2^32), as the RFC defines it.
    let k: Vec<u32> = (0..64)
        .map(|i| ((i as f64 + 1.0).sin().abs() * 4_294_967_296.0) as u32)
        .collect();
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64).wrapping_mul(8)).to_le_bytes());
    let mut h: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];
    for chunk in msg.chunks(64) {
        let m: Vec<u32> = chunk
            .chunks(4)
            .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
            .collect();
        let [mut a, mut b, mut c, mut d] = h;
        for i in 0..64 {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let f = f.wrapping_add(a).wrapping_add(k[i]).wrapping_add(m[g]);
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(f.rotate_left(S[i]));
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d]) {
            *x = x.wrapping_add(y);
        }
    }
    h.iter()
        .flat_map(|x| x.to_le_bytes())
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_matches_the_rfc_and_k6s_ids() {
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(md5_hex(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
        // k6 v1.1's id of a check named "is 200" (path "::is 200").
        assert_eq!(md5_hex(b"::is 200"), "b90917b286da7eb763f41c72548efc6d");
        let long = [b'a'; 200];
        assert_eq!(md5_hex(&long).len(), 32);
    }
}
