//! Cluster mode for real (issue 13): a 3-node JetStream cluster on loopback ports, two
//! `wfl-ledger --cluster` instances and two `wfl-gateway --cluster` gateways as separate
//! processes, COMMITTED load over 24 orgs through both gateways while the owner of partitions is
//! SIGKILLed (its partitions are taken over), a NATS node is SIGKILLed (the cluster keeps
//! quorum), the killed instance comes back (partitions rebalance), and everything restarts.
//! Then every partition's replicated log is read back: each chain verifies, every acknowledged
//! event is there exactly once, at the partition and sequence it was acknowledged with.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Proc;
use prost::Message;
use tonic::transport::Channel;
use wfl_bus::cluster::PartitionMap;
use wfl_proto::{internal as ipb, pb};
use wfl_testkit::{scenario, NatsCluster};

const PARTITIONS: u32 = 4;
const ORGS: usize = 24;
/// Lease TTL of the instances: a dead owner's partitions are free after at most this long.
const LEASE_TTL_SECS: u64 = 6;
/// After a kill, commits resume within this bound (lease TTL + the next round + catch-up).
const RESUME_BOUND: Duration = Duration::from_secs(30);
/// After a NATS node is killed, commits resume within this bound: the streams and consumers
/// whose leader was on it elect another (seconds each), and a writer retries an append whose
/// outcome it does not know for up to 30 s (measured: 6-22 s, printed in the summary line).
const NATS_RESUME_BOUND: Duration = Duration::from_secs(60);

fn ledger_args(data: &std::path::Path, nats: &NatsCluster, instance: &str) -> Vec<String> {
    ledger_args_with(data, &nats.urls(), instance, PARTITIONS, 3)
}

fn ledger_args_with(
    data: &std::path::Path,
    nats_urls: &str,
    instance: &str,
    partitions: u32,
    replicas: u32,
) -> Vec<String> {
    [
        "--data-dir",
        &data.display().to_string(),
        "--grpc-addr",
        "127.0.0.1:0",
        "--nats-url",
        nats_urls,
        "--cluster",
        "--instance",
        instance,
        "--partitions",
        &partitions.to_string(),
        "--replicas",
        &replicas.to_string(),
        "--lease-ttl-secs",
        &LEASE_TTL_SECS.to_string(),
        "--inbox-stall-secs",
        "5",
    ]
    .map(str::to_owned)
    .to_vec()
}

fn gateway_args(nats_urls: &str) -> Vec<String> {
    [
        "--grpc-addr",
        "127.0.0.1:0",
        "--nats-url",
        nats_urls,
        "--cluster",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// A network namespace joined to this one by a veth pair (`10.231.<n>.1` here, `.2` there):
/// a process started in it reaches the NATS nodes through the pair only, so taking the pair's
/// end here down cuts it off from the cluster. Removed on drop.
struct Netns {
    name: String,
    host_if: String,
    host_ip: std::net::Ipv4Addr,
}

fn ip(args: &[&str]) {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .expect("the ip command runs (iproute2; the test needs root for network namespaces)");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Netns {
    fn create() -> Netns {
        let n = std::process::id() % 250 + 1;
        let name = format!("wfl-test-{n}");
        let (host_if, ns_if) = (format!("wflh{n}"), format!("wfln{n}"));
        let host_ip = std::net::Ipv4Addr::new(10, 231, n as u8, 1);
        // Left over from a killed run with the same number: gone first.
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &name])
            .output();
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &host_if])
            .output();
        ip(&["netns", "add", &name]);
        ip(&[
            "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if,
        ]);
        ip(&["link", "set", &ns_if, "netns", &name]);
        ip(&["addr", "add", &format!("{host_ip}/30"), "dev", &host_if]);
        ip(&["link", "set", &host_if, "up"]);
        let inside = format!("10.231.{n}.2/30");
        ip(&[
            "netns", "exec", &name, "ip", "addr", "add", &inside, "dev", &ns_if,
        ]);
        ip(&["netns", "exec", &name, "ip", "link", "set", &ns_if, "up"]);
        ip(&["netns", "exec", &name, "ip", "link", "set", "lo", "up"]);
        Netns {
            name,
            host_if,
            host_ip,
        }
    }

    fn cut(&self) {
        ip(&["link", "set", &self.host_if, "down"]);
    }

    fn heal(&self) {
        ip(&["link", "set", &self.host_if, "up"]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.host_if])
            .output();
    }
}

fn org(i: usize) -> String {
    format!("org-{i:02}")
}

#[derive(Default)]
struct Progress {
    /// Event id → (org, sequence) of its COMMITTED answer.
    acked: Mutex<HashMap<String, (String, u64)>>,
    unresolved: Mutex<Vec<wfl_domain::Event>>,
    commits: AtomicU64,
    stop: AtomicBool,
}

/// One client: batches of hires spread over every org, COMMITTED, through `gateways` in turn;
/// ids whose outcome is unknown are retried (same ids) in later batches.
async fn load_client(gateways: Arc<Mutex<Vec<Channel>>>, progress: Arc<Progress>, client: usize) {
    let mut n = 0usize;
    let mut turn = client;
    while !progress.stop.load(Ordering::Relaxed) {
        let mut batch: Vec<wfl_domain::Event> = (0..48)
            .map(|i| scenario::hire(&org((n + i) % ORGS), &format!("c{client}-w{}", n + i)))
            .collect();
        n += batch.len();
        {
            let mut unresolved = progress.unresolved.lock().expect("lock");
            let take = unresolved.len().min(200);
            batch.extend(unresolved.drain(..take));
        }
        let gw = {
            let g = gateways.lock().expect("lock");
            turn += 1;
            g[turn % g.len()].clone()
        };
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
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (done, retry) = common::committed_and_retry(&batch, &r);
        for (event, o) in &done {
            let prev = progress
                .acked
                .lock()
                .expect("lock")
                .insert(o.event_id.clone(), (event.org_id.to_string(), o.sequence));
            assert!(
                prev.is_none() || prev.as_ref().map(|p| p.1) == Some(o.sequence),
                "event {} answered with two sequences",
                o.event_id
            );
        }
        progress.unresolved.lock().expect("lock").extend(retry);
        let committed = done.len() as u64;
        progress.commits.fetch_add(committed, Ordering::Relaxed);
    }
}

/// Waits (up to 60 s) until `WFL_LEDGER` holds every record of `found` (event id → partition,
/// sequence), then checks: each once, under its partition (`Wfl-Partition`) and sequence
/// (`Wfl-Sequence`), and each partition's sequences increasing in stream order.
async fn committed_stream_holds(nats_urls: &str, found: &HashMap<String, (u32, u64)>) {
    let client = async_nats::connect(nats_urls.split(',').map(str::to_owned).collect::<Vec<_>>())
        .await
        .expect("connect");
    let js = async_nats::jetstream::new(client);
    let mut stream = js.get_stream("WFL_LEDGER").await.expect("WFL_LEDGER");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let info = stream.info().await.expect("info");
        if info.state.messages >= found.len() as u64 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let last = stream.info().await.expect("info").state.last_sequence;
    let mut seen: HashMap<String, (u32, u64)> = HashMap::new();
    let mut order: HashMap<u32, u64> = HashMap::new();
    for s in 1..=last {
        let m = stream.get_raw_message(s).await.expect("message");
        let header = |name: &str| {
            // Parsed: standard names (Nats-Msg-Id) are kept as such by async-nats.
            let key: async_nats::HeaderName = name.parse().expect("header name");
            m.headers
                .get(key)
                .map(|v| v.as_str().to_owned())
                .unwrap_or_else(|| panic!("WFL_LEDGER message {s}: no {name}"))
        };
        let id = header("Nats-Msg-Id");
        let partition: u32 = header("Wfl-Partition").parse().expect("partition");
        let sequence: u64 = header("Wfl-Sequence").parse().expect("sequence");
        let before = order.insert(partition, sequence).unwrap_or(0);
        assert!(
            sequence > before,
            "partition {partition}: sequence {sequence} after {before} on WFL_LEDGER"
        );
        assert!(
            seen.insert(id.clone(), (partition, sequence)).is_none(),
            "event {id} twice on WFL_LEDGER"
        );
    }
    assert_eq!(
        seen.len(),
        found.len(),
        "WFL_LEDGER holds every committed event"
    );
    for (id, at) in found {
        assert_eq!(seen.get(id), Some(at), "event {id} on WFL_LEDGER");
    }
}

