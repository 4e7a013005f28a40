//! `wfl bench ingest`: wfl's ingest and replay paths beside the ceilings of the parts they are made
//! of, measured in one run on the same payloads.
//!
//! Payloads: the restructuring mix of `wfl load` (hires, non-renewals, dismissals, hiring freezes,
//! AI deployments ...) spread over several orgs, as stored records (`wfl.v1.CommittedEvent`, a few
//! hundred bytes each). Rows, in order:
//!
//! - **ceilings**: raw JetStream publish with `Nats-Msg-Id`, pipelined 1,000 at a time, to a
//!   file-storage stream; raw sled batch insert with one flush per 1,000; raw sled scan + protobuf
//!   decode of those records.
//! - **wfl**: ingest `COMMITTED` and `ACCEPTED` through gRPC `RecordBatch` with several concurrent
//!   clients (one per org), in process (`wfl up`) and over NATS (`wfl up --nats-url`); single
//!   `Record` latency at an offered rate (each request is timed from when it was *scheduled*, so a
//!   stall counts against every request it delayed: coordinated omission accounted for); gRPC
//!   `Read` replay; replay to JSON lines as `wfl replay` writes them.
//! - **baseline**: PostgreSQL (`--postgres-url`, through `psql`): an events table with a unique
//!   event id, one transaction per command, and 1,000-row transactions, `synchronous_commit = on`.
//!
//! NATS rows run on a private `nats-server` the bench starts on a free port (never on a server
//! that may carry a real wfl's streams); they are skipped, with the reason printed, when no
//! `nats-server` binary is found. Owns measurement only; must not be used as a test of behaviour.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use futures::StreamExt;
use prost::Message;
use serde::Serialize;
use wfl_proto::pb;

use crate::bench::{percentile, Node};
use crate::loadgen::{Generator, Mix};

/// What to run.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// Events per ingest run (and for the ceilings).
    pub events: u64,
    /// Orgs the events are spread over; one concurrent client each.
    pub orgs: usize,
    /// Events per `RecordBatch`.
    pub batch: usize,
    /// Single-`Record` latency: offered rate (requests/s) and duration.
    pub latency_rate: u64,
    pub latency_secs: u64,
    /// Events for each PostgreSQL baseline (one transaction per command is slow).
    pub postgres_events: u64,
    pub postgres_url: Option<String>,
    /// A `nats-server` binary; `None` looks on `PATH` and at `/usr/sbin/nats-server`.
    pub nats_server: Option<PathBuf>,
    /// Scratch directory (must be empty or absent; removed afterwards unless `keep`).
    pub data_dir: PathBuf,
    pub keep: bool,
    pub packs: Vec<wfl_projector::RulePack>,
}

impl IngestConfig {
    /// The CI mode: every row, small enough to finish in well under two minutes.
    #[must_use]
    pub fn quick(mut self) -> Self {
        self.events = self.events.min(10_000);
        self.latency_secs = self.latency_secs.min(2);
        self.postgres_events = self.postgres_events.min(1_000);
        self
    }
}

/// One measured figure.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub group: &'static str,
    pub figure: String,
    pub value: f64,
    pub unit: &'static str,
    /// The figures this one is compared with, each with `value / that`.
    pub versus: Vec<(String, f64)>,
}

/// What was measured.
#[derive(Debug, Clone, Serialize)]
pub struct IngestReport {
    pub events: u64,
    pub orgs: usize,
    /// Mean size of a stored record (`CommittedEvent` bytes).
    pub record_bytes: f64,
    pub nats_server: Option<String>,
    pub rows: Vec<Row>,
    /// Rows not measured, with the reason.
    pub skipped: Vec<String>,
}

impl IngestReport {
    fn push(&mut self, group: &'static str, figure: &str, value: f64, unit: &'static str) {
        eprintln!("  {figure}: {value:.1} {unit}");
        self.rows.push(Row {
            group,
            figure: figure.to_owned(),
            value,
            unit,
            versus: Vec::new(),
        });
    }

