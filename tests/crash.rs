//! Crash tests with real processes: `wfl-gateway` and `wfl-ledger` run as separate binaries on a
//! real nats-server, and the ledger is killed with SIGKILL while events stream in. Nothing that
//! was acknowledged may be lost, nothing may be committed twice, and the chain must stay valid.

mod common;

use std::collections::{HashMap, HashSet};

use common::{assert_valid_chain, connect, replay, Proc};
use tokio::sync::mpsc;
use wfl_proto::pb;
use wfl_testkit::{scenario, NatsServer};

fn ledger_args(data: &std::path::Path, nats: &NatsServer) -> Vec<String> {
    vec![
        "--data-dir".into(),
        data.display().to_string(),
        "--grpc-addr".into(),
        "127.0.0.1:0".into(),
        "--nats-url".into(),
        nats.url(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_killed_mid_stream_loses_nothing_acknowledged_and_duplicates_nothing() {
    let dir = wfl_testkit::temp_dir();
    let logs = dir.path().join("logs");
    let data = dir.path().join("data");
    let nats = NatsServer::start();
    let mut ledger = Proc::start("wfl-ledger", &ledger_args(&data, &nats), &logs);
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
    let gw = connect(&gateway.grpc).await;

    const BATCHES: usize = 40;
    const PER_BATCH: usize = 250;
    let events: Vec<wfl_domain::Event> = (0..BATCHES * PER_BATCH)
        .map(|i| scenario::hire("acme", &format!("w-{i}")))
        .collect();

    // The client streams batches and reports how many events have been acknowledged so far.
    let (progress_tx, mut progress_rx) = mpsc::unbounded_channel::<usize>();
    let client_events = events.clone();
    let client_gw = gw.clone();
    let client = tokio::spawn(async move {
        let mut acked: HashMap<String, u64> = HashMap::new();
        let mut unknown: Vec<wfl_domain::Event> = Vec::new();
        for batch in client_events.chunks(PER_BATCH) {
            let r = common::record_batch(&client_gw, batch).await;
            for (item, event) in r.results.iter().zip(batch) {
                match &item.outcome {
                    Some(pb::item_result::Outcome::Ok(o)) => {
                        assert!(o.sequence > 0, "COMMITTED answers carry a sequence");
                        acked.insert(o.event_id.clone(), o.sequence);
                    }
                    Some(pb::item_result::Outcome::Error(e)) => {
                        assert_eq!(
                            e.code,
                            tonic::Code::Unavailable as i32,
                            "only unavailability may fail an item: {e:?}"
                        );
                        unknown.push(event.clone());
                    }
                    None => panic!("item without outcome"),
                }
            }
            let _ = progress_tx.send(acked.len());
        }
        (acked, unknown)
    });

    // Kill the ledger once a good part of the stream is acknowledged, while the rest is in flight.
    while let Some(n) = progress_rx.recv().await {
        if n >= 2_000 {
            break;
        }
    }
    ledger.kill();
    ledger = Proc::start("wfl-ledger", &ledger_args(&data, &nats), &logs);

    let (acked, unknown) = client.await.expect("client task");
    // Whatever the client could not learn the outcome of, it retries with the same event ids.
    let retry = common::record_batch(&gw, &unknown).await;
    let mut acked = acked;
    for item in &retry.results {
        let o = common::ok(item);
        acked.insert(o.event_id.clone(), o.sequence);
    }

    let ch = connect(&ledger.grpc).await;
    let all = replay(&ch).await;
    assert_valid_chain(&all);
    let ids: Vec<String> = all
        .iter()
        .map(|c| c.event.as_ref().expect("event").event_id.clone())
        .collect();
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "an event id was committed twice");
    assert_eq!(
        ids.len(),
        events.len(),
        "every event is committed exactly once"
    );
    let by_id: HashMap<&String, u64> = all
        .iter()
        .map(|c| (&c.event.as_ref().expect("event").event_id, c.sequence))
        .collect();
    for (id, seq) in &acked {
        assert_eq!(
            by_id.get(id),
            Some(seq),
            "acknowledged event {id} lost or moved"
        );
    }
    assert_eq!(acked.len(), events.len());
    drop(gateway);
}
