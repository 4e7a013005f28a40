//! A 3-node JetStream cluster from `NatsCluster` keeps a replicated stream writable while one
//! node is down, and the node catches up when it comes back.

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, context::Publish, stream};
use wfl_testkit::NatsCluster;

const STREAM: &str = "CLUSTER_TEST";
const SUBJECT: &str = "cluster.test";
/// One JetStream request (publish ack, stream info) waits this long before it is retried.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// A publish (or stream info) is retried for this long: a stream leader election after a
/// kill takes the followers' RAFT election timeout (4 to 9 s in nats-server) plus a vote.
const RETRY_DEADLINE: Duration = Duration::from_secs(20);
/// Pause before retrying a failed request.
const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// How long the restarted node may take to be a current replica of the stream again.
const CATCH_UP_DEADLINE: Duration = Duration::from_secs(30);

/// Publishes message `n` with message id `m-<n>` until it is acknowledged: a retry after a
/// lost ack is deduplicated by the stream, so each `n` is stored once.
async fn publish(js: &jetstream::Context, n: u32) {
    let deadline = Instant::now() + RETRY_DEADLINE;
    loop {
        let publish = Publish::build()
            .payload(format!("message {n}").into())
            .message_id(format!("m-{n}"));
        let result = match js.send_publish(SUBJECT, publish).await {
            Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match result {
            Ok(()) => return,
            Err(e) if Instant::now() < deadline => {
                // "No responders" comes back at once while no stream leader is elected.
                eprintln!("publish {n} not acknowledged yet ({e}); retrying");
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            Err(e) => panic!("publish {n} not acknowledged within {RETRY_DEADLINE:?}: {e}"),
        }
    }
}

/// The stream's info, retried while the cluster answers errors or times out.
async fn info(js: &jetstream::Context) -> stream::Info {
    let deadline = Instant::now() + RETRY_DEADLINE;
    loop {
        let result = match js.get_stream(STREAM).await {
            Ok(stream) => stream.get_info().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match result {
            Ok(info) => return info,
            Err(e) if Instant::now() < deadline => {
                eprintln!("stream info not answered yet ({e}); retrying");
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            Err(e) => panic!("stream info not answered within {RETRY_DEADLINE:?}: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicated_stream_survives_a_killed_node_and_the_node_catches_up() {
    let started = Instant::now();
    let mut cluster = tokio::task::block_in_place(|| NatsCluster::start(3));
    eprintln!("cluster ready after {:?}", started.elapsed());
    assert_eq!(cluster.size(), 3);
    assert_eq!(
        cluster.urls(),
        format!("{},{},{}", cluster.url(0), cluster.url(1), cluster.url(2))
    );

    let client = async_nats::connect(cluster.url_list())
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", cluster.urls()));
    let mut js = jetstream::new(client);
    js.set_timeout(REQUEST_TIMEOUT);
    js.create_stream(stream::Config {
        name: STREAM.to_owned(),
        subjects: vec![SUBJECT.to_owned()],
        num_replicas: 3,
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| panic!("cannot create the stream: {e}"));

    for n in 0..100 {
        publish(&js, n).await;
    }

    // The worst node to lose: the stream's leader (the other two must elect a new one).
    let before = info(&js).await;
    assert_eq!(before.state.messages, 100);
    let leader = before
        .cluster
        .as_ref()
        .and_then(|c| c.leader.clone())
        .unwrap_or_else(|| panic!("the stream has no leader: {before:?}"));
    let victim = cluster
        .index_of(&leader)
        .unwrap_or_else(|| panic!("stream leader {leader} is not a node of the cluster"));
    cluster.kill(victim);
    assert!(!cluster.is_running(victim));
    let killed = Instant::now();

    for n in 100..200 {
        publish(&js, n).await;
    }
    eprintln!(
        "100 publishes with {leader} down took {:?}",
        killed.elapsed()
    );
    // Two of three nodes still form a meta group with a leader.
    tokio::task::block_in_place(|| cluster.wait_ready());

    tokio::task::block_in_place(|| cluster.restart(victim));
    assert!(cluster.is_running(victim));

    // The restarted node is a current replica again and the stream holds every message once.
    let deadline = Instant::now() + CATCH_UP_DEADLINE;
    let after = loop {
        let info = info(&js).await;
        let replicas_current = info.cluster.as_ref().is_some_and(|c| {
            c.leader.is_some()
                && c.replicas.len() == 2
                && c.replicas.iter().all(|r| r.current && !r.offline)
        });
        if replicas_current {
            break info;
        }
        assert!(
            Instant::now() < deadline,
            "{leader} is not a current replica of the stream within {CATCH_UP_DEADLINE:?}: \
             {:?}\nits log:\n{}",
            info.cluster,
            cluster.log(victim)
        );
        tokio::time::sleep(RETRY_PAUSE).await;
    };
    assert_eq!(after.state.messages, 200, "{:?}", after.state);
    assert_eq!(after.state.first_sequence, 1);
    assert_eq!(after.state.last_sequence, 200);
    eprintln!("whole test took {:?}", started.elapsed());
}