    fn value(&self, figure: &str) -> Option<f64> {
        self.rows
            .iter()
            .find(|r| r.figure == figure)
            .map(|r| r.value)
    }

    /// Sets `figure`'s ratio to `versus` when both were measured.
    fn compare(&mut self, figure: &str, versus: &str) {
        let Some(base) = self.value(versus) else {
            return;
        };
        if let Some(row) = self.rows.iter_mut().find(|r| r.figure == figure) {
            if base > 0.0 {
                row.versus.push((versus.to_owned(), row.value / base));
            }
        }
    }

    /// A table for people.
    #[must_use]
    pub fn table(&self) -> String {
        let mut out = format!(
            "{} events over {} orgs, {:.0} B per stored record{}\n\n{:<9} {:<52} {:>12} {:<9} {}\n",
            self.events,
            self.orgs,
            self.record_bytes,
            self.nats_server
                .as_deref()
                .map(|v| format!(", {v}"))
                .unwrap_or_default(),
            "group",
            "figure",
            "value",
            "unit",
            "ratio"
        );
        for r in &self.rows {
            let ratio = r
                .versus
                .iter()
                .map(|(v, x)| format!("{x:.2}x {v}"))
                .collect::<Vec<_>>()
                .join("; ");
            out.push_str(&format!(
                "{:<9} {:<52} {:>12.1} {:<9} {}\n",
                r.group, r.figure, r.value, r.unit, ratio
            ));
        }
        for s in &self.skipped {
            out.push_str(&format!("skipped: {s}\n"));
        }
        out
    }
}

const JS_CEILING: &str = "raw JetStream publish, ids, pipelined 1,000";
const SLED_INSERT: &str = "raw sled batch insert, 1 flush per 1,000";
const SLED_SCAN: &str = "raw sled scan + decode";
const INPROC_COMMITTED: &str = "wfl ingest COMMITTED, in process";
const INPROC_ACCEPTED: &str = "wfl ingest ACCEPTED, in process";
const NATS_COMMITTED: &str = "wfl ingest COMMITTED, over NATS";
const NATS_ACCEPTED: &str = "wfl ingest ACCEPTED, over NATS";
const READ: &str = "wfl gRPC Read replay";
const REPLAY_JSON: &str = "wfl replay to JSON lines";
const PG_PER_COMMAND: &str = "PostgreSQL, one transaction per command";
const PG_BATCHED: &str = "PostgreSQL, 1,000 rows per transaction";

/// Runs the ingest benchmark.
///
/// # Errors
/// The scratch directory is not empty, a node fails, or a part refuses the load.
pub async fn ingest(config: &IngestConfig) -> anyhow::Result<IngestReport> {
    if config.data_dir.exists()
        && std::fs::read_dir(&config.data_dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        bail!(
            "{} is not empty; give an empty or new --data-dir",
            config.data_dir.display()
        );
    }
    std::fs::create_dir_all(&config.data_dir)?;
    let result = run(config).await;
    if !config.keep {
        let _ = std::fs::remove_dir_all(&config.data_dir);
    }
    result
}