/// The last `n` lines of each process's log, for a failure message.
fn tails(logs: &[&Proc], n: usize) -> String {
    logs.iter()
        .map(|p| {
            let t = p.log_text();
            let lines: Vec<&str> = t.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        })
        .collect::<Vec<_>>()
        .join("\n-----\n")
}

/// Waits until `more` commits were answered after now; panics after `bound` showing `logs`.
async fn commits_go_on(
    progress: &Progress,
    more: u64,
    bound: Duration,
    what: &str,
    logs: &[&Proc],
) -> Duration {
    let from = progress.commits.load(Ordering::Relaxed);
    let started = Instant::now();
    while progress.commits.load(Ordering::Relaxed) < from + more {
        if started.elapsed() > bound {
            panic!(
                "{what}: fewer than {more} commits within {bound:?}; logs:\n{}",
                tails(logs, 40)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    started.elapsed()
}

/// Which instance owns which partitions, from the lease bucket. JetStream requests may time out
/// while the cluster elects a leader (or under load): asked again for up to 30 s.
async fn owners(nats: &NatsCluster) -> BTreeMap<u32, String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let attempt = async {
            let client = async_nats::connect(nats.url_list())
                .await
                .map_err(|e| e.to_string())?;
            let cluster = wfl_bus::cluster::Cluster::attach(&client)
                .await
                .map_err(|e| e.to_string())?;
            let mut owners = BTreeMap::new();
            for p in 0..PARTITIONS {
                if let Some(o) = cluster.holder(p).await.map_err(|e| e.to_string())? {
                    owners.insert(p, o);
                }
            }
            Ok::<_, String>(owners)
        };
        match attempt.await {
            Ok(owners) => return owners,
            Err(e) => assert!(
                Instant::now() < deadline,
                "cannot read the leases for 30 s: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until instance b owns every partition; panics after [`RESUME_BOUND`] showing `logs`.
async fn owned_by_b_alone(nats: &NatsCluster, logs: &[&Proc]) {
    let deadline = Instant::now() + RESUME_BOUND;
    loop {
        let o = owners(nats).await;
        if o.len() as u32 == PARTITIONS && o.values().all(|x| x == "b") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "b did not take every partition over: {o:?}; logs:\n{}",
            tails(logs, 40)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until every partition has an owner and both instances own some, and says how long
/// that took; panics after [`RESUME_BOUND`] showing `logs`.
async fn shared(nats: &NatsCluster, logs: &[&Proc]) -> Duration {
    let started = Instant::now();
    let deadline = started + RESUME_BOUND;
    loop {
        let o = owners(nats).await;
        if o.len() as u32 == PARTITIONS
            && o.values().any(|x| x == "a")
            && o.values().any(|x| x == "b")
        {
            return started.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "the partitions were not shared between the instances: {o:?}; logs:\n{}",
            tails(logs, 40)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Everything each partition's log holds: event id → (partition, sequence); and the number of
/// ids found more than once. Panics when a chain does not verify.
async fn read_logs(nats_urls: &str) -> (HashMap<String, (u32, u64)>, usize, u64) {
    let map = PartitionMap::new(PARTITIONS, BTreeMap::new()).expect("map");
    read_logs_of(nats_urls, &map).await
}

/// [`read_logs`] of a cluster created with `map` (and orgs placed since, in `map`'s table).
async fn read_logs_of(
    nats_urls: &str,
    map: &PartitionMap,
) -> (HashMap<String, (u32, u64)>, usize, u64) {
    let client = async_nats::connect(nats_urls.split(',').map(str::to_owned).collect::<Vec<_>>())
        .await
        .expect("connect");
    let js = async_nats::jetstream::new(client);
    let mut found = HashMap::new();
    let mut duplicated = 0;
    let mut markers = 0;
    for p in 0..map.count {
        let mut stream = js
            .get_stream(format!("WFL_PARTITION_{p}"))
            .await
            .expect("partition stream");
        let last = stream.info().await.expect("info").state.last_sequence;
        let mut head = (0u64, wfl_store::ZERO_HASH);
        for s in 1..=last {
            let m = stream.get_raw_message(s).await.expect("message");
            let batch = ipb::PartitionBatch::decode(m.payload.as_ref()).expect("decodes");
            assert_eq!(batch.partition, p);
            if batch.records.is_empty()
                && batch.refusals.is_empty()
                && batch.meta.is_empty()
                && batch.notice.is_none()
            {
                markers += 1;
            }
            for r in &batch.records {
                assert_eq!(
                    r.sequence,
                    head.0 + 1,
                    "partition {p}: sequences are contiguous"
                );
                head = (r.sequence, wfl_store::chain_hash(&head.1, &r.bytes));
                let id = uuid::Uuid::from_slice(&r.event_id).expect("id").to_string();
                assert_eq!(
                    map.partition_of(&r.org_id),
                    p,
                    "org {} is on its own partition",
                    r.org_id
                );
                if found.insert(id, (p, r.sequence)).is_some() {
                    duplicated += 1;
                }
            }
            assert_eq!(
                batch.head_sequence, head.0,
                "partition {p} message {s}: head"
            );
            assert_eq!(
                batch.head_hash.as_slice(),
                head.1.as_slice(),
                "partition {p} message {s}: the chain ends on the hash the writer recorded"
            );
        }
    }
    (found, duplicated, markers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_fail_over_and_nothing_acknowledged_is_lost_or_duplicated() {
    let dir = wfl_testkit::temp_dir();
    // WFL_CLUSTER_KEEP_LOGS=DIR keeps the processes' logs there, for a look at a run.
    let logs = std::env::var_os("WFL_CLUSTER_KEEP_LOGS").map_or_else(
        || dir.path().join("logs"),
        |keep| {
            let _ = std::fs::remove_dir_all(&keep);
            std::path::PathBuf::from(keep)
        },
    );
    let mut nats = NatsCluster::start(3);
    let mut a = Proc::start(
        "wfl-ledger",
        &ledger_args(&dir.path().join("a"), &nats, "a"),
        &logs,
    );
    let mut b = Proc::start(
        "wfl-ledger",
        &ledger_args(&dir.path().join("b"), &nats, "b"),
        &logs,
    );
    let mut g1 = Proc::start("wfl-gateway", &gateway_args(&nats.urls()), &logs);
    let mut g2 = Proc::start("wfl-gateway", &gateway_args(&nats.urls()), &logs);
    let gateways = Arc::new(Mutex::new(vec![
        common::connect(&g1.grpc).await,
        common::connect(&g2.grpc).await,
    ]));
    let progress = Arc::new(Progress::default());
    let clients: Vec<_> = (0..3)
        .map(|c| tokio::spawn(load_client(gateways.clone(), progress.clone(), c)))
        .collect();

    let started = commits_go_on(
        &progress,
        2_000,
        Duration::from_secs(60),
        "start",
        &[&a, &b, &g1, &g2],
    )
    .await;
    // Instances started together share the partitions (at once, or after a rebalancing round).
    shared(&nats, &[&a, &b]).await;

    // 1. SIGKILL instance a, the owner of some partitions: b takes them over.
    a.kill();
    let ledger_resume = commits_go_on(
        &progress,
        2_000,
        RESUME_BOUND,
        "after killing instance a",
        &[&b, &g1, &g2],
    )
    .await;
    owned_by_b_alone(&nats, &[&b]).await;

    // 2. SIGKILL a NATS node: two of three keep quorum and ingest goes on.
    nats.kill(2);
    let nats_resume = commits_go_on(
        &progress,
        1_000,
        NATS_RESUME_BOUND,
        "after killing a NATS node",
        &[&b, &g1, &g2],
    )
    .await;
    nats.restart(2);

    // 3. Instance a comes back: the partitions are shared again.
    a = Proc::start(
        "wfl-ledger",
        &ledger_args(&dir.path().join("a"), &nats, "a"),
        &logs,
    );
    shared(&nats, &[&a, &b]).await;
    commits_go_on(
        &progress,
        1_000,
        RESUME_BOUND,
        "after instance a came back",
        &[&a, &b, &g1, &g2],
    )
    .await;

    // 4. Restart everything: ledgers and gateways stop, then start again on the same stores.
    progress.stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.expect("client");
    }
    for p in [&mut a, &mut b, &mut g1, &mut g2] {
        p.terminate();
    }
    a = Proc::start(
        "wfl-ledger",
        &ledger_args(&dir.path().join("a"), &nats, "a"),
        &logs,
    );
    b = Proc::start(
        "wfl-ledger",
        &ledger_args(&dir.path().join("b"), &nats, "b"),
        &logs,
    );
    g1 = Proc::start("wfl-gateway", &gateway_args(&nats.urls()), &logs);
    g2 = Proc::start("wfl-gateway", &gateway_args(&nats.urls()), &logs);
    *gateways.lock().expect("lock") = vec![
        common::connect(&g1.grpc).await,
        common::connect(&g2.grpc).await,
    ];
    // Whatever was left unresolved, and one batch more, after the restart.
    progress.stop.store(false, Ordering::Relaxed);
    let client = tokio::spawn(load_client(gateways.clone(), progress.clone(), 9));
    commits_go_on(
        &progress,
        500,
        RESUME_BOUND,
        "after restarting everything",
        &[&a, &b, &g1, &g2],
    )
    .await;
    let deadline = Instant::now() + RESUME_BOUND;
    while !progress.unresolved.lock().expect("lock").is_empty() {
        assert!(Instant::now() < deadline, "ids stayed unresolved");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    progress.stop.store(true, Ordering::Relaxed);
    client.await.expect("client");

    let (found, duplicated, markers) = read_logs(&nats.urls()).await;
    let acked = progress.acked.lock().expect("lock").clone();
    let mut lost = 0;
    for (id, (org_id, sequence)) in &acked {
        let partition = PartitionMap::hash_partition(org_id, PARTITIONS);
        match found.get(id) {
            Some(at) => assert_eq!(
                *at,
                (partition, *sequence),
                "event {id} was acknowledged at partition {partition} sequence {sequence}"
            ),
            None => lost += 1,
        }
    }
    println!(
        "cluster: orgs {ORGS}, partitions {PARTITIONS}, kills ledger=1 nats=1, restarts all=1, \
         acknowledged {}, found {}, lost {lost}, duplicated {duplicated}, chains valid, \
         takeover markers {markers}; first 2,000 commits in {started:?}, 2,000 more after the \
         ledger kill in {ledger_resume:?}, 1,000 after the NATS kill in {nats_resume:?}",
        acked.len(),
        found.len()
    );
    assert_eq!(
        lost, 0,
        "acknowledged events missing from the partition logs"
    );
    assert_eq!(duplicated, 0, "events committed twice");
    assert!(
        markers >= u64::from(PARTITIONS) * 2,
        "takeovers wrote their markers"
    );
    // The committed stream: every partition's owner published its commits on WFL_LEDGER, each
    // once, naming its partition and sequence, in each partition's order, across the kills.
    committed_stream_holds(&nats.urls(), &found).await;
    // Every instance serves the Ledger API of every partition (its own and its standby copies),
    // each call routed by metadata wfl-partition or by org.
    reads_route_by_partition(&nats, &[&a, &b], &found).await;
    export_one_partition(&dir.path().join("export"), &a, &found);

    // One projector per partition: the one of org-07's partition answers its views.
    views_of_one_partition(&dir.path().join("projector"), &logs, &nats, &a, &found).await;

    // The auditor's command agrees, from the logs alone; a message deleted from a log fails it.
    let audit = wfl_verify_cluster(&nats.urls());
    let want = format!("verified: {PARTITIONS} partitions, {} records", found.len());
    assert!(
        audit.status.success() && String::from_utf8_lossy(&audit.stdout).contains(&want),
        "wfl verify --cluster: {audit:?}"
    );
    let client = async_nats::connect(nats.url_list()).await.expect("connect");
    async_nats::jetstream::new(client)
        .get_stream("WFL_PARTITION_0")
        .await
        .expect("stream")
        .delete_message(2)
        .await
        .expect("delete a message");
    let audit = wfl_verify_cluster(&nats.urls());
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&audit.stdout),
        String::from_utf8_lossy(&audit.stderr)
    );
    assert!(
        !audit.status.success() && said.contains("partition 0") && said.contains("sequence 2"),
        "a hole in a partition log fails the audit, naming it: {said}"
    );
    drop((a, b, g1, g2));
}

async fn reads_route_by_partition(
    nats: &NatsCluster,
    instances: &[&Proc],
    found: &HashMap<String, (u32, u64)>,
) {
    let _ = nats;
    let mut heads = BTreeMap::<u32, u64>::new();
    for (p, s) in found.values() {
        let h = heads.entry(*p).or_default();
        *h = (*h).max(*s);
    }
    for proc in instances {
        let ch = common::connect(&proc.grpc).await;
        for p in 0..PARTITIONS {
            let want = heads.get(&p).copied().unwrap_or(0);
            // A standby copy follows its log within a poll (250 ms).
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let mut request = tonic::Request::new(pb::HeadRequest {});
                request
                    .metadata_mut()
                    .insert("wfl-partition", p.to_string().parse().expect("value"));
                let r = common::ledger(&ch).head(request).await.expect("Head");
                assert_eq!(
                    r.metadata()
                        .get("wfl-partition")
                        .and_then(|v| v.to_str().ok()),
                    Some(p.to_string().as_str()),
                    "the answer names its partition"
                );
                if r.get_ref().sequence == want {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "partition {p} head {} on {}, want {want}",
                    r.get_ref().sequence,
                    proc.grpc
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        // By org: the org's events only, from its partition, in that partition's sequences.
        let o = org(7);
        let p = PartitionMap::hash_partition(&o, PARTITIONS);
        let read = common::ledger(&ch)
            .read(pb::ReadRequest {
                org_ids: vec![o.clone()],
                ..pb::ReadRequest::default()
            })
            .await
            .expect("Read by org");
        assert_eq!(
            read.metadata()
                .get("wfl-partition")
                .and_then(|v| v.to_str().ok()),
            Some(p.to_string().as_str())
        );
        let mut stream = read.into_inner();
        let mut n = 0;
        while let Some(e) = stream.message().await.expect("event") {
            let id = e.event.as_ref().expect("event").event_id.clone();
            assert_eq!(found.get(&id), Some(&(p, e.sequence)), "event {id}");
            n += 1;
        }
        let want = found.iter().filter(|(_, (q, _))| *q == p).count();
        assert!(
            n > 0 && n <= want,
            "{n} events of {o} read of {want} in its partition"
        );
        // No partition named, or orgs of two: the caller is told how to ask.
        let status = common::ledger(&ch)
            .read(pb::ReadRequest::default())
            .await
            .expect_err("no partition named");
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        assert!(status.message().contains("wfl-partition"), "{status:?}");
    }
}

async fn views_of_one_partition(
    data: &std::path::Path,
    logs: &std::path::Path,
    nats: &NatsCluster,
    ledger: &Proc,
    found: &HashMap<String, (u32, u64)>,
) {
    let o = org(7);
    let p = PartitionMap::hash_partition(&o, PARTITIONS);
    let rulepacks = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../rulepacks");
    let projector = Proc::start(
        "wfl-projector",
        &[
            "--data-dir",
            &data.display().to_string(),
            "--grpc-addr",
            "127.0.0.1:0",
            "--ledger",
            &ledger.grpc,
            "--partition",
            &p.to_string(),
            "--nats-url",
            &nats.urls(),
            "--rulepacks",
            &rulepacks.display().to_string(),
        ]
        .map(str::to_owned),
        logs,
    );
    let head = found
        .values()
        .filter(|(q, _)| *q == p)
        .map(|(_, s)| *s)
        .max()
        .unwrap_or(0);
    let hires = found.values().filter(|(q, _)| *q == p).count();
    let ch = common::connect(&projector.grpc).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let view = loop {
        let answer = pb::views_client::ViewsClient::new(ch.clone())
            .headcount(pb::ViewRequest {
                min_sequence: head,
                ..pb::ViewRequest::default()
            })
            .await;
        match answer {
            Ok(r) => break r.into_inner(),
            Err(s) => {
                assert!(
                    Instant::now() < deadline && s.code() == tonic::Code::Unavailable,
                    "partition {p}'s projector: {s:?}\n{}",
                    projector.log_text()
                );
            }
        }
    };
    assert_eq!(
        view.as_of_sequence, head,
        "the views hold the partition's head"
    );
    let Some(pb::view_response::View::Headcount(h)) = view.view else {
        panic!("a headcount view: {view:?}");
    };
    let counted: u64 = h
        .rows
        .iter()
        .map(|r| r.total.as_ref().map_or(0, |t| t.hires))
        .sum();
    assert_eq!(
        counted, hires as u64,
        "every hire of partition {p} counted once, and only those"
    );
}

/// An auditor exports one partition through an instance (`wfl export --partition N`) and
/// verifies the export offline: its chain and Merkle root over exactly that partition's events.
fn export_one_partition(
    to: &std::path::Path,
    instance: &Proc,
    found: &HashMap<String, (u32, u64)>,
) {
    let p = PartitionMap::hash_partition(&org(7), PARTITIONS);
    let events = found.values().filter(|(q, _)| *q == p).count();
    let export = std::process::Command::new(common::bin("wfl"))
        .args([
            "export",
            "--addr",
            &instance.grpc,
            "--partition",
            &p.to_string(),
            "--to",
        ])
        .arg(to)
        .output()
        .expect("wfl export runs");
    assert!(
        export.status.success(),
        "wfl export --partition {p}: {export:?}"
    );
    let verify = std::process::Command::new(common::bin("wfl"))
        .arg("verify")
        .arg(to)
        .output()
        .expect("wfl verify runs");
    let said = String::from_utf8_lossy(&verify.stdout);
    assert!(
        verify.status.success() && said.contains(&format!("OK: {events} events verified")),
        "the export of partition {p} verifies with its {events} events: {verify:?}"
    );
}

fn wfl_verify_cluster(nats_urls: &str) -> std::process::Output {
    std::process::Command::new(common::bin("wfl"))
        .args(["verify", "--cluster", nats_urls])
        .output()
        .expect("wfl verify runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_instance_cut_off_from_the_cluster_is_taken_over_and_rejoins() {
    let dir = wfl_testkit::temp_dir();
    let logs = dir.path().join("logs");
    let netns = Netns::create();
    let nats = NatsCluster::start_listening_on(3, std::net::Ipv4Addr::UNSPECIFIED);
    // Instance a lives in the namespace and reaches NATS through the veth pair only.
    let mut a_args = ledger_args(&dir.path().join("a"), &nats, "a");
    let url = a_args
        .iter()
        .position(|x| x == "--nats-url")
        .expect("--nats-url")
        + 1;
    a_args[url] = nats.urls_at(netns.host_ip);
    let a = Proc::start_in(Some(&netns.name), "wfl-ledger", &a_args, &logs);
    let b = Proc::start(
        "wfl-ledger",
        &ledger_args(&dir.path().join("b"), &nats, "b"),
        &logs,
    );
    let g = Proc::start("wfl-gateway", &gateway_args(&nats.urls()), &logs);
    let gateways = Arc::new(Mutex::new(vec![common::connect(&g.grpc).await]));
    let progress = Arc::new(Progress::default());
    let clients: Vec<_> = (0..3)
        .map(|c| tokio::spawn(load_client(gateways.clone(), progress.clone(), c)))
        .collect();
    commits_go_on(
        &progress,
        1_000,
        Duration::from_secs(60),
        "start",
        &[&a, &b, &g],
    )
    .await;
    shared(&nats, &[&a, &b]).await;

    // Cut a off: b takes its partitions over, a stops writing them (its leases are not renewed
    // for a whole TTL), ingest goes on.
    netns.cut();
    let resumed = commits_go_on(
        &progress,
        2_000,
        RESUME_BOUND,
        "with instance a cut off",
        &[&a, &b, &g],
    )
    .await;
    owned_by_b_alone(&nats, &[&a, &b]).await;
    let deadline = Instant::now() + RESUME_BOUND;
    while !a.log_text().contains("lease not renewed for a whole TTL") {
        assert!(
            Instant::now() < deadline,
            "instance a did not stop its partitions while cut off:\n{}",
            a.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Healed: a rejoins and takes its share again, after catching up from the logs.
    netns.heal();
    let rejoined = shared(&nats, &[&a, &b]).await;
    commits_go_on(
        &progress,
        1_000,
        RESUME_BOUND,
        "after healing",
        &[&a, &b, &g],
    )
    .await;
    progress.stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.expect("client");
    }
    // Whatever stayed unresolved, resolved now.
    progress.stop.store(false, Ordering::Relaxed);
    let client = tokio::spawn(load_client(gateways.clone(), progress.clone(), 9));
    let deadline = Instant::now() + RESUME_BOUND;
    while !progress.unresolved.lock().expect("lock").is_empty() {
        assert!(Instant::now() < deadline, "ids stayed unresolved");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    progress.stop.store(true, Ordering::Relaxed);
    client.await.expect("client");

    let (found, duplicated, _) = read_logs(&nats.urls()).await;
    let acked = progress.acked.lock().expect("lock").clone();
    let lost = acked
        .iter()
        .filter(|(id, (org_id, sequence))| {
            found.get(*id) != Some(&(PartitionMap::hash_partition(org_id, PARTITIONS), *sequence))
        })
        .count();
    println!(
        "cluster partition: instance a cut off and healed, acknowledged {}, found {}, lost {lost}, \
         duplicated {duplicated}, chains valid; 2,000 commits after the cut in {resumed:?}; \
         a shared the partitions again {rejoined:?} after the link healed",
        acked.len(),
        found.len()
    );
    assert_eq!(lost, 0, "acknowledged events missing or elsewhere");
    assert_eq!(duplicated, 0, "events committed twice");
    drop((a, b, g));
}

/// Commits `events` through `gateway` (COMMITTED, retrying what is unavailable); returns each
/// event id's sequence.
/// Panics after two minutes showing the last lines of `logs`.
async fn commit_all(
    gateway: &Channel,
    mut events: Vec<wfl_domain::Event>,
    logs: &[&Proc],
) -> HashMap<String, u64> {
    let mut acked = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !events.is_empty() {
        if Instant::now() > deadline {
            panic!(
                "{} events never committed; logs:\n{}",
                events.len(),
                tails(logs, 20)
            );
        }
        let r = common::ingest(gateway)
            .record_batch(pb::RecordBatchRequest {
                events: events.iter().map(common::wire).collect(),
                ack: pb::AckLevel::Committed as i32,
                include_proof: false,
            })
            .await;
        let r = match r {
            Ok(r) => r.into_inner(),
            Err(s) => {
                common::assert_retryable(&s);
                continue;
            }
        };
        let (done, retry) = common::committed_and_retry(&events, &r);
        acked.extend(done.iter().map(|(_, o)| (o.event_id.clone(), o.sequence)));
        if !retry.is_empty() && done.is_empty() {
            // Nothing went through (an org being placed is refused for a moment): a short
            // pause instead of a hot loop on two cores.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        events = retry;
    }
    acked
}

/// A writer's batch larger than the server's `max_payload` goes to the partition log as several
/// messages (it used to be refused by the server, and the partition's writer stopped, again and
/// again, on the same inbox messages); an event too large for any message is refused
/// `INVALID_ARGUMENT` and the partition goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_larger_than_a_nats_message_are_split_and_an_oversize_event_is_refused() {
    const MAX_PAYLOAD: usize = 64 << 10;
    let dir = wfl_testkit::temp_dir();
    let logs = dir.path().join("logs");
    let config = dir.path().join("nats.conf");
    std::fs::write(
        &config,
        format!("max_payload: {MAX_PAYLOAD}\njetstream {{}}\n"),
    )
    .expect("write nats.conf");
    let nats = wfl_testkit::NatsServer::start_with_config(&config, &[]);
    let ledger = Proc::start(
        "wfl-ledger",
        &ledger_args_with(&dir.path().join("a"), &nats.url(), "a", PARTITIONS, 1),
        &logs,
    );
    let gateway = Proc::start("wfl-gateway", &gateway_args(&nats.url()), &logs);
    let channel = common::connect(&gateway.grpc).await;

    // 6,000 hires of ~1 KB (the longest references and plan ids the gateway takes) in batches of
    // 2,000: with 64 KiB messages the writer decides up to 128 at a time (~130 KB of records,
    // two or three messages).
    let mut acked = HashMap::new();
    for round in 0..3 {
        let events: Vec<_> = (0..2_000)
            .map(|i| {
                let mut e = scenario::hire(&org(i % ORGS), &format!("r{round}-w{i}"));
                e.source.reference = "r".repeat(250);
                e.correlation_id = Some("c".repeat(250));
                e.causation_id = Some("k".repeat(250));
                e
            })
            .collect();
        acked.extend(commit_all(&channel, events, &[&ledger, &gateway]).await);
    }

    // An event of 55,000 bytes fits in a NATS message but its record would not fit in a
    // partition-log message: published to the inbox directly (the gateway's 256-character text
    // limit keeps real events far smaller), it is refused and the partition goes on.
    let oversize = uuid::Uuid::new_v4();
    let mut wire = common::wire(&scenario::hire(&org(0), "oversize"));
    wire.event_id = oversize.to_string();
    wire.correlation_id = "x".repeat(55_000);
    let partition = PartitionMap::hash_partition(&org(0), PARTITIONS);
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let js = async_nats::jetstream::new(client);
    js.publish(
        wfl_bus::cluster::partition_inbox_subject(partition, &org(0)),
        wire.encode_to_vec().into(),
    )
    .await
    .expect("publish")
    .await
    .expect("stored in the inbox");
    let after: Vec<_> = (0..200)
        .map(|i| scenario::hire(&org(0), &format!("after-{i}")))
        .collect();
    acked.extend(commit_all(&channel, after, &[&ledger, &gateway]).await);

    let (found, duplicated, _) = read_logs(&nats.url()).await;
    assert_eq!(duplicated, 0);
    for (id, sequence) in &acked {
        assert_eq!(found.get(id).map(|f| f.1), Some(*sequence), "event {id}");
    }
    // Split batches: a message with records and no writer metadata is a part before the last
    // (every batch's last part carries the writer state's `through`).
    let mut parts = 0;
    let mut refused = None;
    let stream_client = async_nats::connect(nats.url()).await.expect("connect");
    let js = async_nats::jetstream::new(stream_client);
    for p in 0..PARTITIONS {
        let mut stream = js
            .get_stream(format!("WFL_PARTITION_{p}"))
            .await
            .expect("partition stream");
        let last = stream.info().await.expect("info").state.last_sequence;
        for s in 1..=last {
            let m = stream.get_raw_message(s).await.expect("message");
            assert!(
                m.payload.len() <= MAX_PAYLOAD,
                "message {s}: {} bytes",
                m.payload.len()
            );
            let batch = ipb::PartitionBatch::decode(m.payload.as_ref()).expect("decodes");
            if !batch.records.is_empty() && batch.meta.is_empty() {
                parts += 1;
            }
            refused = refused.or_else(|| {
                batch
                    .refusals
                    .iter()
                    .find(|r| r.event_id == oversize.as_bytes())
                    .map(|r| (p, r.code, r.message.clone()))
            });
        }
    }
    assert!(parts > 0, "no batch was split over several messages");
    let (p, code, message) = refused.expect("the oversize event is refused in the log");
    assert_eq!((p, code), (partition, tonic::Code::InvalidArgument as i32));
    assert!(
        message.contains("55") && message.contains("cluster mode"),
        "{message}"
    );

    let verify = wfl_verify_cluster(&nats.url());
    assert!(
        verify.status.success(),
        "wfl verify --cluster: {}",
        String::from_utf8_lossy(&verify.stderr)
    );
    // The instance's /metrics shows each partition's ledger, labelled.
    let metrics = common::http_get(ledger.http.as_deref().expect("http"), "/metrics");
    for p in 0..PARTITIONS {
        let head = found
            .values()
            .filter(|(q, _)| *q == p)
            .map(|(_, s)| *s)
            .max()
            .unwrap_or(0);
        let shown = wfl_metrics::value(
            &metrics,
            &format!("wfl_ledger_head_sequence{{partition=\"{p}\"}}"),
        );
        assert_eq!(shown, Some(head as f64), "partition {p}: {metrics}");
    }
    assert!(
        metrics.contains("wfl_ledger_commit_seconds_count{partition=\""),
        "{metrics}"
    );
    println!(
        "cluster split: acknowledged {n}, found {n}, lost 0, duplicated 0, messages that are a \
         first part of a split batch {parts}, oversize event refused",
        n = acked.len()
    );
    drop((ledger, gateway));
}

fn wfl_cluster(nats_urls: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(common::bin("wfl"))
        .arg("cluster")
        .args(args)
        .args(["--nats-url", nats_urls])
        .output()
        .expect("wfl cluster runs")
}

fn hires(org: &str, tag: &str, n: usize) -> Vec<wfl_domain::Event> {
    (0..n)
        .map(|i| scenario::hire(org, &format!("{tag}-{i}")))
        .collect()
}

/// A tenant that arrives after the cluster was created gets a partition of its own: one kept
/// out of the hash at creation (`--reserve`), given to it by `wfl cluster place` while load
/// goes on through two gateways; a message routed by the old map is forwarded; an org with
/// history is refused and stays where it is; an org placed while its first events arrive ends
/// up with all of them on one partition, whichever way the race goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_tenant_is_placed_on_a_reserved_partition_of_its_own() {
    const COUNT: u32 = 3;
    let dir = wfl_testkit::temp_dir();
    let logs = dir.path().join("logs");
    let nats = wfl_testkit::NatsServer::start();
    let mut args = ledger_args_with(&dir.path().join("a"), &nats.url(), "a", COUNT, 1);
    args.extend(["--reserve".to_owned(), "1".to_owned()]);
    let ledger = Proc::start("wfl-ledger", &args, &logs);
    let g1 = Proc::start("wfl-gateway", &gateway_args(&nats.url()), &logs);
    let g2 = Proc::start("wfl-gateway", &gateway_args(&nats.url()), &logs);
    let (c1, c2) = (
        common::connect(&g1.grpc).await,
        common::connect(&g2.grpc).await,
    );
    let procs = [&ledger, &g1, &g2];
    let hashed: Vec<String> = (0..6).map(org).collect();
    let mut acked = HashMap::new();
    for o in &hashed {
        acked.extend(commit_all(&c1, hires(o, "before", 100), &procs).await);
    }
    let shown = wfl_cluster(&nats.url(), &["map"]);
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.status.success(), "{shown:?}");
    assert!(
        text.contains("orgs hashed over 0..2; 2..3 reserved"),
        "{text}"
    );

    // Placed while load goes on through the other gateway.
    let load: Vec<_> = hashed
        .iter()
        .flat_map(|o| hires(o, "during", 300))
        .collect();
    let urls = nats.url();
    let (placed, during) = tokio::join!(
        tokio::task::spawn_blocking(move || wfl_cluster(&urls, &["place", "bigco", "2"])),
        commit_all(&c2, load, &procs),
    );
    let placed = placed.expect("placer");
    let out = String::from_utf8_lossy(&placed.stdout);
    assert!(
        placed.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&placed.stderr),
        tails(&procs, 30)
    );
    let from = PartitionMap::hash_partition("bigco", 2);
    assert!(
        out.contains(&format!("org bigco placed on partition 2 (was {from};")),
        "{out}"
    );
    acked.extend(during);
    let mut big = commit_all(&c1, hires("bigco", "one", 500), &procs).await;
    big.extend(commit_all(&c2, hires("bigco", "two", 500), &procs).await);

    // A message routed by the map before the placement (a gateway that has not seen it yet)
    // reaches the old partition, whose writer forwards it.
    let stale = scenario::hire("bigco", "stale");
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let js = async_nats::jetstream::new(client);
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", stale.event_id.to_string());
    js.publish_with_headers(
        wfl_bus::cluster::partition_inbox_subject(from, "bigco"),
        headers,
        common::wire(&stale).encode_to_vec().into(),
    )
    .await
    .expect("publish")
    .await
    .expect("stored in the inbox");

    // An org with history stays where it is, and its events go on committing there.
    let refused = wfl_cluster(&nats.url(), &["place", &org(0), "2"]);
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        why.contains(&format!("org {} has events on partition", org(0)))
            && why.contains("stays on partition"),
        "{why}"
    );
    acked.extend(commit_all(&c1, hires(&org(0), "after", 100), &procs).await);

    // Placed while its first events arrive: either it moves before any is committed, or one
    // is committed first and the placement is refused. Never both partitions.
    let urls = nats.url();
    let (raced, racer) = tokio::join!(
        tokio::task::spawn_blocking(move || wfl_cluster(&urls, &["place", "racer", "2"])),
        commit_all(&c2, hires("racer", "race", 300), &procs),
    );
    let raced = raced.expect("placer");
    let racer_moved = raced.status.success();
    if !racer_moved {
        let why = String::from_utf8_lossy(&raced.stderr);
        assert!(why.contains("org racer has events on partition"), "{why}");
    }
    assert!(wfl_cluster(&nats.url(), &["place", "racer", "--abort"])
        .status
        .success());

    let shown = wfl_cluster(&nats.url(), &["map"]);
    let text = String::from_utf8_lossy(&shown.stdout).to_string();
    assert!(text.contains("bigco -> partition 2"), "{text}");
    assert!(!text.contains("being placed"), "{text}");
    assert_eq!(text.contains("racer -> partition 2"), racer_moved, "{text}");

    let mut table = BTreeMap::from([("bigco".to_owned(), 2)]);
    if racer_moved {
        table.insert("racer".to_owned(), 2);
    }
    let map = PartitionMap::new(COUNT, table)
        .and_then(|m| m.with_reserved(1))
        .expect("map");
    // The forwarded message is committed on partition 2, once.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (found, duplicated) = loop {
        let (found, duplicated, _) = read_logs_of(&nats.url(), &map).await;
        if found.contains_key(&stale.event_id.to_string()) || Instant::now() > deadline {
            break (found, duplicated);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        found.get(&stale.event_id.to_string()).map(|f| f.0),
        Some(2),
        "the stale message is forwarded to partition 2; logs:\n{}",
        tails(&procs, 30)
    );
    assert_eq!(duplicated, 0);
    for (id, sequence) in acked.iter().chain(&big).chain(&racer) {
        assert_eq!(found.get(id).map(|f| f.1), Some(*sequence), "event {id}");
    }
    assert!(big.keys().all(|id| found[id].0 == 2));
    let racer_on = map.partition_of("racer");
    assert!(racer.keys().all(|id| found[id].0 == racer_on));
    let verify = wfl_verify_cluster(&nats.url());
    let report = String::from_utf8_lossy(&verify.stdout);
    assert!(verify.status.success(), "{report}");
    assert!(report.contains("3 partitions (1 reserved)"), "{report}");
    println!(
        "placement: bigco placed on partition 2 from {from} under load ({} events of 6 other \
         orgs acknowledged meanwhile), 1,000 of its events there, a stale message forwarded, \
         an org with history refused, racer {}; acknowledged {n}, found {n}, duplicated 0",
        acked.len(),
        if racer_moved {
            "moved"
        } else {
            "refused (history)"
        },
        n = acked.len() + big.len() + racer.len()
    );

    // With no owner of the partition it leaves, a placement waits for a notice that never
    // comes, gives up after its patience and reopens the org: nothing stays closed.
    drop(ledger);
    let ghost_from = PartitionMap::hash_partition("ghost", 2);
    let out = wfl_cluster(
        &nats.url(),
        &["place", "ghost", "2", "--patience-secs", "2"],
    );
    let why = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        why.contains(&format!("org ghost stays on partition {ghost_from}"))
            && why.contains("did not confirm"),
        "{why}"
    );
    let shown = wfl_cluster(&nats.url(), &["map"]);
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(!text.contains("ghost"), "{text}");
    drop((g1, g2));
}

fn projector_args(
    data: &std::path::Path,
    ledger: &str,
    partition: u32,
    nats_urls: &str,
) -> Vec<String> {
    let rulepacks = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../rulepacks");
    [
        "--data-dir",
        &data.display().to_string(),
        "--grpc-addr",
        "127.0.0.1:0",
        "--ledger",
        ledger,
        "--partition",
        &partition.to_string(),
        "--nats-url",
        nats_urls,
        "--rulepacks",
        &rulepacks.display().to_string(),
    ]
    .map(str::to_owned)
    .to_vec()
}

/// An employer's economic dismissal of `worker` (counts towards collective-dismissal thresholds).
fn dismissal(org: &str, worker: &str) -> wfl_domain::Event {
    let mut s = scenario::separation(worker);
    s.initiator = wfl_domain::Initiator::Employer;
    s.position_closed = true;
    scenario::event(
        org,
        wfl_domain::Payload::EconomicDismissal(Box::new(wfl_domain::EconomicDismissal {
            separation: s,
            selection_criteria: None,
            plan_id: None,
        })),
    )
}

fn partition_of<T>(r: &tonic::Response<T>) -> Option<String> {
    r.metadata()
        .get("wfl-partition")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// A gateway with `--projector N=ADDR` serves `Views` over the partitions' projectors: a view of
/// one org is its partition's projector's answer; the threshold watch of every org and Explain by
/// ids merge every partition's; a view of every org is refused (ask per org or per partition),
/// and a projector that is down is UNAVAILABLE naming its partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_serves_views_over_every_partitions_projector() {
    const P: u32 = 2;
    let dir = wfl_testkit::temp_dir();
    let logs = dir.path().join("logs");
    let nats = wfl_testkit::NatsServer::start();
    let ledger_args = ledger_args_with(&dir.path().join("a"), &nats.url(), "a", P, 1);
    let ledger = Proc::start("wfl-ledger", &ledger_args, &logs);
    let mut projectors: Vec<Proc> = (0..P)
        .map(|p| {
            Proc::start(
                "wfl-projector",
                &projector_args(
                    &dir.path().join(format!("v{p}")),
                    &ledger.grpc,
                    p,
                    &nats.url(),
                ),
                &logs,
            )
        })
        .collect();
    let mut gateway_args = gateway_args(&nats.url());
    for (p, projector) in projectors.iter().enumerate() {
        gateway_args.extend(["--projector".to_owned(), format!("{p}={}", projector.grpc)]);
    }
    let gateway = Proc::start("wfl-gateway", &gateway_args, &logs);
    let channel = common::connect(&gateway.grpc).await;

    // Six orgs over both partitions: 30 hires each, then 12 economic dismissals.
    let orgs: Vec<String> = (0..6).map(org).collect();
    let on = |p: u32| {
        orgs.iter()
            .filter(move |o| PartitionMap::hash_partition(o, P) == p)
    };
    assert!(
        on(0).count() > 0 && on(1).count() > 0,
        "orgs on both partitions"
    );
    let hires: Vec<_> = orgs
        .iter()
        .flat_map(|o| (0..30).map(move |i| scenario::hire(o, &format!("{o}-w{i}"))))
        .collect();
    let dismissals: Vec<_> = orgs
        .iter()
        .flat_map(|o| (0..12).map(move |i| dismissal(o, &format!("{o}-w{i}"))))
        .collect();
    let mut acked = commit_all(&channel, hires.clone(), &[&ledger, &gateway]).await;
    acked.extend(commit_all(&channel, dismissals.clone(), &[&ledger, &gateway]).await);
    // Each partition's head: the views must hold it before they are compared.
    let mut heads = [0u64; P as usize];
    for e in hires.iter().chain(&dismissals) {
        let p = PartitionMap::hash_partition(e.org_id.0.as_str(), P) as usize;
        heads[p] = heads[p].max(acked[&e.event_id.to_string()]);
    }
    let views = pb::views_client::ViewsClient::new(channel.clone());
    let mut direct_clients = Vec::new();
    for p in &projectors {
        direct_clients.push(pb::views_client::ViewsClient::new(
            common::connect(&p.grpc).await,
        ));
    }

    // One org: its partition's projector's answer, named in the metadata.
    for o in &orgs {
        let p = PartitionMap::hash_partition(o, P);
        let ask = pb::ViewRequest {
            org_id: o.clone(),
            min_sequence: heads[p as usize],
            ..pb::ViewRequest::default()
        };
        let through = views
            .clone()
            .headcount(ask.clone())
            .await
            .expect("via the gateway");
        assert_eq!(
            partition_of(&through).as_deref(),
            Some(p.to_string().as_str())
        );
        let straight = direct_clients[p as usize]
            .clone()
            .headcount(ask)
            .await
            .expect("direct")
            .into_inner();
        assert_eq!(through.into_inner(), straight, "org {o}");
    }

    // Every org of one partition, named by metadata: that projector's answer.
    let mut ask = tonic::Request::new(pb::ViewRequest::default());
    ask.metadata_mut()
        .insert("wfl-partition", "1".parse().expect("header"));
    let through = views
        .clone()
        .separations(ask)
        .await
        .expect("partition 1")
        .into_inner();
    let straight = direct_clients[1]
        .clone()
        .separations(pb::ViewRequest::default())
        .await
        .expect("direct")
        .into_inner();
    assert_eq!(through, straight);

    // Every org of every partition: refused, saying how to ask.
    let refused = views
        .clone()
        .headcount(pb::ViewRequest::default())
        .await
        .expect_err("a view of every org across partitions");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
    assert!(refused.message().contains("org_id") && refused.message().contains("wfl-partition"));
    // An org and a partition that disagree.
    let o = on(0).next().expect("an org on partition 0").clone();
    let mut ask = tonic::Request::new(pb::ViewRequest {
        org_id: o,
        ..pb::ViewRequest::default()
    });
    ask.metadata_mut()
        .insert("wfl-partition", "1".parse().expect("header"));
    let refused = views.clone().headcount(ask).await.expect_err("mismatch");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");

    // The threshold watch of every org: every partition's statuses, and each partition's
    // sequence in the metadata.
    let watch = views
        .clone()
        .threshold_watch(pb::ThresholdRequest::default())
        .await
        .expect("threshold watch of every org");
    let sequences = watch
        .metadata()
        .get("wfl-partition-sequences")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .expect("each partition's sequence");
    assert_eq!(
        sequences,
        format!("0={},1={}", heads[0], heads[1]),
        "every commit is in the views"
    );
    let watch = watch.into_inner();
    assert_eq!(watch.as_of_sequence, 0);
    let mut merged: Vec<String> = watch.statuses.iter().map(|s| format!("{s:?}")).collect();
    let mut separately = Vec::new();
    for d in &direct_clients {
        let r = d
            .clone()
            .threshold_watch(pb::ThresholdRequest::default())
            .await
            .expect("direct watch")
            .into_inner();
        assert_eq!(r.as_of_date, watch.as_of_date);
        separately.extend(r.statuses.iter().map(|s| format!("{s:?}")));
    }
    merged.sort();
    separately.sort();
    assert_eq!(merged, separately);
    for o in &orgs {
        assert!(
            watch.statuses.iter().any(|s| s.org_id == *o),
            "org {o} has statuses in the merged watch"
        );
    }

    // Explain by ids of both partitions: every event, in the order asked.
    let ids: Vec<String> = orgs
        .iter()
        .map(|o| {
            hires
                .iter()
                .find(|e| e.org_id.0.as_str() == o.as_str())
                .expect("a hire")
                .event_id
                .to_string()
        })
        .collect();
    let explained = views
        .clone()
        .explain(pb::ExplainRequest {
            event_ids: ids.clone(),
            ..pb::ExplainRequest::default()
        })
        .await
        .expect("explain across partitions")
        .into_inner();
    assert_eq!(
        explained
            .events
            .iter()
            .map(|e| e.event_id.clone())
            .collect::<Vec<_>>(),
        ids
    );
    // A merged answer has no sequence: waiting for one partition's sequence on every partition
    // is refused, naming the field, for both merged calls.
    let explain_waiting = views
        .clone()
        .explain(pb::ExplainRequest {
            event_ids: ids.clone(),
            min_sequence: 1,
            ..pb::ExplainRequest::default()
        })
        .await
        .expect_err("min_sequence across partitions");
    let watch_waiting = views
        .clone()
        .threshold_watch(pb::ThresholdRequest {
            min_sequence: 1,
            ..pb::ThresholdRequest::default()
        })
        .await
        .expect_err("min_sequence across partitions");
    for refused in [explain_waiting, watch_waiting] {
        assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
        assert!(
            refused.message().starts_with("min_sequence:"),
            "{refused:?}"
        );
    }

    // A projector down: its partition's orgs are UNAVAILABLE naming it; the others answer.
    projectors[1].kill();
    let o1 = on(1).next().expect("an org on partition 1").clone();
    let down = views
        .clone()
        .headcount(pb::ViewRequest {
            org_id: o1,
            ..pb::ViewRequest::default()
        })
        .await
        .expect_err("partition 1's projector is down");
    assert_eq!(down.code(), tonic::Code::Unavailable, "{down:?}");
    assert!(down.message().contains("partition 1"), "{down:?}");
    let o0 = on(0).next().expect("an org on partition 0").clone();
    views
        .clone()
        .headcount(pb::ViewRequest {
            org_id: o0,
            ..pb::ViewRequest::default()
        })
        .await
        .expect("partition 0 still answers");
    drop((ledger, gateway, projectors));
}

/// Views through a cluster gateway are guarded as on the projector itself: the caller's token
/// is checked by the gateway and passed on, so an analyst of one org reads that org (asked by
/// name or implied by the token) and nothing else, and a call without a token is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_through_a_cluster_gateway_are_guarded_by_the_callers_token() {
    const P: u32 = 2;
    let dir = wfl_testkit::temp_dir();
    let logs = dir.path().join("logs");
    // Two orgs on different partitions.
    let own = org(0);
    let foreign = (1..)
        .map(org)
        .find(|o| PartitionMap::hash_partition(o, P) != PartitionMap::hash_partition(&own, P))
        .expect("an org on the other partition");
    let tokens = dir.path().join("tokens.toml");
    let admin = common::token_add(&tokens, "admin", "admin", &[]);
    let auditor = common::token_add(&tokens, "projectors", "auditor", &[]);
    let analyst = common::token_add(&tokens, "own-analyst", "analyst", &[&own]);
    // An mTLS identity of the same org: the DNS name in tests/data/tls/acme-analyst.pem.
    let mut text = std::fs::read_to_string(&tokens).expect("tokens file");
    text.push_str(&format!(
        "\n[[principal]]\nname = \"own-cert\"\nrole = \"analyst\"\norgs = [\"{own}\"]\ncert_name = \"acme-analyst.clients.wfl\"\n"
    ));
    std::fs::write(&tokens, text).expect("write tokens file");
    let secured = |mut args: Vec<String>| {
        args.extend(["--tokens-file".to_owned(), tokens.display().to_string()]);
        args
    };
    let plain = |mut args: Vec<String>| {
        args.push("--insecure".to_owned());
        secured(args)
    };
    let tls = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/tls");
    let tls_file = |name: &str| tls.join(name).display().to_string();

    let nats = wfl_testkit::NatsServer::start();
    let ledger_args = ledger_args_with(&dir.path().join("a"), &nats.url(), "a", P, 1);
    let ledger = Proc::start_authenticated("wfl-ledger", &plain(ledger_args), &logs);
    let projectors: Vec<Proc> = (0..P)
        .map(|p| {
            let mut args = projector_args(
                &dir.path().join(format!("v{p}")),
                &ledger.grpc,
                p,
                &nats.url(),
            );
            args.extend(["--ledger-token".to_owned(), auditor.clone()]);
            Proc::start_authenticated("wfl-projector", &plain(args), &logs)
        })
        .collect();
    let mut args = gateway_args(&nats.url());
    for (p, projector) in projectors.iter().enumerate() {
        args.extend(["--projector".to_owned(), format!("{p}={}", projector.grpc)]);
    }
    // The gateway serves TLS with client certificates (the projectors behind it plain).
    args.extend([
        "--tls-cert".to_owned(),
        tls_file("server.pem"),
        "--tls-key".to_owned(),
        tls_file("server.key"),
        "--tls-client-ca".to_owned(),
        tls_file("ca.pem"),
    ]);
    let gateway = Proc::start_authenticated("wfl-gateway", &secured(args), &logs);
    let with = |token: Option<&str>, cert: Option<&str>| wfl_auth::Credentials {
        tls: Some(
            wfl_auth::tls::client(
                Some(&tls.join("ca.pem")),
                cert.map(|n| (tls.join(format!("{n}.pem")), tls.join(format!("{n}.key"))))
                    .as_ref()
                    .map(|(c, k)| (c.as_path(), k.as_path())),
                Some("localhost"),
            )
            .expect("client TLS"),
        ),
        token: token.map(str::to_owned),
        partition: None,
    };
    let as_who = |token: Option<&str>| with(token, None);

    let events: Vec<_> = [&own, &foreign]
        .iter()
        .flat_map(|o| (0..5).map(move |i| scenario::hire(o, &format!("w{i}"))))
        .collect();
    let conn = as_who(Some(&admin))
        .connect(&gateway.grpc)
        .await
        .expect("connect");
    let answer = pb::ingest_client::IngestClient::new(conn.clone())
        .record_batch(pb::RecordBatchRequest {
            events: events.iter().map(common::wire).collect(),
            ack: pb::AckLevel::Committed as i32,
            include_proof: false,
        })
        .await
        .expect("admin records")
        .into_inner();
    let (done, retry) = common::committed_and_retry(&events, &answer);
    assert!(retry.is_empty() && done.len() == events.len(), "{answer:?}");
    // Both partitions hold 5 events: wait until each projector has them (as the admin).
    let mut admin_views = pb::views_client::ViewsClient::new(conn);
    for o in [&own, &foreign] {
        admin_views
            .headcount(pb::ViewRequest {
                org_id: o.clone(),
                min_sequence: 5,
                ..pb::ViewRequest::default()
            })
            .await
            .expect("the admin reads any org");
    }

    let analyst_conn = as_who(Some(&analyst))
        .connect(&gateway.grpc)
        .await
        .expect("connect");
    let mut views = pb::views_client::ViewsClient::new(analyst_conn);
    let hires = |r: pb::ViewResponse| match r.view {
        Some(pb::view_response::View::Headcount(h)) => h
            .rows
            .iter()
            .map(|r| r.total.as_ref().map_or(0, |t| t.hires))
            .sum::<u64>(),
        other => panic!("a headcount: {other:?}"),
    };
    // Its own org, by name and implied by the token (routed to the org's partition).
    for org_id in [own.clone(), String::new()] {
        let r = views
            .headcount(pb::ViewRequest {
                org_id,
                ..pb::ViewRequest::default()
            })
            .await
            .expect("the analyst reads its org");
        assert_eq!(
            partition_of(&r).as_deref(),
            Some(PartitionMap::hash_partition(&own, P).to_string().as_str())
        );
        assert_eq!(hires(r.into_inner()), 5);
    }
    // Another org: denied, by org or by naming the other partition.
    let denied = views
        .headcount(pb::ViewRequest {
            org_id: foreign.clone(),
            ..pb::ViewRequest::default()
        })
        .await
        .expect_err("another org");
    assert_eq!(denied.code(), tonic::Code::PermissionDenied, "{denied:?}");
    let watch = views
        .threshold_watch(pb::ThresholdRequest::default())
        .await
        .expect("the analyst's watch: its org")
        .into_inner();
    assert!(watch.statuses.iter().all(|s| s.org_id == own), "{watch:?}");
    // No token: refused before anything is forwarded.
    let anonymous = as_who(None).connect(&gateway.grpc).await.expect("connect");
    let refused = pb::views_client::ViewsClient::new(anonymous)
        .headcount(pb::ViewRequest {
            org_id: own.clone(),
            ..pb::ViewRequest::default()
        })
        .await
        .expect_err("no token");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");
    // A caller known by its client certificate alone: admitted by the gateway, but nothing it
    // could show the projector on the caller's behalf, so refused saying to use a token.
    let by_cert = with(None, Some("acme-analyst"))
        .connect(&gateway.grpc)
        .await
        .expect("mTLS connect");
    let refused = pb::views_client::ViewsClient::new(by_cert)
        .headcount(pb::ViewRequest {
            org_id: own.clone(),
            ..pb::ViewRequest::default()
        })
        .await
        .expect_err("certificate only");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");
    assert!(refused.message().contains("bearer token"), "{refused:?}");
    drop((ledger, gateway, projectors));
}
