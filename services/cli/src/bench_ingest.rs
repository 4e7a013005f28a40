//! `wfl bench ingest`: wfl's ingest and replay paths beside the ceilings of the parts they are made
//! of, measured in one run on the same payloads.
//!
//! Payloads ([`Payloads`]): the restructuring mix of `wfl load` (hires, non-renewals, economic
//! dismissals, resignations, position links, AI roll-outs and usage) spread over several orgs, each
//! event carrying the fields an HR system's export fills in (source reference, plan correlation,
//! position, hours, contract end, legal ground, tenure, notice, severance ...), 300–400 bytes
//! encoded. They are made once; every row sends or stores those same payloads (the ceilings as
//! `wfl.v1.CommittedEvent` records, as the ledger stores them), only the org ids' two-character
//! row tag and the event ids differ between rows. Rows, in order:
//!
//! - **ceilings**: raw JetStream publish with `Nats-Msg-Id`, pipelined 1,000 at a time, to a
//!   file-storage stream; raw sled batch insert with one flush per 1,000; raw sled scan + protobuf
//!   decode of those records.
//! - **wfl**: ingest `COMMITTED` and `ACCEPTED` through gRPC `RecordBatch` with several concurrent
//!   clients (one per org), in process (`wfl up`) and over NATS (`wfl up --nats-url`); single
//!   `Record` latency at an offered rate (each request is timed from when it was *scheduled*, so a
//!   stall counts against every request it delayed: coordinated omission accounted for); gRPC
//!   `Read` replay; replay to JSON lines as `wfl replay` writes them. Each COMMITTED row is
//!   followed by the same load measured until *drained*: until the views have folded every
//!   committed event and, over NATS, the publisher has put it on `WFL_LEDGER` (work a COMMITTED
//!   answer does not wait for, but that a deployment must keep up with).
//! - **CPU**: each rate but PostgreSQL's comes with the CPU time (user + system) its processes
//!   used, per event and as cores busy ([`CpuUse`]): on two cores, what bounds a row.
//! - **baseline**: PostgreSQL (`--postgres-url`, through `psql`): an events table with a unique
//!   event id, one transaction per command, and 1,000-row transactions, `synchronous_commit = on`.
//!
//! NATS rows run on a private `nats-server` the bench starts on a free port (never on a server
//! that may carry a real wfl's streams); they are skipped, with the reason printed, when no
//! `nats-server` binary is found; the separate-processes row likewise when `wfl-ledger`,
//! `wfl-gateway` or `wfl-projector` is not beside this `wfl`. Owns measurement only; must not be
//! used as a test of behaviour.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use futures::StreamExt;
use prost::Message;
use serde::Serialize;
use wfl_proto::pb;

use wfl_domain::{Event, EventId, OrgId, Payload};

use crate::bench::{percentile, read_metrics, Node};
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
    /// Where `packs` came from: the split row's `wfl-projector` reads them there.
    pub rulepacks: PathBuf,
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
    /// The CPU the row used, when it could be read (Linux).
    pub cpu: Option<CpuUse>,
}

/// The CPU time (user + system, from `/proc/<pid>/stat`) a row used, over every process it ran
/// on: the bench itself (the load's clients, the in-process node, the ceilings' own work), the
/// private `nats-server`, and the separate service processes. On two cores, a row that keeps
/// both busy (`cores` near 2) is bound by its CPU per event, and `1 / us_per_event` per core is
/// then what its rate can reach.
#[derive(Debug, Clone, Serialize)]
pub struct CpuUse {
    /// CPU microseconds per event, all processes together.
    pub us_per_event: f64,
    /// Mean cores busy while the row ran.
    pub cores: f64,
    /// `us_per_event` by process.
    pub by_process: Vec<(String, f64)>,
}