async fn run(config: &IngestConfig) -> anyhow::Result<IngestReport> {
    let run = uuid::Uuid::now_v7().simple().to_string()[..12].to_owned();
    let orgs: Vec<String> = (0..config.orgs.max(1))
        .map(|i| format!("bench-{run}-{i}"))
        .collect();
    eprintln!(
        "preparing {} events over {} orgs",
        config.events,
        orgs.len()
    );
    let records = stored_records(&orgs, &run, config.events)?;
    let record_bytes =
        records.iter().map(|(_, b)| b.len()).sum::<usize>() as f64 / records.len().max(1) as f64;
    let mut report = IngestReport {
        events: config.events,
        orgs: orgs.len(),
        record_bytes,
        nats_server: None,
        rows: Vec::new(),
        skipped: Vec::new(),
    };

    eprintln!("ceilings: sled");
    let sled_dir = config.data_dir.join("sled-ceiling");
    let (insert, scan) = {
        let records = records.clone();
        tokio::task::spawn_blocking(move || sled_ceilings(&sled_dir, &records)).await??
    };
    report.push("ceiling", SLED_INSERT, insert, "events/s");
    report.push("ceiling", SLED_SCAN, scan, "events/s");

    let nats = match PrivateNats::start(config).await {
        Ok(n) => Some(n),
        Err(e) => {
            report.skipped.push(format!("the NATS rows: {e:#}"));
            None
        }
    };
    if let Some(n) = &nats {
        report.nats_server = Some(n.version.clone());
        eprintln!("ceilings: JetStream ({})", n.version);
        let rate = jetstream_ceiling(&n.url, &records).await?;
        report.push("ceiling", JS_CEILING, rate, "events/s");
    }

    eprintln!("wfl in process");
    let node =
        Node::start_with(&config.data_dir.join("inproc"), &config.packs, None, false).await?;
    let committed = ingest_rate(&node.grpc, &orgs, "c", config, pb::AckLevel::Committed).await?;
    report.push("wfl", INPROC_COMMITTED, committed, "events/s");
    let accepted = ingest_rate(&node.grpc, &orgs, "a", config, pb::AckLevel::Accepted).await?;
    report.push("wfl", INPROC_ACCEPTED, accepted, "events/s");
    eprintln!(
        "single Record at {}/s for {} s",
        config.latency_rate, config.latency_secs
    );
    let lat = record_latency(&node.grpc, &orgs[0], config).await?;
    for (q, v) in [
        ("p50", lat.p50),
        ("p99", lat.p99),
        ("p99.9", lat.p999),
        ("max", lat.max),
    ] {
        report.push(
            "wfl",
            &format!(
                "single Record COMMITTED {q} at {}/s offered",
                config.latency_rate
            ),
            v,
            "ms",
        );
    }
    report.push(
        "wfl",
        "single Record COMMITTED achieved rate",
        lat.achieved,
        "req/s",
    );
    eprintln!("replay");
    let (read, json) = replay_rates(&node.grpc).await?;
    report.push("wfl", READ, read, "events/s");
    report.push("wfl", REPLAY_JSON, json, "events/s");
    node.stop().await?;

    if let Some(n) = &nats {
        eprintln!("wfl over NATS");
        let node = Node::start_with(
            &config.data_dir.join("nats"),
            &config.packs,
            Some(n.url.clone()),
            false,
        )
        .await?;
        let committed =
            ingest_rate(&node.grpc, &orgs, "nc", config, pb::AckLevel::Committed).await?;
        report.push("wfl", NATS_COMMITTED, committed, "events/s");
        let accepted = ingest_rate(&node.grpc, &orgs, "na", config, pb::AckLevel::Accepted).await?;
        report.push("wfl", NATS_ACCEPTED, accepted, "events/s");
        node.stop().await?;
    }
    drop(nats);

    match &config.postgres_url {
        None => report
            .skipped
            .push("the PostgreSQL baseline: no --postgres-url".into()),
        Some(url) => {
            eprintln!("PostgreSQL baseline");
            let n = config.postgres_events.min(records.len() as u64) as usize;
            match postgres_baseline(url, &run, &records[..n], &config.data_dir).await {
                Ok((per_command, batched)) => {
                    report.push("baseline", PG_PER_COMMAND, per_command, "events/s");
                    report.push("baseline", PG_BATCHED, batched, "events/s");
                }
                Err(e) => report
                    .skipped
                    .push(format!("the PostgreSQL baseline: {e:#}")),
            }
        }
    }

    report.compare(INPROC_COMMITTED, SLED_INSERT);
    report.compare(INPROC_ACCEPTED, SLED_INSERT);
    report.compare(NATS_COMMITTED, JS_CEILING);
    report.compare(NATS_ACCEPTED, JS_CEILING);
    report.compare(READ, SLED_SCAN);
    report.compare(REPLAY_JSON, SLED_SCAN);
    report.compare(NATS_COMMITTED, PG_BATCHED);
    report.compare(INPROC_COMMITTED, PG_BATCHED);
    report.compare(INPROC_COMMITTED, PG_PER_COMMAND);
    Ok(report)
}

