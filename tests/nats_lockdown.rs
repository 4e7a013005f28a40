//! NATS locked down: nats-server runs with the repository's `deploy/nats/wfl.conf`, the
//! separate service binaries connect with their own users, and every forgery found in issue 10
//! is replayed by an analytics user (and, where it matters, by the gateway's own user): each is
//! refused by the server with a permission violation, has no effect, and the real services keep
//! recording, committing and answering.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_nats::jetstream;
use bytes::Bytes;
use common::{connect, ledger, record_batch, replay, Proc};
use futures::StreamExt;
use prost::Message;
use tokio::sync::mpsc;
use wfl_proto::pb;
use wfl_testkit::{scenario, NatsServer};

/// The users' passwords, given to nats-server through the environment the config reads.
const USERS: [(&str, &str, &str); 5] = [
    ("gateway", "WFL_NATS_GATEWAY_PASSWORD", "gw-secret"),
    ("ledger", "WFL_NATS_LEDGER_PASSWORD", "ledger-secret"),
    (
        "projector",
        "WFL_NATS_PROJECTOR_PASSWORD",
        "projector-secret",
    ),
    (
        "analytics",
        "WFL_NATS_ANALYTICS_PASSWORD",
        "analytics-secret",
    ),
    ("node", "WFL_NATS_NODE_PASSWORD", "node-secret"),
];

/// Bound on every wait for the server's answer.
const STEP: Duration = Duration::from_secs(15);

fn password(user: &str) -> &'static str {
    USERS
        .iter()
        .find(|(u, _, _)| *u == user)
        .map(|(_, _, p)| *p)
        .unwrap_or_else(|| panic!("no user {user}"))
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn locked_nats() -> NatsServer {
    let env: Vec<(&str, &str)> = USERS.iter().map(|(_, var, pw)| (*var, *pw)).collect();
    NatsServer::start_with_config(&repo().join("deploy/nats/wfl.conf"), &env)
}

fn auth_args(nats: &NatsServer, user: &str) -> Vec<String> {
    vec![
        "--nats-url".into(),
        nats.url(),
        "--nats-user".into(),
        user.into(),
        "--nats-password".into(),
        password(user).into(),
    ]
}

/// A client of the locked-down server that records the server's error lines.
struct Client {
    client: async_nats::Client,
    errors: mpsc::UnboundedReceiver<String>,
}

impl Client {
    async fn connect(nats: &NatsServer, user: &str) -> Client {
        let (tx, errors) = mpsc::unbounded_channel();
        let client = async_nats::ConnectOptions::with_user_and_password(
            user.to_owned(),
            password(user).to_owned(),
        )
        .custom_inbox_prefix(format!("_INBOX.{user}"))
        .request_timeout(Some(Duration::from_secs(2)))
        .event_callback(move |event| {
            let tx = tx.clone();
            async move {
                if let async_nats::Event::ServerError(e) = event {
                    let _ = tx.send(e.to_string());
                }
            }
        })
        .connect(nats.url())
        .await
        .unwrap_or_else(|e| panic!("connect as {user}: {e}"));
        Client { client, errors }
    }

    /// Waits for the server's permission violation naming `op` ("Publish to", "Subscription
    /// to") and `subject`.
    async fn expect_violation(&mut self, op: &str, subject: &str) {
        let wanted = format!("Permissions Violation for {op} \"{subject}\"");
        let found = tokio::time::timeout(STEP, async {
            while let Some(e) = self.errors.recv().await {
                if e.contains(&wanted) {
                    return e;
                }
            }
            panic!("error channel closed");
        })
        .await
        .unwrap_or_else(|_| panic!("no `{wanted}` from the server within {STEP:?}"));
        println!("refused: {found}");
    }

    /// Publishes and waits for the refusal.
    async fn publish_refused(&mut self, subject: &str, payload: Bytes) {
        self.client
            .publish(subject.to_owned(), payload)
            .await
            .expect("publish is sent");
        self.client.flush().await.expect("flush");
        self.expect_violation("Publish to", subject).await;
    }
}