/// What was measured.
#[derive(Debug, Clone, Serialize)]
pub struct IngestReport {
    pub events: u64,
    pub orgs: usize,
    /// Mean encoded size of a submitted event (`wfl.v1.Event` bytes).
    pub event_bytes: f64,
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
            cpu: None,
        });
    }

    /// Attaches the CPU a row used (measured since `mark`, over `events`).
    fn cpu(&mut self, figure: &str, used: Option<CpuUse>) {
        if let (Some(row), Some(used)) = (self.rows.iter_mut().find(|r| r.figure == figure), used) {
            eprintln!(
                "    CPU {:.1} us per event, {:.2} cores",
                used.us_per_event, used.cores
            );
            row.cpu = Some(used);
        }
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
            "{} events over {} orgs, mean {:.0} B per encoded event, {:.0} B per stored record{}\n\n{:<9} {:<56} {:>12} {:<9} {:>10} {:>6} {}\n",
            self.events,
            self.orgs,
            self.event_bytes,
            self.record_bytes,
            self.nats_server
                .as_deref()
                .map(|v| format!(", {v}"))
                .unwrap_or_default(),
            "group",
            "figure",
            "value",
            "unit",
            "CPU us/ev",
            "cores",
            "ratio"
        );
        for r in &self.rows {
            let ratio = r
                .versus
                .iter()
                .map(|(v, x)| format!("{x:.2}x {v}"))
                .collect::<Vec<_>>()
                .join("; ");
            let (us, cores) = r.cpu.as_ref().map_or((String::new(), String::new()), |c| {
                (format!("{:.1}", c.us_per_event), format!("{:.2}", c.cores))
            });
            out.push_str(&format!(
                "{:<9} {:<56} {:>12.1} {:<9} {us:>10} {cores:>6} {ratio}\n",
                r.group, r.figure, r.value, r.unit
            ));
        }
        let split: Vec<String> = self
            .rows
            .iter()
            .filter_map(|r| {
                let c = r.cpu.as_ref().filter(|c| c.by_process.len() > 1)?;
                let parts: Vec<String> = c
                    .by_process
                    .iter()
                    .map(|(p, us)| format!("{p} {us:.1}"))
                    .collect();
                Some(format!("  {}: {}\n", r.figure, parts.join(", ")))
            })
            .collect();
        if !split.is_empty() {
            out.push_str("\nCPU us per event by process:\n");
            out.extend(split);
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
const SPLIT_COMMITTED: &str = "wfl ingest COMMITTED, over NATS, separate processes";
const INPROC_DRAINED: &str = "wfl ingest COMMITTED, in process, until drained";
const NATS_DRAINED: &str = "wfl ingest COMMITTED, over NATS, until drained";
const SPLIT_DRAINED: &str = "wfl ingest COMMITTED, separate processes, until drained";
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
    let payloads = Payloads::new(&orgs, &run, config.events)?;
    let records = payloads.stored_records("ce");
    let record_bytes =
        records.iter().map(|(_, b)| b.len()).sum::<usize>() as f64 / records.len().max(1) as f64;
    let event_bytes = payloads.mean_encoded_bytes();
    eprintln!(
        "  {} events, mean {event_bytes:.0} B per encoded event, {record_bytes:.0} B per stored record",
        records.len()
    );
    let mut report = IngestReport {
        events: records.len() as u64,
        orgs: orgs.len(),
        event_bytes,
        record_bytes,
        nats_server: None,
        rows: Vec::new(),
        skipped: Vec::new(),
    };

    let meter = Meter::new();
    eprintln!("ceilings: sled");
    let sled_dir = config.data_dir.join("sled-ceiling");
    let ((insert, insert_cpu), (scan, scan_cpu)) = {
        let (records, meter) = (records.clone(), meter.clone());
        tokio::task::spawn_blocking(move || sled_ceilings(&sled_dir, &records, &meter)).await??
    };
    report.push("ceiling", SLED_INSERT, insert, "events/s");
    report.cpu(SLED_INSERT, insert_cpu);
    report.push("ceiling", SLED_SCAN, scan, "events/s");
    report.cpu(SLED_SCAN, scan_cpu);

    let nats = match PrivateNats::start(config, "nats").await {
        Ok(n) => Some(n),
        Err(e) => {
            report.skipped.push(format!("the NATS rows: {e:#}"));
            None
        }
    };
    let with_nats = meter.with("nats-server", nats.as_ref().and_then(|n| n.child.id()));
    if let Some(n) = &nats {
        report.nats_server = Some(n.version.clone());
        eprintln!("ceilings: JetStream ({})", n.version);
        let mark = with_nats.mark();
        let rate = jetstream_ceiling(&n.url, &records).await?;
        report.push("ceiling", JS_CEILING, rate, "events/s");
        report.cpu(JS_CEILING, with_nats.since(&mark, records.len() as u64));
    }

    eprintln!("wfl in process");
    let node =
        Node::start_with(&config.data_dir.join("inproc"), &config.packs, None, false).await?;
    let events = records.len() as u64;
    let row = wire_row(&payloads, "ic");
    let mark = meter.mark();
    let committed = ingest_rate(&node.grpc, row, config, pb::AckLevel::Committed).await?;
    report.push("wfl", INPROC_COMMITTED, committed, "events/s");
    report.cpu(INPROC_COMMITTED, meter.since(&mark, events));
    let drain = Drain::new(&meter, &mark, events, Watched::node(&node, false));
    drain.push(&mut report, INPROC_DRAINED).await?;
    let row = wire_row(&payloads, "ia");
    let mark = meter.mark();
    let accepted = ingest_rate(&node.grpc, row, config, pb::AckLevel::Accepted).await?;
    report.push("wfl", INPROC_ACCEPTED, accepted, "events/s");
    report.cpu(INPROC_ACCEPTED, meter.since(&mark, events));
    // Accepted is not committed: the next rows start once the ledger and the views are done.
    Drain::new(&meter, &mark, events, Watched::node(&node, false))
        .wait(Some(2 * events))
        .await?;
    eprintln!(
        "single Record at {}/s for {} s",
        config.latency_rate, config.latency_secs
    );
    let lat = record_latency(&node.grpc, &payloads, config).await?;
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
    let ((read, read_cpu), (json, json_cpu)) = replay_rates(&node.grpc, &meter).await?;
    report.push("wfl", READ, read, "events/s");
    report.cpu(READ, read_cpu);
    report.push("wfl", REPLAY_JSON, json, "events/s");
    report.cpu(REPLAY_JSON, json_cpu);
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
        let row = wire_row(&payloads, "nc");
        let mark = with_nats.mark();
        let committed = ingest_rate(&node.grpc, row, config, pb::AckLevel::Committed).await?;
        report.push("wfl", NATS_COMMITTED, committed, "events/s");
        report.cpu(NATS_COMMITTED, with_nats.since(&mark, events));
        let drain = Drain::new(&with_nats, &mark, events, Watched::node(&node, true));
        drain.push(&mut report, NATS_DRAINED).await?;
        let row = wire_row(&payloads, "na");
        let mark = with_nats.mark();
        let accepted = ingest_rate(&node.grpc, row, config, pb::AckLevel::Accepted).await?;
        report.push("wfl", NATS_ACCEPTED, accepted, "events/s");
        report.cpu(NATS_ACCEPTED, with_nats.since(&mark, events));
        Drain::new(&with_nats, &mark, events, Watched::node(&node, true))
            .wait(Some(2 * events))
            .await?;
        node.stop().await?;

        if let Some(missing) = Split::missing()? {
            report
                .skipped
                .push(format!("the separate-processes row: {missing}"));
        } else {
            eprintln!("wfl over NATS, separate processes (wfl-ledger, wfl-gateway, wfl-projector)");
            // On a nats-server of its own: the streams of the rows before hold another ledger's
            // inbox messages and sequences (this ledger's publisher would take WFL_LEDGER for
            // holding its events already, and publish none).
            let own = PrivateNats::start(config, "nats-split").await?;
            let split = Split::start(config, &own.url).await?;
            let meter = Split::BINARIES.iter().zip(&split.children).fold(
                meter.with("nats-server", own.child.id()),
                |m, (name, child)| m.with(name, child.id()),
            );
            let row = wire_row(&payloads, "sc");
            let mark = meter.mark();
            let committed =
                ingest_rate(&split.gateway, row, config, pb::AckLevel::Committed).await?;
            report.push("wfl", SPLIT_COMMITTED, committed, "events/s");
            report.cpu(SPLIT_COMMITTED, meter.since(&mark, events));
            let at = Watched {
                ledger: split.ledger_http,
                projector: split.projector_http,
                published: true,
            };
            let drain = Drain::new(&meter, &mark, events, at);
            drain.push(&mut report, SPLIT_DRAINED).await?;
            split.stop().await;
        }
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
    report.compare(SPLIT_COMMITTED, JS_CEILING);
    report.compare(INPROC_DRAINED, SLED_INSERT);
    report.compare(NATS_DRAINED, JS_CEILING);
    report.compare(SPLIT_DRAINED, JS_CEILING);
    report.compare(READ, SLED_SCAN);
    report.compare(REPLAY_JSON, SLED_SCAN);
    report.compare(NATS_COMMITTED, PG_BATCHED);
    report.compare(INPROC_COMMITTED, PG_BATCHED);
    report.compare(INPROC_COMMITTED, PG_PER_COMMAND);
    Ok(report)
}