/// `(event id, stored bytes)` of `n` events of the restructuring mix, round-robin over `orgs` in
/// blocks of ten (a block is self-contained), as the ledger would store them.
fn stored_records(orgs: &[String], run: &str, n: u64) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let gens = orgs
        .iter()
        .map(|o| Generator::new(Mix::Restructuring, o, run))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow!(e))?;
    let mut out = Vec::with_capacity(n as usize);
    let mut block = 0u64;
    while (out.len() as u64) < n {
        let g = &gens[(block as usize) % gens.len()];
        let round = block / gens.len() as u64;
        for e in g.events(round * 10, round * 10 + 10) {
            if out.len() as u64 == n {
                break;
            }
            let event = wfl_proto::convert::event_to_pb(&e);
            let record = pb::CommittedEvent {
                sequence: out.len() as u64 + 1,
                recorded_at_micros: 1_767_225_600_000_000 + out.len() as i64,
                event: Some(event),
                ..Default::default()
            };
            out.push((e.event_id.to_string(), record.encode_to_vec()));
        }
        block += 1;
    }
    Ok(out)
}

/// Raw sled: batch insert with one flush per 1,000, then a full scan decoding every record.
fn sled_ceilings(dir: &Path, records: &[(String, Vec<u8>)]) -> anyhow::Result<(f64, f64)> {
    let db = sled::open(dir).with_context(|| format!("opening {}", dir.display()))?;
    let tree = db.open_tree("records")?;
    let started = Instant::now();
    for (chunk_no, chunk) in records.chunks(1000).enumerate() {
        let mut batch = sled::Batch::default();
        for (i, (_, bytes)) in chunk.iter().enumerate() {
            let seq = (chunk_no * 1000 + i) as u64 + 1;
            batch.insert(&seq.to_be_bytes(), bytes.as_slice());
        }
        tree.apply_batch(batch)?;
        db.flush()?;
    }
    let insert = records.len() as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut n = 0u64;
    for item in tree.iter() {
        let (_, v) = item?;
        let c = pb::CommittedEvent::decode(v.as_ref())?;
        n += u64::from(c.event.is_some());
    }
    let scan = n as f64 / started.elapsed().as_secs_f64();
    Ok((insert, scan))
}

/// Raw JetStream: publish every record with its event id as `Nats-Msg-Id` to a file-storage
/// stream, 1,000 publishes in flight, then wait for their acks.
async fn jetstream_ceiling(url: &str, records: &[(String, Vec<u8>)]) -> anyhow::Result<f64> {
    let client = async_nats::connect(url).await?;
    let js = async_nats::jetstream::new(client);
    let name = "WFL_BENCH_CEILING";
    js.create_stream(async_nats::jetstream::stream::Config {
        name: name.into(),
        subjects: vec!["wflbench.>".into()],
        storage: async_nats::jetstream::stream::StorageType::File,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    })
    .await
    .map_err(|e| anyhow!("creating the bench stream: {e}"))?;
    let started = Instant::now();
    for chunk in records.chunks(1000) {
        let mut acks = Vec::with_capacity(chunk.len());
        for (id, bytes) in chunk {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Nats-Msg-Id", id.as_str());
            acks.push(
                js.publish_with_headers("wflbench.inbox", headers, bytes.clone().into())
                    .await
                    .map_err(|e| anyhow!("publish: {e}"))?,
            );
        }
        for ack in acks {
            ack.await.map_err(|e| anyhow!("publish ack: {e}"))?;
        }
    }
    let rate = records.len() as f64 / started.elapsed().as_secs_f64();
    let _ = js.delete_stream(name).await;
    Ok(rate)
}

