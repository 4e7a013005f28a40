//! Liveness under faults, with real processes: `wfl-gateway`, `wfl-ledger` and `wfl-projector`
//! as separate binaries on a private nats-server.
//!
//! - A forced stall (the durable inbox consumer replaced under the ledger by one that lets a
//!   thief hold the only ack slot) is detected, logged, shown as NOT_SERVING, recovered by
//!   re-creating the consumer, and health returns to SERVING with every event committed.
//! - Under load from clients, nats-server, the ledger, the gateway and the projector are
//!   SIGKILLed in turn (`WFL_LIVENESS_KILLS`, default 5; long runs set more). After each restart
//!   the first commit must come within [`FIRST_COMMIT_BOUND`]; at the end every submission is
//!   resolved after client retries, nothing acknowledged is lost or committed twice, the chain
//!   recomputes and the views hold every committed event. One summary line is printed.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{assert_valid_chain, connect, replay, Proc};
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use wfl_proto::pb;
use wfl_testkit::{scenario, NatsServer};

/// After a restart of nats-server or the ledger, the first commit comes within this bound
/// (documented in README and ARCHITECTURE.md; the ledger runs with `--inbox-stall-secs 5`).
const FIRST_COMMIT_BOUND: Duration = Duration::from_secs(15);

fn ledger_args(data: &std::path::Path, nats: &NatsServer, stall_secs: u64) -> Vec<String> {
    vec![
        "--data-dir".into(),
        data.display().to_string(),
        "--grpc-addr".into(),
        "127.0.0.1:0".into(),
        "--nats-url".into(),
        nats.url(),
        "--inbox-stall-secs".into(),
        stall_secs.to_string(),
    ]
}

fn gateway_args(nats: &NatsServer) -> Vec<String> {
    vec![
        "--grpc-addr".into(),
        "127.0.0.1:0".into(),
        "--nats-url".into(),
        nats.url(),
    ]
}

async fn health(ch: &Channel) -> Option<ServingStatus> {
    let mut client = tonic_health::pb::health_client::HealthClient::new(ch.clone());
    let r = client
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .ok()?;
    ServingStatus::try_from(r.into_inner().status).ok()
}