async fn ledger_stream_messages(js: &jetstream::Context) -> u64 {
    let mut stream = js.get_stream("WFL_LEDGER").await.expect("stream info");
    stream.info().await.expect("stream info").state.messages
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_forgery_is_refused_while_the_services_keep_working() {
    let dir = wfl_testkit::temp_dir();
    let logs = dir.path().join("logs");
    let nats = locked_nats();

    // Anonymous clients and wrong passwords are refused at connect.
    assert!(
        async_nats::connect(nats.url()).await.is_err(),
        "an anonymous client must be refused"
    );
    let wrong = async_nats::ConnectOptions::with_user_and_password("ledger".into(), "guess".into())
        .connect(nats.url())
        .await;
    assert!(wrong.is_err(), "a wrong password must be refused");

    // The real services, each as its own user (the ledger first: it owns the streams).
    let ledger_args = |data: &Path| {
        let mut a = vec![
            "--data-dir".to_owned(),
            data.display().to_string(),
            "--grpc-addr".to_owned(),
            "127.0.0.1:0".to_owned(),
        ];
        a.extend(auth_args(&nats, "ledger"));
        a
    };
    let ledger_data = dir.path().join("ledger");
    let mut ledger_proc = Proc::start("wfl-ledger", &ledger_args(&ledger_data), &logs);
    let mut gw_args = vec!["--grpc-addr".to_owned(), "127.0.0.1:0".to_owned()];
    gw_args.extend(auth_args(&nats, "gateway"));
    let gateway = Proc::start("wfl-gateway", &gw_args, &logs);
    let mut pj_args = vec![
        "--data-dir".to_owned(),
        dir.path().join("projector").display().to_string(),
        "--grpc-addr".to_owned(),
        "127.0.0.1:0".to_owned(),
        "--ledger".to_owned(),
        ledger_proc.grpc.clone(),
        "--rulepacks".to_owned(),
        repo().join("rulepacks").display().to_string(),
    ];
    pj_args.extend(auth_args(&nats, "projector"));
    let projector = Proc::start("wfl-projector", &pj_args, &logs);

    let gw = connect(&gateway.grpc).await;
    let first = scenario::hire("acme", "w-1");
    let r = record_batch(&gw, std::slice::from_ref(&first)).await;
    let committed = common::ok(&r.results[0]).clone();
    assert!(
        committed.sequence > 0,
        "the real path commits: {committed:?}"
    );

    let mut analytics = Client::connect(&nats, "analytics").await;
    let js = jetstream::new(analytics.client.clone());
    let published = tokio::time::timeout(STEP, async {
        loop {
            let n = ledger_stream_messages(&js).await;
            if n >= 1 {
                return n;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the ledger publishes the committed event");
    let mut forgeries = 0;

    // 1. An event published straight to the inbox, past the gateway.
    let forged = scenario::hire("victim", "w-forged");
    let forged_wire = Bytes::from(wfl_proto::convert::event_to_pb(&forged).encode_to_vec());
    analytics
        .publish_refused("wfl.inbox.victim", forged_wire.clone())
        .await;
    forgeries += 1;

    // 2. Answering wfl.ctl.await, or publishing outcomes on wfl.outcomes, while the ledger is
    //    down: the gateway keeps waiting, and the answer it gives is the real ledger's once it
    //    is back.
    ledger_proc.kill();
    let pending = {
        let gw = gw.clone();
        let event = scenario::hire("acme", "w-2");
        tokio::spawn(async move { record_batch(&gw, &[event]).await })
    };
    let subscription = analytics
        .client
        .subscribe("wfl.ctl.await")
        .await
        .expect("subscribe is sent");
    analytics.client.flush().await.expect("flush");
    analytics
        .expect_violation("Subscription to", "wfl.ctl.await")
        .await;
    drop(subscription);
    forgeries += 1;
    let fake_outcome = Bytes::from(
        wfl_proto::internal::Outcomes {
            outcomes: vec![wfl_proto::internal::Outcome {
                event_id: forged.event_id.0.to_string(),
                result: Some(wfl_proto::internal::outcome::Result::Committed(
                    wfl_proto::internal::Committed {
                        sequence: 424_242,
                        hash: vec![0; 32],
                    },
                )),
                ..Default::default()
            }],
            ..Default::default()
        }
        .encode_to_vec(),
    );
    // Nor a forged batch of outcomes on the broadcast subject, which analytics may not read
    // either.
    analytics
        .publish_refused(wfl_bus::OUTCOME_SUBJECT, fake_outcome.clone())
        .await;
    let outcomes_sub = analytics
        .client
        .subscribe(wfl_bus::OUTCOME_SUBJECT)
        .await
        .expect("subscribe is sent");
    analytics.client.flush().await.expect("flush");
    analytics
        .expect_violation("Subscription to", wfl_bus::OUTCOME_SUBJECT)
        .await;
    drop(outcomes_sub);
    forgeries += 2;
    for subject in ["_INBOX.gateway.x.1", "_INBOX.anything", "_INBOX.ledger.x"] {
        analytics
            .publish_refused(subject, fake_outcome.clone())
            .await;
        forgeries += 1;
    }
    // The gateway's own user cannot answer itself either, nor take the ledger's subject.
    let mut gateway_user = Client::connect(&nats, "gateway").await;
    gateway_user
        .publish_refused("_INBOX.gateway.x.1", fake_outcome.clone())
        .await;
    let _sub = gateway_user
        .client
        .subscribe("wfl.ctl.await")
        .await
        .expect("subscribe is sent");
    gateway_user
        .expect_violation("Subscription to", "wfl.ctl.await")
        .await;
    gateway_user
        .publish_refused(wfl_bus::OUTCOME_SUBJECT, fake_outcome.clone())
        .await;
    forgeries += 3;
    // Back on the same port, where the projector looks for it.
    let mut again = ledger_args(&ledger_data);
    let port = ledger_proc.grpc.trim_start_matches("http://").to_owned();
    for a in &mut again {
        if a == "127.0.0.1:0" {
            a.clone_from(&port);
        }
    }
    ledger_proc = Proc::start("wfl-ledger", &again, &logs);
    let r = tokio::time::timeout(Duration::from_secs(60), pending)
        .await
        .expect("the pending batch is answered once the ledger is back")
        .expect("record task");
    let second = common::ok(&r.results[0]).clone();
    let lg = connect(&ledger_proc.grpc).await;
    let events = replay(&lg).await;
    let stored = events
        .iter()
        .find(|e| e.sequence == second.sequence)
        .expect("the acknowledged sequence is in the ledger");
    assert_eq!(
        stored.hash, second.hash,
        "the gateway answered the ledger's real hash"
    );
    assert_ne!(second.sequence, 424_242);

    // 3. A fake CommittedEvent published into WFL_LEDGER (by analytics, and by the gateway).
    // The ledger publishes a commit on WFL_LEDGER after answering it: wait (with a deadline)
    // until the real second event is there, so that only a forgery could add to the count.
    let before = tokio::time::timeout(STEP, async {
        loop {
            let n = ledger_stream_messages(&js).await;
            if n > published {
                return n;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the ledger publishes the second committed event");
    let fake_committed = Bytes::from(
        pb::CommittedEvent {
            sequence: 424_242,
            hash: vec![0; 32],
            ..Default::default()
        }
        .encode_to_vec(),
    );
    analytics
        .publish_refused("wfl.ledger.acme.worker_hired", fake_committed.clone())
        .await;
    gateway_user
        .publish_refused("wfl.ledger.acme.worker_hired", fake_committed.clone())
        .await;
    forgeries += 2;
    // Acknowledging (deleting) inbox messages is the ledger's alone.
    analytics
        .publish_refused("$JS.ACK.WFL_INBOX.wfl-ledger.1.1.1.0.0", Bytes::new())
        .await;
    forgeries += 1;
    // Nor may analytics change or delete the streams.
    analytics
        .publish_refused("$JS.API.STREAM.DELETE.WFL_LEDGER", Bytes::new())
        .await;
    forgeries += 1;

    // 4. A forged alert: refused, and never delivered (the forger's own subscription, which
    //    would see it first, stays empty).
    let mut alerts = analytics
        .client
        .subscribe("wfl.alerts.>")
        .await
        .expect("analytics may subscribe to alerts");
    analytics.client.flush().await.expect("flush");
    analytics
        .publish_refused(
            "wfl.alerts.acme.CN-LCL-41",
            Bytes::from_static(br#"{"level":"met","count":999}"#),
        )
        .await;
    gateway_user
        .publish_refused("wfl.alerts.acme.CN-LCL-41", Bytes::from_static(b"{}"))
        .await;
    forgeries += 2;
    analytics.client.flush().await.expect("flush");
    assert!(
        futures::FutureExt::now_or_never(alerts.next()).is_none(),
        "a refused alert is not delivered"
    );

    // 5. A consumer on WFL_LEDGER whose deliver subject is the inbox. NATS checks neither a
    //    consumer's deliver subject nor a request's reply subject against the requester's
    //    permissions, so the server is asked to publish for the forger. Whatever it delivers is
    //    a copy of a CommittedEvent, which is not a wfl.v1.Event: the ledger would drop it; the
    //    checks below show that nothing but the real events was committed.
    let mut pump = js
        .get_stream("WFL_LEDGER")
        .await
        .expect("stream")
        .create_consumer(jetstream::consumer::push::Config {
            durable_name: Some("pump".into()),
            deliver_subject: "wfl.inbox.victim".into(),
            ..Default::default()
        })
        .await
        .expect("analytics may create consumers on WFL_LEDGER (see ARCHITECTURE.md)");
    let pumped = pump
        .info()
        .await
        .expect("consumer info")
        .delivered
        .stream_sequence;
    println!("push consumer into the inbox: delivered up to stream sequence {pumped}");

    // The inbox forgery never reached the ledger; nothing was added to WFL_LEDGER but the real
    // second event.
    let after = ledger_stream_messages(&js).await;
    assert_eq!(after, before, "no forged message entered WFL_LEDGER");
    assert_eq!(before, published + 1);
    let third = scenario::hire("acme", "w-3");
    let r = record_batch(&gw, std::slice::from_ref(&third)).await;
    let third_ok = common::ok(&r.results[0]).clone();
    let events = replay(&lg).await;
    common::assert_valid_chain(&events);
    let ids: Vec<&str> = events
        .iter()
        .filter_map(|e| e.event.as_ref().map(|ev| ev.event_id.as_str()))
        .collect();
    assert!(
        !ids.contains(&forged.event_id.0.to_string().as_str()),
        "the forged inbox event was never committed"
    );
    assert_eq!(events.len(), 3, "exactly the three real events: {ids:?}");
    assert_eq!(events[2].sequence, third_ok.sequence);

    // Analytics can do its job: a durable pull consumer reads every committed event. The
    // publisher follows the ledger's head, so the last commit reaches the stream a moment after
    // its answer: wait until the stream holds it (a fetch answers with what is there).
    let mut stream = js.get_stream("WFL_LEDGER").await.expect("stream");
    let deadline = tokio::time::Instant::now() + STEP;
    while stream
        .info()
        .await
        .expect("stream info")
        .state
        .last_sequence
        < 3
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the third commit never reached WFL_LEDGER"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::Config {
            durable_name: Some("analytics-audit".into()),
            ..Default::default()
        })
        .await
        .expect("analytics may create a durable pull consumer on WFL_LEDGER");
    let mut messages = consumer
        .fetch()
        .max_messages(10)
        .expires(Duration::from_secs(2))
        .messages()
        .await
        .expect("fetch");
    let mut read = 0;
    while let Some(m) = tokio::time::timeout(STEP, messages.next())
        .await
        .expect("fetch answers")
    {
        let m = m.expect("message");
        m.ack().await.expect("ack");
        read += 1;
    }
    assert_eq!(read, 3, "analytics reads the three committed events");

    // The projector came up as its own user and follows the ledger.
    let views = connect(&projector.grpc).await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(views);
    // Readiness is mirrored into gRPC health once the projector follows: poll for it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let status = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await
            .expect("projector health")
            .into_inner()
            .status;
        if status == tonic_health::pb::health_check_response::ServingStatus::Serving as i32 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the projector stayed {status} (not SERVING): {}",
            common::http_get(projector.http.as_deref().expect("http"), "/healthz")
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let _ = ledger(&lg);

    let log = nats.log();
    println!("forgeries refused: {forgeries}");
    assert!(
        log.contains("Publish Violation"),
        "the server logs the refusals:\n{log}"
    );
}

/// `wfl up --nats-url` on the locked-down server, as the `node` user: it provisions the streams,
/// records, commits and publishes, with no permission violation logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_node_runs_as_the_node_user() {
    let dir = wfl_testkit::temp_dir();
    let nats = locked_nats();
    let args = auth_args(&nats, "node");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let node = common::up(dir.path(), &args);
    let ch = connect(&node.grpc).await;
    let r = record_batch(&ch, &[scenario::hire("acme", "w-1")]).await;
    assert!(common::ok(&r.results[0]).sequence > 0);
    let analytics = Client::connect(&nats, "analytics").await;
    let js = jetstream::new(analytics.client.clone());
    tokio::time::timeout(STEP, async {
        while ledger_stream_messages(&js).await < 1 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the node publishes the committed event");
    let log = nats.log();
    assert!(
        !log.contains("Violation"),
        "no refusal for the node:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_mode_runs_locked_down_and_nobody_else_may_write_a_partition_or_a_lease() {
    let nats = locked_nats();
    let dir = wfl_testkit::temp_dir();
    let logs = dir.path().join("logs");
    let mut args: Vec<String> = [
        "--data-dir",
        &dir.path().join("ledger").display().to_string(),
        "--grpc-addr",
        "127.0.0.1:0",
        "--cluster",
        "--instance",
        "solo",
        "--partitions",
        "2",
    ]
    .map(str::to_owned)
    .to_vec();
    args.extend(auth_args(&nats, "ledger"));
    let ledger_proc = Proc::start("wfl-ledger", &args, &logs);
    let mut args: Vec<String> = ["--grpc-addr", "127.0.0.1:0", "--cluster"]
        .map(str::to_owned)
        .to_vec();
    args.extend(auth_args(&nats, "gateway"));
    let gateway = Proc::start("wfl-gateway", &args, &logs);
    // The instance takes both partitions once it has joined.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while ledger_proc
        .log_text()
        .matches("partition taken over")
        .count()
        < 2
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the instance did not take its partitions as the ledger user:\n{}",
            ledger_proc.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let gw = connect(&gateway.grpc).await;
    let events: Vec<_> = (0..40)
        .map(|i| scenario::hire(&format!("org-{}", i % 8), &format!("w{i}")))
        .collect();
    let r = record_batch(&gw, &events).await;
    assert!(
        r.results
            .iter()
            .all(|i| matches!(i.outcome, Some(pb::item_result::Outcome::Ok(_)))),
        "every event commits in cluster mode under the users: {r:?}\nledger:\n{}\ngateway:\n{}",
        ledger_proc.log_text(),
        gateway.log_text()
    );

    // Nobody but the ledger may write a partition log, a lease or the partition map.
    let mut analytics = Client::connect(&nats, "analytics").await;
    for subject in [
        "wfl.partition.0",
        "$KV.WFL_LEASES.p0",
        "$KV.WFL_CLUSTER.partitions",
    ] {
        analytics
            .publish_refused(subject, Bytes::from("forged"))
            .await;
    }
    let mut gateway_user = Client::connect(&nats, "gateway").await;
    for subject in ["wfl.partition.1", "$KV.WFL_LEASES.p1"] {
        gateway_user
            .publish_refused(subject, Bytes::from("forged"))
            .await;
    }

    // A new tenant is placed on the other partition by the ledger user (the gateway user may
    // not change the map); a message still routed by the old map is forwarded by the ledger.
    let from = wfl_bus::cluster::PartitionMap::hash_partition("tenant", 2);
    let place = |user: &str| {
        std::process::Command::new(common::bin("wfl"))
            .args(["cluster", "place", "tenant", &(1 - from).to_string()])
            .args(auth_args(&nats, user))
            .output()
            .expect("wfl cluster place runs")
    };
    let refused = place("gateway");
    assert!(!refused.status.success(), "the gateway user placed an org");
    let placed = place("ledger");
    assert!(
        placed.status.success(),
        "{}",
        String::from_utf8_lossy(&placed.stderr)
    );
    let stale = scenario::hire("tenant", "stale");
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", stale.event_id.to_string());
    gateway_user
        .client
        .publish_with_headers(
            wfl_bus::cluster::partition_inbox_subject(from, "tenant"),
            headers,
            common::wire(&stale).encode_to_vec().into(),
        )
        .await
        .expect("publish");

    // And the cluster goes on committing, every partition's head adding up. The tenant's
    // events may be refused (retryable) until the gateway has read the map that placed it
    // (within 250 ms of the placement).
    let mut pending: Vec<_> = (40..80)
        .map(|i| scenario::hire(&format!("org-{}", i % 8), &format!("w{i}")))
        .chain((0..5).map(|i| scenario::hire("tenant", &format!("t{i}"))))
        .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !pending.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "{} events never committed",
            pending.len()
        );
        let r = record_batch(&gw, &pending).await;
        let (done, retry) = common::committed_and_retry(&pending, &r);
        if done.is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        pending = retry;
    }
    let ch = connect(&ledger_proc.grpc).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut total = 0;
        for p in 0..2u32 {
            let mut request = tonic::Request::new(pb::HeadRequest {});
            request
                .metadata_mut()
                .insert("wfl-partition", p.to_string().parse().expect("value"));
            total += ledger(&ch)
                .head(request)
                .await
                .expect("Head")
                .into_inner()
                .sequence;
        }
        // 80 hires, 5 of the tenant and its forwarded one.
        if total == 86 {
            break;
        }
        assert!(
            total < 86 && std::time::Instant::now() < deadline,
            "both partitions together hold every event, once: {total}\n{}",
            ledger_proc.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The users' permissions cover everything cluster mode does (none of it was refused).
    for (name, p) in [("ledger", &ledger_proc), ("gateway", &gateway)] {
        assert!(
            !p.log_text().contains("Permissions Violation"),
            "the {name} was refused something:\n{}",
            p.log_text()
        );
    }
}