/// `RecordBatch` of the restructuring mix with one client per org, all at once; events/s.
async fn ingest_rate(
    addr: &str,
    orgs: &[String],
    tag: &str,
    config: &IngestConfig,
    ack: pb::AckLevel,
) -> anyhow::Result<f64> {
    let per_org = (config.events / orgs.len() as u64).max(10);
    let started = Instant::now();
    let runs = futures::future::join_all(orgs.iter().map(|org| {
        let org = format!("{org}-{tag}");
        async move {
            crate::client::load(
                addr,
                &org,
                per_org,
                config.batch,
                1,
                ack,
                Mix::Restructuring,
            )
            .await
        }
    }))
    .await;
    let seconds = started.elapsed().as_secs_f64();
    let mut total = 0u64;
    for r in runs {
        total += r?.events;
    }
    Ok(total as f64 / seconds)
}

struct Latency {
    p50: f64,
    p99: f64,
    p999: f64,
    max: f64,
    achieved: f64,
}

/// Single `Record` (COMMITTED) calls offered at a fixed rate, each timed from its scheduled start.
async fn record_latency(addr: &str, org: &str, config: &IngestConfig) -> anyhow::Result<Latency> {
    let channel = crate::client::connect(addr).await?;
    let total = config.latency_rate * config.latency_secs;
    let generator =
        Generator::new(Mix::Hires, &format!("{org}-lat"), "lat").map_err(|e| anyhow!(e))?;
    let events: Vec<pb::Event> = generator
        .events(0, total)
        .iter()
        .map(wfl_proto::convert::event_to_pb)
        .collect();
    let interval = Duration::from_secs_f64(1.0 / config.latency_rate.max(1) as f64);
    let started = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(events.len());
    for (i, event) in events.into_iter().enumerate() {
        let scheduled = started + interval * u32::try_from(i).unwrap_or(u32::MAX);
        tokio::time::sleep_until(scheduled).await;
        let mut client = pb::ingest_client::IngestClient::new(channel.clone());
        tasks.push(tokio::spawn(async move {
            let r = client
                .record(pb::RecordRequest {
                    event: Some(event),
                    ack: pb::AckLevel::Committed as i32,
                    include_proof: false,
                })
                .await;
            (scheduled.elapsed(), r)
        }));
    }
    let mut ms = Vec::with_capacity(tasks.len());
    for t in tasks {
        let (elapsed, r) = t.await?;
        r.map_err(|s| anyhow!("Record: {}", crate::client::describe_status(&s)))?;
        ms.push(elapsed.as_secs_f64() * 1000.0);
    }
    let achieved = ms.len() as f64 / started.elapsed().as_secs_f64();
    ms.sort_by(f64::total_cmp);
    Ok(Latency {
        p50: percentile(&ms, 0.5),
        p99: percentile(&ms, 0.99),
        p999: percentile(&ms, 0.999),
        max: ms.last().copied().unwrap_or(0.0),
        achieved,
    })
}

/// gRPC `Read` of the whole ledger (events/s), then the same read written as `wfl replay` writes
/// it (JSON lines, here to a sink).
async fn replay_rates(addr: &str) -> anyhow::Result<(f64, f64)> {
    let mut client = pb::ledger_client::LedgerClient::new(crate::client::connect(addr).await?)
        .max_decoding_message_size(64 << 20);
    let mut rates = [0.0; 2];
    for (k, rate) in rates.iter_mut().enumerate() {
        let started = Instant::now();
        let mut stream = client
            .read(pb::ReadRequest {
                from_sequence: 1,
                ..Default::default()
            })
            .await
            .map_err(|s| anyhow!("Read: {}", crate::client::describe_status(&s)))?
            .into_inner();
        let mut n = 0u64;
        let mut sink = std::io::sink();
        while let Some(c) = stream.next().await {
            let c = c.map_err(|s| anyhow!("Read: {}", crate::client::describe_status(&s)))?;
            if k == 1 {
                use std::io::Write;
                serde_json::to_writer(&mut sink, &crate::client::committed_json(&c)?)?;
                sink.write_all(b"\n")?;
            }
            n += 1;
        }
        *rate = n as f64 / started.elapsed().as_secs_f64();
    }
    Ok((rates[0], rates[1]))
}