/// Polls a service's health until it is `want`; false after `within`.
async fn reaches(ch: &Channel, want: ServingStatus, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if health(ch).await == Some(want) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls the ledger's health until it is `want`, or panics after `within` showing its log.
async fn wait_health(ch: &Channel, want: ServingStatus, within: Duration, log: &Proc) {
    assert!(
        reaches(ch, want, within).await,
        "ledger health did not become {want:?} within {within:?}; log:\n{}",
        log.log_text()
    );
}

async fn record(
    ch: &Channel,
    events: &[wfl_domain::Event],
    ack: pb::AckLevel,
) -> pb::RecordBatchResponse {
    common::ingest(ch)
        .record_batch(pb::RecordBatchRequest {
            events: events.iter().map(common::wire).collect(),
            ack: ack as i32,
            include_proof: false,
        })
        .await
        .expect("RecordBatch call succeeds")
        .into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_inbox_is_detected_and_recovered_with_health_not_serving_then_serving() {
    let dir = wfl_testkit::temp_dir();
    let logs = dir.path().join("logs");
    let nats = NatsServer::start();
    let ledger = Proc::start(
        "wfl-ledger",
        &ledger_args(&dir.path().join("data"), &nats, 2),
        &logs,
    );
    let gateway = Proc::start("wfl-gateway", &gateway_args(&nats), &logs);
    let gw = connect(&gateway.grpc).await;
    let lc = connect(&ledger.grpc).await;
    wait_health(
        &lc,
        ServingStatus::Serving,
        Duration::from_secs(10),
        &ledger,
    )
    .await;

    // A thief takes one delivery of the ledger's consumer and never acknowledges it; then the
    // consumer is narrowed (in place) to one unacknowledged delivery at a time, so the ledger
    // starves with work pending.
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let js = async_nats::jetstream::new(client);
    let stream = js.get_stream("WFL_INBOX").await.expect("inbox stream");
    let consumer_config = |max_ack_pending| async_nats::jetstream::consumer::pull::Config {
        durable_name: Some("wfl-ledger".into()),
        ack_policy: async_nats::jetstream::consumer::AckPolicy::Explicit,
        ack_wait: Duration::from_secs(3600),
        max_ack_pending,
        ..Default::default()
    };
    let consumer = stream
        .create_consumer(consumer_config(20_000))
        .await
        .expect("update the consumer in place");
    let mut thief = consumer
        .batch()
        .max_messages(1)
        .expires(Duration::from_secs(60))
        .messages()
        .await
        .expect("thief pull");
    let mut events = Vec::new();
    let held;
    let deadline = Instant::now() + Duration::from_secs(60);
    // The ledger's pull request is served first; once it is used up the client renews it behind
    // the thief's, so publishing enough events hands the thief one.
    loop {
        assert!(Instant::now() < deadline, "the thief never got a delivery");
        let batch: Vec<wfl_domain::Event> = (0..500)
            .map(|i| scenario::hire("acme", &format!("stall-{}", events.len() + i)))
            .collect();
        let r = record(&gw, &batch, pb::AckLevel::Accepted).await;
        assert_eq!(r.accepted, 500, "{r:?}");
        events.extend(batch);
        use futures::StreamExt;
        if let Ok(Some(Ok(msg))) =
            tokio::time::timeout(Duration::from_millis(500), thief.next()).await
        {
            held = msg;
            break;
        }
    }
    stream
        .create_consumer(consumer_config(1))
        .await
        .expect("narrow the consumer in place");
    // Work the ledger cannot get: pending behind the thief's ack slot.
    let more: Vec<wfl_domain::Event> = (0..50)
        .map(|i| scenario::hire("acme", &format!("stall-more-{i}")))
        .collect();
    let r = record(&gw, &more, pb::AckLevel::Accepted).await;
    assert_eq!(r.accepted, 50, "{r:?}");
    events.extend(more);

    // Detected (2 s), NOT_SERVING; recovered by re-creating the consumer; SERVING again.
    wait_health(
        &lc,
        ServingStatus::NotServing,
        Duration::from_secs(20),
        &ledger,
    )
    .await;
    wait_health(
        &lc,
        ServingStatus::Serving,
        Duration::from_secs(30),
        &ledger,
    )
    .await;
    let log = ledger.log_text();
    assert!(log.contains("inbox STALLED"), "no stall logged:\n{log}");
    assert_eq!(
        log.matches("inbox STALLED").count(),
        1,
        "one stall, one ERROR:\n{log}"
    );
    assert!(
        log.contains("num_pending="),
        "the ERROR names the consumer state:\n{log}"
    );
    assert!(
        log.contains("re-opening the pull subscription"),
        "step 1:\n{log}"
    );
    assert!(
        log.contains("re-creating the durable consumer"),
        "step 2:\n{log}"
    );
    assert!(log.contains("inbox recovered"), "{log}");
    drop(held);

    // Every event is committed exactly once (asking again with COMMITTED learns each outcome).
    for chunk in events.chunks(500) {
        let r = record(&gw, chunk, pb::AckLevel::Committed).await;
        assert_eq!(r.committed as usize, chunk.len(), "{r:?}");
    }
    let all = replay(&lc).await;
    assert_valid_chain(&all);
    assert_eq!(all.len(), events.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_is_not_serving_while_no_ledger_answers_and_serving_once_one_does() {
    use std::sync::Arc;
    let nats = NatsServer::start();
    let bus: Arc<dyn wfl_bus::Bus> = Arc::new(
        wfl_bus::NatsBus::connect(&nats.url(), wfl_bus::NatsConfig::default())
            .await
            .expect("connect"),
    );
    let shutdown = tokio_util::sync::CancellationToken::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let config = wfl_gateway::Config {
        timing: wfl_gateway::Timing::new(
            Duration::from_secs(1),
            Duration::from_millis(250),
            wfl_bus::DEFAULT_DUPLICATE_WINDOW,
        )
        .expect("valid timing"),
        ..wfl_gateway::Config::default()
    };
    // The gateway's own signal drives gRPC health here (the binaries mirror every readiness
    // probe, this one among them, the same way: tests/health.rs).
    let gateway = wfl_gateway::Gateway::new(
        bus.clone(),
        config,
        Arc::new(wfl_gateway::Metrics::default()),
    );
    let mut answering = gateway.healthy();
    let (mut reporter, health) = tonic_health::server::health_reporter();
    tokio::spawn(async move {
        loop {
            let status = if *answering.borrow_and_update() {
                tonic_health::ServingStatus::Serving
            } else {
                tonic_health::ServingStatus::NotServing
            };
            reporter.set_service_status("", status).await;
            if answering.changed().await.is_err() {
                return;
            }
        }
    });
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(health)
            // Authentication off: every caller is an admin (the guard still hands the
            // handler its caller, as on every server).
            .add_service(wfl_auth::Guard::off().wrap(gateway.into_service()))
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                shutdown.clone().cancelled_owned(),
            ),
    );
    let gw = connect(&format!("http://{addr}")).await;
    assert!(reaches(&gw, ServingStatus::Serving, Duration::from_secs(5)).await);

    // No ledger: the COMMITTED call ends UNAVAILABLE after the commit timeout, and the gateway
    // says it is not serving.
    let event = scenario::hire("acme", "w-1");
    let r = record(&gw, std::slice::from_ref(&event), pb::AckLevel::Committed).await;
    assert_eq!(
        common::err(&r.results[0]).code,
        tonic::Code::Unavailable as i32
    );
    assert!(
        reaches(&gw, ServingStatus::NotServing, Duration::from_secs(5)).await,
        "the gateway stayed SERVING with no ledger answering"
    );

    // A ledger starts and answers the gateway's probe: SERVING again, and the event commits.
    let dir = wfl_testkit::temp_dir();
    let _ledger = wfl_ledger::Ledger::start(
        wfl_ledger::Config::new(dir.path()),
        bus.clone(),
        shutdown.clone(),
    )
    .await
    .expect("the ledger starts");
    assert!(
        reaches(&gw, ServingStatus::Serving, Duration::from_secs(15)).await,
        "the gateway did not return to SERVING once the ledger answered"
    );
    let r = record(&gw, std::slice::from_ref(&event), pb::AckLevel::Committed).await;
    assert!(common::ok(&r.results[0]).sequence > 0);
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wfl_up_shows_the_liveness_gauges_and_a_healthy_healthz() {
    let node = common::Node::start(common::Mode::Nats);
    let http = node.proc.http.clone().expect("http address");
    let ch = node.channel().await;
    let r = common::record_batch(&ch, &[scenario::hire("acme", "w-1")]).await;
    assert_eq!(r.committed, 1, "{r:?}");
    let metrics = common::http_get(&http, "/metrics");
    for line in [
        "wfl_inbox_stalled 0",
        "wfl_inbox_stalls_total 0",
        "wfl_inbox_recoveries_total{step=\"reopen\"} 0",
        "wfl_inbox_recoveries_total{step=\"recreate\"} 0",
        "wfl_inbox_recoveries_total{step=\"exit\"} 0",
        "wfl_publisher_stalled 0",
        "wfl_gateway_outcome_waits 0",
        "wfl_gateway_outcome_wait_oldest_seconds 0",
        "wfl_gateway_ledger_answering 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} missing:\n{metrics}"
        );
    }
    // Ready once the projector follows the ledger, moments after start.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let healthz = common::http_get(&http, "/healthz");
        if healthz == "ok\n" {
            break;
        }
        assert!(Instant::now() < deadline, "/healthz stayed {healthz:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What the load clients share with the fault loop.
#[derive(Default)]
struct Progress {
    /// Event id → committed sequence, as answered to the clients.
    acked: Mutex<HashMap<String, u64>>,
    /// Events whose outcome the client could not learn yet (to retry with the same id).
    unresolved: Mutex<Vec<wfl_domain::Event>>,
    /// Milliseconds since the run started of the latest COMMITTED answer.
    last_commit_ms: AtomicU64,
    /// Longest stretch between two COMMITTED answers, in milliseconds.
    longest_gap_ms: AtomicU64,
    commits: AtomicU64,
    stop: AtomicBool,
}

async fn load_client(gw: Channel, progress: Arc<Progress>, client: usize, started: Instant) {
    let mut n = 0usize;
    while !progress.stop.load(Ordering::Relaxed) {
        let mut batch: Vec<wfl_domain::Event> = (0..50)
            .map(|i| scenario::hire("acme", &format!("c{client}-w{}", n + i)))
            .collect();
        n += batch.len();
        // Retry earlier unresolved events with the same ids, alongside new ones.
        {
            let mut unresolved = progress.unresolved.lock().expect("lock");
            let take = unresolved.len().min(200);
            batch.extend(unresolved.drain(..take));
        }
        let r = match common::ingest(&gw)
            .record_batch(pb::RecordBatchRequest {
                events: batch.iter().map(common::wire).collect(),
                ack: pb::AckLevel::Committed as i32,
                include_proof: false,
            })
            .await
        {
            Ok(r) => r.into_inner(),
            Err(s) => {
                common::assert_retryable(&s);
                progress.unresolved.lock().expect("lock").extend(batch);
                continue;
            }
        };
        let (done, retry) = common::committed_and_retry(&batch, &r);
        for (_, o) in &done {
            let prev = progress
                .acked
                .lock()
                .expect("lock")
                .insert(o.event_id.clone(), o.sequence);
            assert!(
                prev.is_none() || prev == Some(o.sequence),
                "event {} answered with two sequences",
                o.event_id
            );
        }
        progress.unresolved.lock().expect("lock").extend(retry);
        let committed = done.len() as u64;
        if committed > 0 {
            let now = started.elapsed().as_millis() as u64;
            let prev = progress.last_commit_ms.fetch_max(now, Ordering::Relaxed);
            if prev > 0 {
                progress
                    .longest_gap_ms
                    .fetch_max(now.saturating_sub(prev), Ordering::Relaxed);
            }
            progress.commits.fetch_add(committed, Ordering::Relaxed);
        }
    }
}

/// Waits for a COMMITTED answer after `after` (ms since start); returns how long it took.
/// The last `n` lines of a log.
fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

async fn first_commit_after(progress: &Progress, started: Instant, bound: Duration) -> Duration {
    let from = started.elapsed();
    let deadline = Instant::now() + bound;
    loop {
        let last = Duration::from_millis(progress.last_commit_ms.load(Ordering::Relaxed));
        if last > from {
            return last - from;
        }
        if Instant::now() >= deadline {
            return started.elapsed() - from;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_kills_of_every_process_keep_ingest_live_and_lose_nothing() {
    let kills: usize = std::env::var("WFL_LIVENESS_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let dir = wfl_testkit::temp_dir();
    let logs = dir.path().join("logs");
    let data = dir.path().join("data");
    let mut nats = NatsServer::start();
    // Restarted processes come back on the ports they had: the clients and the projector keep
    // their addresses.
    let same_port = |mut args: Vec<String>, proc: &Proc| {
        let port = proc.grpc.trim_start_matches("http://").to_owned();
        for a in &mut args {
            if a == "127.0.0.1:0" {
                a.clone_from(&port);
            }
        }
        args
    };
    let mut ledger = Proc::start("wfl-ledger", &ledger_args(&data, &nats, 5), &logs);
    let ledger_again = same_port(ledger_args(&data, &nats, 5), &ledger);
    let mut ledger_logs = Vec::new();
    let mut gateway = Proc::start("wfl-gateway", &gateway_args(&nats), &logs);
    let gateway_again = same_port(gateway_args(&nats), &gateway);
    let projector_args = vec![
        "--data-dir".to_owned(),
        dir.path().join("views").display().to_string(),
        "--grpc-addr".to_owned(),
        "127.0.0.1:0".to_owned(),
        "--ledger".to_owned(),
        ledger.grpc.clone(),
        "--nats-url".to_owned(),
        nats.url(),
        "--rulepacks".to_owned(),
        concat!(env!("CARGO_MANIFEST_DIR"), "/../rulepacks").to_owned(),
    ];
    let mut projector = Proc::start("wfl-projector", &projector_args, &logs);
    let gw = connect(&gateway.grpc).await;

    let started = Instant::now();
    let progress = Arc::new(Progress::default());
    let clients: Vec<_> = (0..2)
        .map(|c| tokio::spawn(load_client(gw.clone(), progress.clone(), c, started)))
        .collect();

    // Wait for steady ingest, then kill nats-server and the ledger in turn.
    let warm = first_commit_after(&progress, started, Duration::from_secs(30)).await;
    assert!(
        warm < Duration::from_secs(30),
        "no commit before the first kill"
    );
    let mut nats_kills = 0;
    let mut ledger_kills = 0;
    let mut gateway_kills = 0;
    let mut projector_kills = 0;
    let mut worst_first_commit = Duration::ZERO;
    for k in 0..kills {
        match k % 4 {
            0 => {
                nats.kill();
                nats.restart();
                nats_kills += 1;
            }
            1 => {
                ledger.kill();
                ledger_logs.push(ledger.log_text());
                ledger = Proc::start("wfl-ledger", &ledger_again, &logs);
                ledger_kills += 1;
            }
            2 => {
                gateway.kill();
                gateway = Proc::start("wfl-gateway", &gateway_again, &logs);
                gateway_kills += 1;
            }
            _ => {
                projector.kill();
                let again = same_port(projector_args.clone(), &projector);
                projector = Proc::start("wfl-projector", &again, &logs);
                projector_kills += 1;
            }
        }
        let took = first_commit_after(&progress, started, FIRST_COMMIT_BOUND).await;
        assert!(
            took < FIRST_COMMIT_BOUND,
            "kill {k}: no commit within {FIRST_COMMIT_BOUND:?} of the restart; ledger log:\n{}\ngateway log (last 60 lines):\n{}",
            ledger.log_text(),
            last_lines(&gateway.log_text(), 60)
        );
        worst_first_commit = worst_first_commit.max(took);
        // Let some load through before the next kill.
        let before = progress.commits.load(Ordering::Relaxed);
        let deadline = Instant::now() + Duration::from_secs(20);
        while progress.commits.load(Ordering::Relaxed) < before + 500 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    progress.stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.expect("client task");
    }

    // Clients retry what stayed unresolved, with the same event ids, until every one resolves.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let pending: Vec<wfl_domain::Event> =
            std::mem::take(&mut *progress.unresolved.lock().expect("lock"));
        if pending.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} submissions still unresolved; ledger log:\n{}",
            pending.len(),
            ledger.log_text()
        );
        for chunk in pending.chunks(500) {
            let r = record(&gw, chunk, pb::AckLevel::Committed).await;
            for (item, event) in r.results.iter().zip(chunk) {
                match &item.outcome {
                    Some(pb::item_result::Outcome::Ok(o)) => {
                        progress
                            .acked
                            .lock()
                            .expect("lock")
                            .insert(o.event_id.clone(), o.sequence);
                    }
                    _ => progress
                        .unresolved
                        .lock()
                        .expect("lock")
                        .push(event.clone()),
                }
            }
        }
    }

    let ch = connect(&ledger.grpc).await;
    let all = replay(&ch).await;
    assert_valid_chain(&all);
    let ids: Vec<&String> = all
        .iter()
        .map(|c| &c.event.as_ref().expect("event").event_id)
        .collect();
    let unique: HashSet<&&String> = ids.iter().collect();
    let duplicated = ids.len() - unique.len();
    let by_id: HashMap<&String, u64> = all
        .iter()
        .map(|c| (&c.event.as_ref().expect("event").event_id, c.sequence))
        .collect();
    let acked = progress.acked.lock().expect("lock").clone();
    let lost = acked
        .iter()
        .filter(|(id, seq)| by_id.get(id) != Some(seq))
        .count();
    // The views hold every committed event, once (a projector killed at any point resumes).
    let views_http = projector.http.clone().expect("projector http");
    let head = all.len() as u64;
    let deadline = Instant::now() + Duration::from_secs(60);
    let views_at = loop {
        let metrics = common::http_get(&views_http, "/metrics");
        let at = metrics
            .lines()
            .find_map(|l| l.strip_prefix("wfl_views_checkpoint_sequence "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        if at >= head || Instant::now() > deadline {
            break at;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(views_at, head, "the views caught up with the ledger");
    ledger_logs.push(ledger.log_text());
    let text = ledger_logs.concat();
    let count = |needle: &str| text.matches(needle).count();
    let longest_gap = progress.longest_gap_ms.load(Ordering::Relaxed);
    println!(
        "liveness: kills nats={nats_kills} ledger={ledger_kills} gateway={gateway_kills} projector={projector_kills}, acknowledged {}, found {}, lost {lost}, duplicated {duplicated}, unresolved 0, chain valid, stalls detected {}, recoveries reopen={} recreate={} exit={}, slowest first commit after a restart {} ms (bound {} ms), longest time without a commit {} ms",
        acked.len(),
        all.len(),
        count("inbox STALLED"),
        count("inbox recovery: re-opening"),
        count("inbox recovery: deleting and re-creating"),
        count("inbox recovery failed: stopping the ledger"),
        worst_first_commit.as_millis(),
        FIRST_COMMIT_BOUND.as_millis(),
        longest_gap,
    );
    assert_eq!(lost, 0, "acknowledged events lost or moved");
    assert_eq!(duplicated, 0, "an event id was committed twice");
    assert_eq!(all.len(), acked.len(), "everything committed was answered");
    drop(gateway);
    drop(projector);
}