/// The work a COMMITTED answer leaves behind, waited for after a row: the views fold every
/// committed event and (over NATS) the publisher puts it on `WFL_LEDGER`. A rate that leaves a
/// backlog there is not one a deployment can hold for long, so each COMMITTED row is followed by
/// one measured from its start until that backlog is gone ("until drained"), with the CPU of
/// that whole time.
struct Drain<'a> {
    meter: &'a Meter,
    mark: &'a Mark,
    events: u64,
    at: Watched,
}

/// Where a drain reads how far things are.
#[derive(Debug, Clone, Copy)]
struct Watched {
    /// `/metrics` of the process with the ledger, and of the one with the projector.
    ledger: std::net::SocketAddr,
    projector: std::net::SocketAddr,
    /// Wait for `WFL_LEDGER` too (a durable stream: over NATS only).
    published: bool,
}

impl Watched {
    /// A node in this process (`published`: on NATS).
    fn node(node: &Node, published: bool) -> Self {
        Self {
            ledger: node.http,
            projector: node.http,
            published,
        }
    }
}

impl<'a> Drain<'a> {
    fn new(meter: &'a Meter, mark: &'a Mark, events: u64, at: Watched) -> Self {
        Self {
            meter,
            mark,
            events,
            at,
        }
    }

    /// Waits (at most 10 minutes) until the ledger has committed `committed` events (`None`:
    /// what it had committed when this was called) and the views and the stream hold them too;
    /// says how long after the row that took.
    async fn wait(&self, committed: Option<u64>) -> anyhow::Result<()> {
        let row_end = Instant::now();
        let head = match committed {
            Some(n) => n,
            None => read_metrics(self.at.ledger).await?.head,
        };
        let deadline = row_end + Duration::from_secs(600);
        loop {
            let ledger = read_metrics(self.at.ledger).await?;
            let folded = read_metrics(self.at.projector).await?.checkpoint;
            if ledger.head >= head
                && folded >= head
                && (!self.at.published || ledger.published >= head)
            {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "not drained 10 minutes after the row: {head} events wanted, head {}, views at {folded}, WFL_LEDGER at {}",
                    ledger.head,
                    ledger.published
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        eprintln!(
            "  committed, folded{} {:.1} s after the row",
            if self.at.published {
                " and on WFL_LEDGER"
            } else {
                ""
            },
            row_end.elapsed().as_secs_f64()
        );
        Ok(())
    }

    /// [`Drain::wait`] for what the row committed, then pushes the rate from the row's start.
    async fn push(self, report: &mut IngestReport, figure: &str) -> anyhow::Result<()> {
        self.wait(None).await?;
        let rate = self.events as f64 / self.mark.at.elapsed().as_secs_f64();
        report.push("wfl", figure, rate, "events/s");
        report.cpu(figure, self.meter.since(self.mark, self.events));
        Ok(())
    }
}

/// The bench's events, made once: per org, the restructuring mix of `wfl load` in blocks of ten
/// (a block is self-contained), each event enriched with what an HR system's export carries
/// ([`Mix::Realistic`], what `wfl load --mix realistic` sends).
/// Every row sends or stores these same payloads; [`Payloads::row`] gives a row its own org ids
/// (a two-character tag appended, so sizes stay equal) and fresh event ids (links follow them).
#[derive(Debug, Clone)]
pub struct Payloads {
    per_org: Vec<Vec<Event>>,
}

impl Payloads {
    /// About `n` events (a multiple of ten per org) over `orgs`; `run` makes worker refs unique.
    ///
    /// # Errors
    /// Never in practice (the load generator's start date is a constant).
    pub fn new(orgs: &[String], run: &str, n: u64) -> anyhow::Result<Self> {
        let per_org = (n / orgs.len().max(1) as u64).div_ceil(10).max(1) * 10;
        let per_org = orgs
            .iter()
            .map(|o| {
                let g = Generator::new(Mix::Realistic, o, run).map_err(|e| anyhow!(e))?;
                Ok(g.events(0, per_org))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self { per_org })
    }

    /// Events in all.
    #[must_use]
    pub fn len(&self) -> usize {
        self.per_org.iter().map(Vec::len).sum()
    }

    /// True when there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Mean size of the events as a client encodes them (`wfl.v1.Event`).
    #[must_use]
    pub fn mean_encoded_bytes(&self) -> f64 {
        let total: usize = self
            .per_org
            .iter()
            .flatten()
            .map(|e| wfl_proto::convert::event_to_pb(e).encoded_len())
            .sum();
        total as f64 / self.len().max(1) as f64
    }

    /// The events of one row, per org: org ids tagged with `tag` (two characters, so every row's
    /// payloads are the same size), fresh event ids, and links and causation ids that follow them.
    #[must_use]
    pub fn row(&self, tag: &str) -> Vec<Vec<Event>> {
        self.per_org
            .iter()
            .map(|events| {
                let mut ids = std::collections::HashMap::with_capacity(events.len());
                events
                    .iter()
                    .map(|e| {
                        let mut e = e.clone();
                        let fresh = EventId::new_v7();
                        ids.insert(e.event_id, fresh);
                        e.event_id = fresh;
                        e.org_id = OrgId::from(format!("{}{tag}", e.org_id.0).as_str());
                        if let Payload::PositionClosed(p) = &mut e.payload {
                            if let Some(linked) = p.linked_separation_id {
                                let linked = ids.get(&linked).copied().unwrap_or(linked);
                                p.linked_separation_id = Some(linked);
                                e.causation_id = Some(linked.to_string());
                            }
                        }
                        e
                    })
                    .collect()
            })
            .collect()
    }

    /// `(event id, stored bytes)` of one row, round-robin over the orgs in blocks of ten, as the
    /// ledger would store them (`CommittedEvent`).
    #[must_use]
    pub fn stored_records(&self, tag: &str) -> Vec<(String, Vec<u8>)> {
        let row = self.row(tag);
        let blocks = row.iter().map(|o| o.len().div_ceil(10)).max().unwrap_or(0);
        let mut out = Vec::with_capacity(self.len());
        for b in 0..blocks {
            for org in &row {
                for e in org.iter().skip(b * 10).take(10) {
                    let record = pb::CommittedEvent {
                        sequence: out.len() as u64 + 1,
                        recorded_at_micros: 1_767_225_600_000_000 + out.len() as i64,
                        event: Some(wfl_proto::convert::event_to_pb(e)),
                        ..Default::default()
                    };
                    out.push((e.event_id.to_string(), record.encode_to_vec()));
                }
            }
        }
        out
    }
}

/// A rate (events/s) and the CPU it took.
type Measured = (f64, Option<CpuUse>);

/// Raw sled: batch insert with one flush per 1,000, then a full scan decoding every record.
/// Each with the CPU it used.
fn sled_ceilings(
    dir: &Path,
    records: &[(String, Vec<u8>)],
    meter: &Meter,
) -> anyhow::Result<(Measured, Measured)> {
    let db = sled::open(dir).with_context(|| format!("opening {}", dir.display()))?;
    let tree = db.open_tree("records")?;
    let mark = meter.mark();
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
    let insert_cpu = meter.since(&mark, records.len() as u64);
    let mark = meter.mark();
    let started = Instant::now();
    let mut n = 0u64;
    for item in tree.iter() {
        let (_, v) = item?;
        let c = pb::CommittedEvent::decode(v.as_ref())?;
        n += u64::from(c.event.is_some());
    }
    let scan = n as f64 / started.elapsed().as_secs_f64();
    Ok(((insert, insert_cpu), (scan, meter.since(&mark, n))))
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

/// The row `tag` of the payloads in their wire form, one list per org: made before a row's
/// clock and CPU meter start.
fn wire_row(payloads: &Payloads, tag: &str) -> Vec<Vec<pb::Event>> {
    payloads
        .row(tag)
        .iter()
        .map(|org| org.iter().map(wfl_proto::convert::event_to_pb).collect())
        .collect()
}

/// `RecordBatch` of a row (from [`wire_row`]) with one client per org, all at once;
/// events/s. Any refusal fails the run (every payload is one the ledger accepts).
async fn ingest_rate(
    addr: &str,
    row: Vec<Vec<pb::Event>>,
    config: &IngestConfig,
    ack: pb::AckLevel,
) -> anyhow::Result<f64> {
    let channel = crate::client::connect(addr).await?;
    let mut batch = config.batch.clamp(1, wfl_domain::MAX_BATCH);
    if batch >= 10 {
        batch -= batch % 10; // whole blocks: every batch is self-contained
    }
    let started = Instant::now();
    let runs = futures::future::join_all(row.into_iter().map(|events| {
        let mut client = pb::ingest_client::IngestClient::new(channel.clone())
            .max_encoding_message_size(64 << 20)
            .max_decoding_message_size(64 << 20);
        async move {
            let mut sent = 0u64;
            let mut events = events.into_iter().peekable();
            while events.peek().is_some() {
                let chunk: Vec<pb::Event> = events.by_ref().take(batch).collect();
                let n = chunk.len() as u64;
                let r = client
                    .record_batch(pb::RecordBatchRequest {
                        events: chunk,
                        ack: ack as i32,
                        include_proof: false,
                    })
                    .await
                    .map_err(|s| anyhow!("RecordBatch: {}", crate::client::describe_status(&s)))?
                    .into_inner();
                if r.rejected > 0 {
                    let first = r.results.iter().find_map(|i| match &i.outcome {
                        Some(pb::item_result::Outcome::Error(e)) => {
                            Some(format!("{}: {}", e.code, e.message))
                        }
                        _ => None,
                    });
                    bail!(
                        "{} events refused, first: {}",
                        r.rejected,
                        first.unwrap_or_default()
                    );
                }
                sent += n;
            }
            anyhow::Ok(sent)
        }
    }))
    .await;
    let seconds = started.elapsed().as_secs_f64();
    let mut total = 0u64;
    for r in runs {
        total += r?;
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
/// The events are the payloads' hires and AI events (those that depend on no other event, since
/// concurrent single calls may arrive in any order), cycled through rows of their own as needed.
async fn record_latency(
    addr: &str,
    payloads: &Payloads,
    config: &IngestConfig,
) -> anyhow::Result<Latency> {
    let channel = crate::client::connect(addr).await?;
    let total = (config.latency_rate * config.latency_secs) as usize;
    let mut events: Vec<pb::Event> = Vec::with_capacity(total);
    for round in 0..10 {
        for org in payloads.row(&format!("l{round}")) {
            events.extend(
                org.iter()
                    .filter(|e| {
                        matches!(
                            e.payload,
                            Payload::WorkerHired(_)
                                | Payload::AiToolRolledOut(_)
                                | Payload::AiUsageMeasured(_)
                        )
                    })
                    .map(wfl_proto::convert::event_to_pb),
            );
        }
        if events.len() >= total {
            break;
        }
    }
    events.truncate(total);
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

/// gRPC replay of the whole ledger (events/s) as `wfl replay` reads it (`ReadBatches`, the largest
/// batches, every message decoded), then the same read written as `wfl replay` writes it (JSON
/// lines through [`crate::client::replay_to`], here to a sink); each with the CPU it used.
async fn replay_rates(addr: &str, meter: &Meter) -> anyhow::Result<(Measured, Measured)> {
    let client = pb::ledger_client::LedgerClient::new(crate::client::connect(addr).await?)
        .max_decoding_message_size(64 << 20);
    let request = pb::ReadRequest {
        from_sequence: 1,
        ..Default::default()
    };
    // For comparison, printed only: `Read`, one event per message (what replay used before
    // ReadBatches). Run first, so the batched figures below are not the ones that warm caches.
    let started = Instant::now();
    let mut stream = client
        .clone()
        .read(request.clone())
        .await
        .map_err(|s| anyhow!("Read: {}", crate::client::describe_status(&s)))?
        .into_inner();
    let mut n = 0u64;
    while let Some(c) = stream.next().await {
        c.map_err(|s| anyhow!("Read: {}", crate::client::describe_status(&s)))?;
        n += 1;
    }
    eprintln!(
        "  (gRPC Read, one event per message: {:.1} events/s)",
        n as f64 / started.elapsed().as_secs_f64()
    );
    let mark = meter.mark();
    let started = Instant::now();
    let mut stream = client
        .clone()
        .read_batches(request.clone())
        .await
        .map_err(|s| anyhow!("ReadBatches: {}", crate::client::describe_status(&s)))?
        .into_inner();
    let mut n = 0u64;
    while let Some(batch) = stream.next().await {
        let batch =
            batch.map_err(|s| anyhow!("ReadBatches: {}", crate::client::describe_status(&s)))?;
        n += batch.events.len() as u64;
    }
    let read = (
        n as f64 / started.elapsed().as_secs_f64(),
        meter.since(&mark, n),
    );
    let mark = meter.mark();
    let started = Instant::now();
    let n = crate::client::replay_to(client, request, std::io::sink()).await?;
    let json = n as f64 / started.elapsed().as_secs_f64();
    Ok((read, (json, meter.since(&mark, n))))
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

/// The three service binaries as separate processes on the bench's nats-server, as a deployment
/// runs them (`wfl-ledger`, `wfl-gateway`, `wfl-projector` from the directory of this `wfl`).
struct Split {
    children: Vec<tokio::process::Child>,
    /// The gateway's gRPC address.
    gateway: String,
    /// `/metrics` of the ledger and of the projector.
    ledger_http: std::net::SocketAddr,
    projector_http: std::net::SocketAddr,
}

impl Split {
    const BINARIES: [&'static str; 3] = ["wfl-ledger", "wfl-gateway", "wfl-projector"];

    /// Where the service binaries are looked for: beside this `wfl`.
    fn bin_dir() -> anyhow::Result<PathBuf> {
        std::env::current_exe()?
            .parent()
            .map(Path::to_path_buf)
            .ok_or_else(|| anyhow!("cannot tell where the wfl binary lives"))
    }

    /// Why the row cannot run, when a service binary is not beside this `wfl` (a `wfl` copied
    /// on its own): the other rows are still measured and printed.
    fn missing() -> anyhow::Result<Option<String>> {
        let dir = Self::bin_dir()?;
        let absent: Vec<&str> = Self::BINARIES
            .into_iter()
            .filter(|b| !dir.join(b).is_file())
            .collect();
        Ok((!absent.is_empty()).then(|| {
            format!(
                "{} not beside this wfl in {} (build them with `cargo build --release --bins`)",
                absent.join(", "),
                dir.display()
            )
        }))
    }

    async fn start(config: &IngestConfig, nats_url: &str) -> anyhow::Result<Self> {
        let bin_dir = Self::bin_dir()?;
        let data = config.data_dir.join("split").display().to_string();
        let port = || -> anyhow::Result<String> {
            Ok(std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .to_string())
        };
        let (ledger, gateway) = (port()?, port()?);
        let (ledger_http, projector_http) = (port()?, port()?);
        let ledger_url = format!("http://{ledger}");
        let [ledger_bin, gateway_bin, projector_bin] = Self::BINARIES;
        let runs: [(&str, Vec<String>); 3] = [
            (
                ledger_bin,
                vec![
                    "--grpc-addr".into(),
                    ledger.clone(),
                    "--http-addr".into(),
                    ledger_http.clone(),
                    "--data-dir".into(),
                    data.clone(),
                ],
            ),
            (
                gateway_bin,
                vec![
                    "--grpc-addr".into(),
                    gateway.clone(),
                    "--http-addr".into(),
                    port()?,
                ],
            ),
            (
                projector_bin,
                vec![
                    "--grpc-addr".into(),
                    port()?,
                    "--http-addr".into(),
                    projector_http.clone(),
                    "--ledger".into(),
                    ledger_url.clone(),
                    "--rulepacks".into(),
                    config.rulepacks.display().to_string(),
                    "--data-dir".into(),
                    data.clone(),
                ],
            ),
        ];
        let mut split = Self {
            children: Vec::new(),
            gateway: format!("http://{gateway}"),
            ledger_http: ledger_http.parse()?,
            projector_http: projector_http.parse()?,
        };
        std::fs::create_dir_all(&data)?;
        let mut logs = Vec::new();
        for (name, args) in runs {
            let bin = bin_dir.join(name);
            let log = Path::new(&data).join(format!("{name}.log"));
            let stderr = std::fs::File::create(&log)?;
            logs.push((name, log));
            let child = tokio::process::Command::new(&bin)
                .args(&args)
                .arg("--nats-url")
                .arg(nats_url)
                // Plain and open on loopback, like `wfl up` there.
                .args(["--insecure", "--no-auth"])
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(stderr)
                .kill_on_drop(true)
                .spawn()
                .with_context(|| format!("starting {}", bin.display()))?;
            split.children.push(child);
        }
        // Ready when the gateway and the ledger say SERVING (gRPC health mirrors readiness).
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let probe = async {
                for addr in [&split.gateway, &ledger_url] {
                    let status = tonic_health::pb::health_client::HealthClient::new(
                        crate::client::connect(addr).await?,
                    )
                    .check(tonic_health::pb::HealthCheckRequest {
                        service: String::new(),
                    })
                    .await
                    .map_err(|s| anyhow!("{}", crate::client::describe_status(&s)))?
                    .into_inner()
                    .status;
                    if status
                        != tonic_health::pb::health_check_response::ServingStatus::Serving as i32
                    {
                        bail!("{addr} is not serving yet");
                    }
                }
                anyhow::Ok(())
            };
            match probe.await {
                Ok(()) => return Ok(split),
                Err(e) if Instant::now() > deadline => {
                    // Say why: the last line each process wrote.
                    let said: Vec<String> = logs
                        .iter()
                        .map(|(name, log)| {
                            let text = std::fs::read_to_string(log).unwrap_or_default();
                            let last = text.lines().rev().find(|l| !l.trim().is_empty());
                            format!("{name}: {}", last.unwrap_or("(nothing)"))
                        })
                        .collect();
                    bail!(
                        "the separate processes did not start within 30 s: {e:#} ({})",
                        said.join("; ")
                    )
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    async fn stop(mut self) {
        for child in &mut self.children {
            let _ = child.kill().await;
        }
    }
}

/// The processes whose CPU time a row is charged with, by name.
#[derive(Debug, Clone)]
struct Meter {
    procs: Vec<(String, u32)>,
}

/// A point to measure CPU from: when, and each process's CPU seconds then.
struct Mark {
    at: Instant,
    cpu: Vec<Option<f64>>,
}

impl Meter {
    /// The bench process alone.
    fn new() -> Self {
        Self {
            procs: vec![("wfl bench".into(), std::process::id())],
        }
    }

    /// This meter with `pid` added under `name` (a process that had exited reads as absent).
    fn with(&self, name: &str, pid: Option<u32>) -> Self {
        let mut m = self.clone();
        m.procs.extend(pid.map(|p| (name.to_owned(), p)));
        m
    }

    fn mark(&self) -> Mark {
        Mark {
            at: Instant::now(),
            cpu: self.procs.iter().map(|(_, p)| cpu_seconds(*p)).collect(),
        }
    }

    /// The CPU used since `mark` per event, for `events` events; `None` where `/proc` cannot be
    /// read (not Linux) or nothing was done.
    fn since(&self, mark: &Mark, events: u64) -> Option<CpuUse> {
        let wall = mark.at.elapsed().as_secs_f64();
        let mut by_process = Vec::with_capacity(self.procs.len());
        let mut total = 0.0;
        for ((name, pid), before) in self.procs.iter().zip(&mark.cpu) {
            let used = cpu_seconds(*pid)? - (*before)?;
            total += used;
            by_process.push((name.clone(), used * 1e6 / events as f64));
        }
        (events > 0 && wall > 0.0).then(|| CpuUse {
            us_per_event: total * 1e6 / events as f64,
            cores: total / wall,
            by_process,
        })
    }
}

/// `/proc` counts in clock ticks of `USER_HZ`, which Linux fixes at 100 on every architecture
/// this runs on (`getconf CLK_TCK`).
const TICKS_PER_SECOND: f64 = 100.0;

/// The CPU seconds (user + system, every thread, living or exited) process `pid` has used, from
/// `/proc/<pid>/stat`; `None` where that cannot be read.
fn cpu_seconds(pid: u32) -> Option<f64> {
    stat_cpu_seconds(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// [`cpu_seconds`] from the text of a `/proc/<pid>/stat`.
fn stat_cpu_seconds(stat: &str) -> Option<f64> {
    // The name (second field) is in parentheses and may hold spaces: count from after it.
    // There, `state` is the first field and `utime`, `stime` (fields 14 and 15) the 12th and 13th.
    let mut fields = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / TICKS_PER_SECOND)
}

/// A `nats-server` of the bench's own, on a free port with a scratch JetStream store.
struct PrivateNats {
    child: tokio::process::Child,
    url: String,
    version: String,
}

impl PrivateNats {
    /// Started on a JetStream store in `dir` under the bench's data dir.
    async fn start(config: &IngestConfig, dir: &str) -> anyhow::Result<Self> {
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
        let store = config.data_dir.join(dir);
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

#[cfg(test)]
mod tests {
    use super::*;
    use wfl_testkit::decide::Decider;

    #[test]
    fn cpu_time_is_read_after_a_process_name_with_spaces_and_parentheses() {
        // Fields from a real /proc/<pid>/stat, the name changed to one a thread may take.
        let stat = "4242 (tokio (a) b) S 1 4242 4242 0 -1 4194560 5000 0 0 0 1234 567 0 0 20 0 9 0 100 1000000 500 18446744073709551615";
        assert_eq!(stat_cpu_seconds(stat), Some(18.01));
        assert_eq!(stat_cpu_seconds("4242 (x) S 1 2"), None, "a short line");
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn a_row_is_charged_with_the_cpu_its_processes_used() {
        let meter = Meter::new();
        let mark = meter.mark();
        // Spin until the kernel has counted at least 50 ms of this process's CPU (5 ticks).
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut x = 0u64;
        loop {
            for i in 0..100_000u64 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
            }
            let used = meter.since(&mark, 1000).expect("/proc is readable");
            if used.us_per_event >= 50.0 || Instant::now() > deadline {
                assert!(used.us_per_event >= 50.0, "{used:?}");
                assert!(
                    used.cores > 0.0 && used.cores <= 1.5,
                    "one thread spun: {used:?}"
                );
                assert_eq!(used.by_process.len(), 1);
                break;
            }
        }
        let with_gone = meter.with("gone", Some(u32::MAX));
        let mark = with_gone.mark();
        assert!(
            with_gone.since(&mark, 1).is_none(),
            "a process that cannot be read gives no figure rather than a wrong one"
        );
    }

    #[test]
    fn payloads_are_realistic_sized_mixed_and_accepted_in_every_row() {
        let orgs: Vec<String> = (0..3).map(|i| format!("bench-t-{i}")).collect();
        let payloads = Payloads::new(&orgs, "t0123456789a", 600).expect("payloads");
        assert_eq!(payloads.len(), 600);
        let mean = payloads.mean_encoded_bytes();
        eprintln!("mean encoded event: {mean:.1} B");
        assert!((300.0..=400.0).contains(&mean), "mean encoded size {mean}");
        let kinds: std::collections::BTreeSet<&str> = payloads
            .per_org
            .iter()
            .flatten()
            .map(|e| e.event_type().as_str())
            .collect();
        assert!(kinds.len() >= 6, "a mix of kinds: {kinds:?}");

        let mut ledger = Decider::default();
        let mut sizes = Vec::new();
        for tag in ["ic", "nc"] {
            let row = payloads.row(tag);
            assert_eq!(row.len(), orgs.len());
            for e in row.iter().flatten() {
                assert!(e.org_id.0.ends_with(tag));
                ledger.accept(e);
            }
            sizes.push(
                row.iter()
                    .flatten()
                    .map(|e| wfl_proto::convert::event_to_pb(e).encoded_len())
                    .sum::<usize>(),
            );
        }
        assert_eq!(
            sizes[0], sizes[1],
            "every row sends payloads of the same size"
        );
        let records = payloads.stored_records("ce");
        assert_eq!(records.len(), 600);
        let ids: std::collections::HashSet<&String> = records.iter().map(|(id, _)| id).collect();
        assert_eq!(ids.len(), 600, "fresh ids per row");
    }

    #[test]
    fn the_separate_processes_row_names_the_binaries_it_lacks() {
        // A test binary lives in target/<profile>/deps, where no service binary is.
        let why = Split::missing()
            .expect("the test binary's directory")
            .expect("no service binaries beside the test binary");
        let dir = Split::bin_dir().expect("dir").display().to_string();
        assert!(
            why.starts_with("wfl-ledger, wfl-gateway, wfl-projector not beside this wfl in "),
            "{why}"
        );
        assert!(why.contains(&dir), "{why}");
        assert!(why.contains("cargo build --release --bins"), "{why}");
    }
}