/// PostgreSQL through `psql`: an events table with a unique event id; one transaction per
/// command, then 1,000-row transactions; `synchronous_commit = on`. The table is dropped after.
async fn postgres_baseline(
    url: &str,
    run: &str,
    records: &[(String, Vec<u8>)],
    dir: &Path,
) -> anyhow::Result<(f64, f64)> {
    let table = format!("wfl_bench_{run}");
    psql(
        url,
        &format!(
            "CREATE TABLE {table} (seq bigserial PRIMARY KEY, event_id uuid NOT NULL UNIQUE, \
             body bytea NOT NULL);"
        ),
        dir,
    )
    .await?;
    let result = async {
        let mut per_command = String::from("SET synchronous_commit = on;\n");
        for (id, bytes) in records {
            per_command.push_str(&format!(
                "INSERT INTO {table} (event_id, body) VALUES ('{id}', '\\x{}');\n",
                hex::encode(bytes)
            ));
        }
        let started = Instant::now();
        psql(url, &per_command, dir).await?;
        let one = records.len() as f64 / started.elapsed().as_secs_f64();
        psql(url, &format!("TRUNCATE {table};"), dir).await?;
        let mut batched = String::from("SET synchronous_commit = on;\n");
        for chunk in records.chunks(1000) {
            batched.push_str(&format!("INSERT INTO {table} (event_id, body) VALUES "));
            let values: Vec<String> = chunk
                .iter()
                .map(|(id, bytes)| format!("('{id}', '\\x{}')", hex::encode(bytes)))
                .collect();
            batched.push_str(&values.join(","));
            batched.push_str(";\n");
        }
        let started = Instant::now();
        psql(url, &batched, dir).await?;
        let many = records.len() as f64 / started.elapsed().as_secs_f64();
        anyhow::Ok((one, many))
    }
    .await;
    let _ = psql(url, &format!("DROP TABLE IF EXISTS {table};"), dir).await;
    result
}

/// Runs an SQL script with `psql` (autocommit: each statement is its own transaction).
async fn psql(url: &str, script: &str, dir: &Path) -> anyhow::Result<()> {
    let file = dir.join("bench.sql");
    std::fs::write(&file, script)?;
    let out = tokio::process::Command::new("psql")
        .args([url, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f"])
        .arg(&file)
        .stdout(Stdio::null())
        .output()
        .await
        .map_err(|e| anyhow!("cannot run psql ({e}); install postgresql-client"))?;
    if !out.status.success() {
        bail!(
            "psql failed: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .next()
                .unwrap_or("")
        );
    }
    Ok(())
}

/// A `nats-server` of the bench's own, on a free port with a scratch JetStream store.
struct PrivateNats {
    child: tokio::process::Child,
    url: String,
    version: String,
}

impl PrivateNats {
    async fn start(config: &IngestConfig) -> anyhow::Result<Self> {
        let bin = match &config.nats_server {
            Some(b) => b.clone(),
            None => find_nats_server().ok_or_else(|| {
                anyhow!("no nats-server binary (give --nats-server or put one on PATH)")
            })?,
        };
        let version = tokio::process::Command::new(&bin)
            .arg("--version")
            .output()
            .await
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .with_context(|| format!("running {}", bin.display()))?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let store = config.data_dir.join("nats");
        let child = tokio::process::Command::new(&bin)
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(&store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if Instant::now() > deadline {
                bail!(
                    "{} did not listen on port {port} within 10 s",
                    bin.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(Self {
            child,
            url: format!("nats://127.0.0.1:{port}"),
            version,
        })
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn find_nats_server() -> Option<PathBuf> {
    std::env::var_os("NATS_SERVER_BIN")
        .map(PathBuf::from)
        .into_iter()
        .chain(
            std::env::var_os("PATH")
                .map(|p| {
                    std::env::split_paths(&p)
                        .map(|d| d.join("nats-server"))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default(),
        )
        .chain([PathBuf::from("/usr/sbin/nats-server")])
        .find(|p| p.is_file())
}
