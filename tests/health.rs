//! Every service binary serves `/healthz` (readiness) and `/metrics`, and its gRPC health follows
//! the same readiness: a lost NATS connection or a lost ledger turns it NOT_SERVING (HTTP 503 with
//! the reason), and it recovers by itself.

mod common;

use std::time::{Duration, Instant};

use common::Proc;
use tonic_health::pb::health_check_response::ServingStatus;
use wfl_testkit::NatsServer;

/// Polls `/healthz` of `proc` until its status is `code` (and the body contains `needle`);
/// fails after 30 s with the last answer.
fn wait_healthz(proc: &Proc, code: u16, needle: &str) -> String {
    let http = proc.http.as_deref().expect("an http address");
    let started = Instant::now();
    let deadline = started + Duration::from_secs(30);
    loop {
        let (got, body) = common::http_get_status(http, "/healthz");
        if got == code && body.contains(needle) {
            eprintln!("{http}/healthz {code} after {:?}", started.elapsed());
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{http}/healthz stayed {got} {body:?}; wanted {code} containing {needle:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Polls gRPC health of `service` until it is `want` (readiness is mirrored into gRPC health
/// every 500 ms); fails after 30 s.
async fn wait_grpc_health(proc: &Proc, service: &str, want: ServingStatus) {
    let ch = common::connect(&proc.grpc).await;
    let mut client = tonic_health::pb::health_client::HealthClient::new(ch);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = client
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("health check")
            .into_inner()
            .status;
        if got == want as i32 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "gRPC health of {service:?} at {} stayed {got}, wanted {want:?}",
            proc.grpc
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_binary_serves_healthz_and_metrics_and_reports_lost_nats_and_ledger() {
    let dir = wfl_testkit::temp_dir();
    let logs = dir.path().join("logs");
    let mut nats = NatsServer::start();
    let ledger_args: Vec<String> = vec![
        "--data-dir".into(),
        dir.path().join("ledger").display().to_string(),
        "--grpc-addr".into(),
        "127.0.0.1:0".into(),
        "--nats-url".into(),
        nats.url(),
    ];
    let mut ledger = Proc::start("wfl-ledger", &ledger_args, &logs);
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
    // The restarted ledger must come back on the same gRPC port for the projector to find it.
    let ledger_port = ledger.grpc.trim_start_matches("http://").to_owned();
    let ledger_args: Vec<String> = ledger_args
        .into_iter()
        .map(|a| {
            if a == "127.0.0.1:0" {
                ledger_port.clone()
            } else {
                a
            }
        })
        .collect();
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
    let hires: Vec<_> = (0..10)
        .map(|i| wfl_testkit::scenario::hire("acme", &format!("w-{i}")))
        .collect();
    common::record_batch(&gw, &hires).await;

    for (proc, metric) in [
        (&gateway, "wfl_ingest_events_total"),
        (&ledger, "wfl_ledger_head_sequence 10"),
        (&projector, "wfl_views_checkpoint_sequence"),
    ] {
        assert_eq!(wait_healthz(proc, 200, ""), "ok\n");
        let metrics = common::http_get(proc.http.as_deref().unwrap(), "/metrics");
        assert!(metrics.contains("wfl_ready 1\n"), "{metrics}");
        assert!(metrics.contains(metric), "{metric} missing from\n{metrics}");
    }
    wait_grpc_health(&gateway, "wfl.v1.Ingest", ServingStatus::Serving).await;

    // NATS gone: every process that uses it says so, over HTTP and gRPC health.
    nats.kill();
    for proc in [&gateway, &ledger, &projector] {
        let body = wait_healthz(proc, 503, "bus: NATS connection");
        assert!(body.starts_with("not ready\n"), "{body}");
    }
    wait_grpc_health(&gateway, "wfl.v1.Ingest", ServingStatus::NotServing).await;
    wait_grpc_health(&ledger, "", ServingStatus::NotServing).await;
    let metrics = common::http_get(gateway.http.as_deref().unwrap(), "/metrics");
    assert!(
        metrics.contains("wfl_ready_probe{probe=\"bus\"} 0"),
        "{metrics}"
    );
    nats.restart();
    for proc in [&gateway, &ledger, &projector] {
        wait_healthz(proc, 200, "ok");
    }
    wait_grpc_health(&ledger, "wfl.v1.Ledger", ServingStatus::Serving).await;

    // The ledger gone: the projector is not following any more, until it is back.
    ledger.kill();
    wait_healthz(&projector, 503, "views: not following the ledger");
    ledger = Proc::start("wfl-ledger", &ledger_args, &logs);
    wait_healthz(&projector, 200, "ok");
    wait_healthz(&ledger, 200, "ok");
}
