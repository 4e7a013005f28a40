//! `/metrics` through the metrics library: after some ingest, `wfl up` and each split binary
//! serve their histograms (with counts), the gauges the issue names and the process metrics.

mod common;

use std::time::{Duration, Instant};

use common::Proc;
use wfl_testkit::NatsServer;

/// The value of the series `name` (exact, labels included) in `/metrics` of `proc`.
fn value(text: &str, name: &str) -> Option<f64> {
    wfl_metrics::value(text, name)
}

/// Polls `/metrics` of `proc` until every series in `positive` is above 0; returns the text.
fn wait_positive(proc: &Proc, positive: &[&str]) -> String {
    let http = proc.http.as_deref().expect("an http address");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = common::http_get(http, "/metrics");
        let missing: Vec<&&str> = positive
            .iter()
            .filter(|n| !value(&text, n).is_some_and(|v| v > 0.0))
            .collect();
        if missing.is_empty() {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{http}/metrics: {missing:?} not above 0 in\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Process metrics every binary serves (Linux: read from /proc/self).
const PROCESS: [&str; 5] = [
    "process_resident_memory_bytes",
    "process_cpu_seconds_total",
    "process_open_fds",
    "process_max_fds",
    "process_start_time_seconds",
];

/// Present, and positive except the CPU seconds (whole ticks of 10 ms; a quiet process may show 0).
fn assert_process(text: &str) {
    for name in PROCESS {
        let v = value(text, name);
        assert!(
            v.is_some_and(|v| v > 0.0 || (name == "process_cpu_seconds_total" && v == 0.0)),
            "{name} is {v:?}:\n{text}"
        );
    }
}

fn assert_histogram(text: &str, name: &str, labels: &str) {
    assert!(
        text.contains(&format!("# TYPE {name} histogram")),
        "{name} is not a histogram:\n{text}"
    );
    let (count, inf) = if labels.is_empty() {
        (
            format!("{name}_count"),
            format!("{name}_bucket{{le=\"+Inf\"}}"),
        )
    } else {
        (
            format!("{name}_count{{{labels}}}"),
            format!("{name}_bucket{{{labels},le=\"+Inf\"}}"),
        )
    };
    let n = value(text, &count).unwrap_or(0.0);
    assert!(n > 0.0, "{count} is {n}:\n{text}");
    assert_eq!(value(text, &inf), Some(n), "{inf} != {count}:\n{text}");
}

fn hires(n: usize) -> Vec<wfl_domain::Event> {
    (0..n)
        .map(|i| wfl_testkit::scenario::hire("acme", &format!("w-{i}")))
        .collect()
}

/// One hire twice under new ids: the second is refused (the worker is already employed).
fn with_one_refusal(mut events: Vec<wfl_domain::Event>) -> Vec<wfl_domain::Event> {
    let mut again = events[0].clone();
    again.event_id = wfl_domain::EventId::new_v7();
    events.push(again);
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wfl_up_serves_histograms_lag_refusals_and_process_metrics() {
    let dir = wfl_testkit::temp_dir();
    let node = common::up(dir.path(), &[]);
    let ch = common::connect(&node.grpc).await;
    let resp = common::record_batch(&ch, &with_one_refusal(hires(20))).await;
    assert_eq!(resp.committed, 20, "{resp:?}");

    let text = wait_positive(
        &node,
        &[
            "wfl_view_lag_seconds_count",
            "wfl_ledger_commit_seconds_count",
            "wfl_ledger_commit_batch_events_count",
            "wfl_gateway_call_seconds_count{call=\"record_batch\"}",
        ],
    );
    assert_histogram(&text, "wfl_view_lag_seconds", "");
    assert_histogram(&text, "wfl_ledger_commit_seconds", "");
    assert_histogram(&text, "wfl_ledger_commit_batch_events", "");
    assert_histogram(&text, "wfl_gateway_call_seconds", "call=\"record_batch\"");
    // Every event of the batch was written in the flushes counted.
    assert_eq!(
        value(&text, "wfl_ledger_commit_batch_events_sum"),
        Some(21.0),
        "{text}"
    );
    for (name, want) in [
        ("wfl_ingest_events_total{outcome=\"committed\"}", 20.0),
        (
            "wfl_ingest_refusals_total{reason=\"failed_precondition\"}",
            1.0,
        ),
        ("wfl_ledger_head_sequence", 20.0),
        ("wfl_publisher_cursor_sequence", 20.0),
        ("wfl_views_lag_events", 0.0),
        ("wfl_subscribers", 1.0),
        ("wfl_inbox_pending", 0.0),
        ("wfl_ready", 1.0),
    ] {
        // The views and the publisher may still be catching up: poll.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = common::http_get(node.http.as_deref().unwrap(), "/metrics");
            if value(&text, name) == Some(want) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{name} is {:?}, wanted {want}:\n{text}",
                value(&text, name)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    assert_process(&text);
    let start = value(&text, "process_start_time_seconds").unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        start <= now + 1.0 && start > now - 600.0,
        "process_start_time_seconds {start} is not the start of this node (now {now})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_split_binary_serves_its_histograms_and_process_metrics() {
    let dir = wfl_testkit::temp_dir();
    let logs = dir.path().join("logs");
    let nats = NatsServer::start();
    let ledger = Proc::start(
        "wfl-ledger",
        &[
            "--data-dir".into(),
            dir.path().join("ledger").display().to_string(),
            "--grpc-addr".into(),
            "127.0.0.1:0".into(),
            "--nats-url".into(),
            nats.url(),
        ],
        &logs,
    );
    let gateway = Proc::start(
        "wfl-gateway",
        &[
            "--grpc-addr".into(),
            "127.0.0.1:0".into(),
            "--nats-url".into(),
            nats.url(),
        ],
        &logs,
    );
    let projector = Proc::start(
        "wfl-projector",
        &[
            "--data-dir".into(),
            dir.path().join("views").display().to_string(),
            "--grpc-addr".into(),
            "127.0.0.1:0".into(),
            "--ledger".into(),
            ledger.grpc.clone(),
            "--nats-url".into(),
            nats.url(),
            "--rulepacks".into(),
            concat!(env!("CARGO_MANIFEST_DIR"), "/../rulepacks").into(),
        ],
        &logs,
    );
    let gw = common::connect(&gateway.grpc).await;
    let resp = common::record_batch(&gw, &with_one_refusal(hires(10))).await;
    assert_eq!(resp.committed, 10, "{resp:?}");

    let text = wait_positive(
        &gateway,
        &["wfl_gateway_call_seconds_count{call=\"record_batch\"}"],
    );
    assert_histogram(&text, "wfl_gateway_call_seconds", "call=\"record_batch\"");
    assert_eq!(
        value(
            &text,
            "wfl_ingest_refusals_total{reason=\"failed_precondition\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert!(
        !text.contains("wfl_ledger_commit_seconds"),
        "the gateway shows only its own figures:\n{text}"
    );
    let gateway_text = text;

    let text = wait_positive(
        &ledger,
        &[
            "wfl_ledger_commit_seconds_count",
            "wfl_ledger_commit_batch_events_count",
            "wfl_publisher_cursor_sequence",
        ],
    );
    assert_histogram(&text, "wfl_ledger_commit_seconds", "");
    assert_histogram(&text, "wfl_ledger_commit_batch_events", "");
    assert!(
        value(&text, "wfl_inbox_pending").is_some(),
        "inbox lag:\n{text}"
    );
    assert_eq!(value(&text, "wfl_publisher_stream_missing"), Some(0.0));
    let ledger_text = text;

    let text = wait_positive(&projector, &["wfl_view_lag_seconds_count"]);
    assert_histogram(&text, "wfl_view_lag_seconds", "");
    assert!(value(&text, "wfl_views_lag_events").is_some(), "{text}");
    let projector_text = text;

    for text in [&gateway_text, &ledger_text, &projector_text] {
        assert_process(text);
    }
}
