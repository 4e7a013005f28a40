//! `wfl bench views`: the views at volume, measured through the public surface of a real single
//! node (gRPC and `/metrics`) running in this process on a scratch data dir.
//!
//! It loads N events of the restructuring mix at the loader's top rate while sampling the views'
//! lag every 100 ms, waits for the views to catch up, measures disk (ledger vs views) and the
//! process's RSS, asks `as_of_sequence` answers at spread sequences, then restarts the node with
//! `--rebuild-views` and times the fold of the whole ledger from sequence 1 (the catch-up rate).
//! With `--check FILE` it fails when disk per event or the catch-up rate is more than 2× worse than
//! the figures recorded in FILE (the CI short mode).
//!
//! Owns measurement only; must not be used as a test of behaviour.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use wfl_proto::pb;

use crate::client;
use crate::loadgen::Mix;
use crate::node::{self, NodeConfig};

/// What to run.
#[derive(Debug, Clone)]
pub struct ViewsConfig {
    pub events: u64,
    pub batch: usize,
    pub concurrency: usize,
    /// Scratch directory (created, and removed afterwards unless `keep`).
    pub data_dir: PathBuf,
    pub keep: bool,
    pub packs: Vec<wfl_projector::RulePack>,
    /// How many `as_of_sequence` answers to time.
    pub as_of_queries: usize,
}

/// What was measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ViewsReport {
    pub events: u64,
    pub load_events_per_s: f64,
    /// The load rate over the first and the last fifth of the events (the ledger's head sampled
    /// every 100 ms), and the last over the first: whether ingest slows as the history grows.
    #[serde(default)]
    pub load_first_fifth_events_per_s: f64,
    #[serde(default)]
    pub load_last_fifth_events_per_s: f64,
    #[serde(default)]
    pub load_last_to_first: f64,
    /// p99 / max of the gauge `wfl_views_lag_seconds`, sampled every 100 ms while loading.
    pub lag_p99_s: f64,
    pub lag_max_s: f64,
    /// p99 of the histogram `wfl_view_lag_seconds` (per folded batch, seconds from its last
    /// event's commit to the views holding it) over the load: the upper bound of the bucket it
    /// falls in.
    #[serde(default)]
    pub lag_histogram_p99_s: f64,
    /// Events behind at most, while loading.
    pub lag_max_events: u64,
    /// From the end of the load until the views held every event.
    pub drain_s: f64,
    pub ledger_bytes: u64,
    pub views_bytes: u64,
    pub views_bytes_per_event: f64,
    /// `views_bytes / ledger_bytes`.
    pub views_to_ledger: f64,
    /// Peak resident set of the whole process (ledger, gateway, projector and loader together).
    pub rss_peak_bytes: u64,
    /// `as_of_sequence` answers (Separations of the org), milliseconds.
    pub as_of_p50_ms: f64,
    pub as_of_max_ms: f64,
    /// Current answers (Separations of the org, no `as_of_sequence`: from the tallies),
    /// milliseconds.
    #[serde(default)]
    pub current_p50_ms: f64,
    #[serde(default)]
    pub current_max_ms: f64,
    /// A restart of the node on its stored views: seconds from start until the views answer at
    /// the head again (reading every stored entry back, rebuilding the tallies).
    #[serde(default)]
    pub restart_s: f64,
    /// The first `as_of_sequence` answer after that restart (no tally snapshot is held below the
    /// checkpoint then: it builds the one it needs), milliseconds.
    #[serde(default)]
    pub restart_first_as_of_ms: f64,
    /// The other as-of answers after the restart (the same sequences as before), p50 and max.
    #[serde(default)]
    pub restart_as_of_p50_ms: f64,
    #[serde(default)]
    pub restart_as_of_max_ms: f64,
    /// Fold of the whole ledger from sequence 1 after `--rebuild-views` (Subscribe, fold, persist).
    pub catchup_events_per_s: f64,
    /// The same fold timed from the first event folded (node start and `--rebuild-views`'s clear
    /// left out): the follower's own rate.
    #[serde(default)]
    pub catchup_fold_events_per_s: f64,
    /// Until the views had also *persisted* every event (the last persist waits for the stream to
    /// go idle: one heartbeat, 500 ms).
    #[serde(default)]
    pub catchup_persisted_events_per_s: f64,
    /// RSS after the rebuild (a fresh process state plus the rebuilt views).
    pub rss_after_rebuild_bytes: u64,
    /// The views' directory after `--rebuild-views` wrote them again (every stale copy gone).
    #[serde(default)]
    pub views_bytes_after_rebuild: u64,
}

/// The figures `--check` compares against.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Baseline {
    pub views_bytes_per_event: f64,
    pub catchup_events_per_s: f64,
}

impl ViewsReport {
    /// Fails when disk per event or catch-up rate is more than 2× worse than `b`.
    ///
    /// # Errors
    /// The regression, with both figures.
    pub fn check(&self, b: &Baseline) -> anyhow::Result<()> {
        if self.views_bytes_per_event > 2.0 * b.views_bytes_per_event {
            bail!(
                "views disk per event regressed: {:.0} B/event against a recorded {:.0}",
                self.views_bytes_per_event,
                b.views_bytes_per_event
            );
        }
        if self.catchup_events_per_s < b.catchup_events_per_s / 2.0 {
            bail!(
                "views catch-up rate regressed: {:.0} events/s against a recorded {:.0}",
                self.catchup_events_per_s,
                b.catchup_events_per_s
            );
        }
        Ok(())
    }

    /// A table for people.
    #[must_use]
    pub fn table(&self) -> String {
        let mb = |b: u64| b as f64 / (1024.0 * 1024.0);
        format!(
            "figure                               value\n\
             events loaded (restructuring mix)    {}\n\
             load rate (COMMITTED)                {:.0} events/s\n\
             ... first / last fifth of the events {:.0} / {:.0} events/s ({:.2}x)\n\
             view lag while loading p99 / max     {:.2} s / {:.2} s ({} events at most)\n\
             wfl_view_lag_seconds p99 (bucket)    <= {} s\n\
             drain after the load                 {:.2} s\n\
             ledger on disk                       {:.1} MiB\n\
             views on disk                        {:.1} MiB ({:.0} B/event, {:.2}x the ledger)\n\
             RSS peak (whole node + loader)       {:.0} MiB\n\
             as-of answer p50 / max               {:.1} ms / {:.1} ms\n\
             current answer p50 / max             {:.1} ms / {:.1} ms\n\
             restart on the stored views          {:.1} s\n\
             as-of after it: first, p50 / max     {:.1} ms, {:.1} ms / {:.1} ms\n\
             catch-up from sequence 1             {:.0} events/s\n\
             ... from the first event folded      {:.0} events/s\n\
             ... until persisted too              {:.0} events/s\n\
             RSS after the rebuild                {:.0} MiB\n\
             views on disk after the rebuild      {:.1} MiB\n",
            self.events,
            self.load_events_per_s,
            self.load_first_fifth_events_per_s,
            self.load_last_fifth_events_per_s,
            self.load_last_to_first,
            self.lag_p99_s,
            self.lag_max_s,
            self.lag_max_events,
            self.lag_histogram_p99_s,
            self.drain_s,
            mb(self.ledger_bytes),
            mb(self.views_bytes),
            self.views_bytes_per_event,
            self.views_to_ledger,
            mb(self.rss_peak_bytes),
            self.as_of_p50_ms,
            self.as_of_max_ms,
            self.current_p50_ms,
            self.current_max_ms,
            self.restart_s,
            self.restart_first_as_of_ms,
            self.restart_as_of_p50_ms,
            self.restart_as_of_max_ms,
            self.catchup_events_per_s,
            self.catchup_fold_events_per_s,
            self.catchup_persisted_events_per_s,
            mb(self.rss_after_rebuild_bytes),
            mb(self.views_bytes_after_rebuild),
        )
    }
}

/// A node running in this process.
pub(crate) struct Node {
    pub(crate) grpc: String,
    pub(crate) http: std::net::SocketAddr,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Node {
    async fn start(config: &ViewsConfig, rebuild_views: bool) -> anyhow::Result<Self> {
        Self::start_with(&config.data_dir, &config.packs, None, rebuild_views).await
    }

    /// `wfl up` on loopback ports in this process, on `data_dir`, with the in-process bus or
    /// `nats_url`.
    pub(crate) async fn start_with(
        data_dir: &Path,
        packs: &[wfl_projector::RulePack],
        nats_url: Option<String>,
        rebuild_views: bool,
    ) -> anyhow::Result<Self> {
        let (grpc, http) =
            node::bind(([127, 0, 0, 1], 0).into(), ([127, 0, 0, 1], 0).into()).await?;
        let grpc_addr = format!("http://{}", grpc.local_addr()?);
        let http_addr = http.local_addr()?;
        let shutdown = CancellationToken::new();
        let node_config = NodeConfig {
            data_dir: data_dir.to_path_buf(),
            nats_url,
            nats_auth: wfl_bus::NatsAuth::Anonymous,
            packs: packs.to_vec(),
            rebuild_views,
            // `wfl up`'s defaults.
            view_snapshot_events: wfl_projections::views::DEFAULT_SNAPSHOT_EVERY,
            checkpoint_every_events: 1000,
            checkpoint_interval: Duration::from_secs(10),
            min_free_bytes: wfl_ledger::DEFAULT_MIN_FREE_BYTES,
            ledger_cache_bytes: wfl_store::DEFAULT_CACHE_BYTES,
            inbox_stall: Duration::from_secs(10),
            gateway: wfl_gateway::Config::default(),
            max_subscribers: wfl_ledger::subscribe::DEFAULT_MAX_SUBSCRIBERS,
            max_org_filter: wfl_ledger::subscribe::DEFAULT_MAX_ORG_FILTER,
            // A scratch node on loopback: plain and open, like `wfl up` there.
            security: wfl_auth::Security::default(),
            republish_stream: false,
        };
        let task = tokio::spawn(node::run(node_config, grpc, http, shutdown.clone()));
        Ok(Self {
            grpc: grpc_addr,
            http: http_addr,
            shutdown,
            task,
        })
    }

    pub(crate) async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.task.await.map_err(|e| anyhow!("node task: {e}"))?
    }

    async fn metrics(&self) -> anyhow::Result<Metrics> {
        read_metrics(self.http).await
    }

    /// Waits until the views hold every committed event.
    async fn caught_up(&self, head: u64) -> anyhow::Result<()> {
        loop {
            let m = self.metrics().await?;
            if m.checkpoint >= head && m.head >= head {
                return Ok(());
            }
            if self.task.is_finished() {
                bail!("the node stopped before the views caught up");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Reads `/metrics` with a plain HTTP/1.0 request (the listener is bound before the node starts,
/// so this only fails once the node has stopped).
pub(crate) async fn read_metrics(http: std::net::SocketAddr) -> anyhow::Result<Metrics> {
    let mut s = tokio::net::TcpStream::connect(http).await?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: bench\r\n\r\n")
        .await?;
    let mut body = String::new();
    s.read_to_string(&mut body).await?;
    let value = |name: &str| -> f64 {
        body.lines()
            .find_map(|l| {
                l.strip_prefix(name)
                    .and_then(|rest| rest.strip_prefix(' '))
                    .and_then(|v| v.trim().parse().ok())
            })
            .unwrap_or(0.0)
    };
    Ok(Metrics {
        head: value("wfl_ledger_head_sequence") as u64,
        checkpoint: value("wfl_views_checkpoint_sequence") as u64,
        published: value("wfl_publisher_cursor_sequence") as u64,
        persisted: value("wfl_views_persisted_sequence") as u64,
        lag_s: value("wfl_views_lag_seconds"),
        lag_histogram_p99_s: histogram_quantile(&body, "wfl_view_lag_seconds", 0.99),
    })
}

/// The upper bound of the bucket holding quantile `q` of a Prometheus histogram in `body`
/// (0 when it has no observations; +Inf is reported as `f64::INFINITY`).
fn histogram_quantile(body: &str, name: &str, q: f64) -> f64 {
    let prefix = format!("{name}_bucket{{le=\"");
    let buckets: Vec<(f64, f64)> = body
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(&prefix)?;
            let (le, count) = rest.split_once("\"}")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, count.trim().parse().ok()?))
        })
        .collect();
    let total = buckets.last().map_or(0.0, |(_, c)| *c);
    if total == 0.0 {
        return 0.0;
    }
    buckets
        .iter()
        .find(|(_, c)| *c >= q * total)
        .map_or(f64::INFINITY, |(le, _)| *le)
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Metrics {
    /// The ledger's head (0 from a process without a ledger).
    pub(crate) head: u64,
    /// The views' checkpoint (0 from a process without a projector).
    pub(crate) checkpoint: u64,
    /// The last sequence on `WFL_LEDGER` (0 from a process without a ledger, and on the
    /// embedded bus, which keeps no durable stream).
    pub(crate) published: u64,
    persisted: u64,
    lag_s: f64,
    lag_histogram_p99_s: f64,
}

/// The commit rate while the ledger's head went from `from` to `to`, from `(seconds, head)`
/// samples in time order: between the last sample at or below `from` and the first at or above
/// `to` (0 when the samples do not span it).
fn rate_between(heads: &[(f64, u64)], from: u64, to: u64) -> f64 {
    let start = heads.iter().rev().find(|(_, h)| *h <= from);
    let end = heads.iter().find(|(_, h)| *h >= to);
    match (start, end) {
        (Some((t0, h0)), Some((t1, h1))) if t1 > t0 => (h1 - h0) as f64 / (t1 - t0),
        _ => 0.0,
    }
}

/// Resident set of this process, bytes (Linux `/proc/self/status`; 0 elsewhere).
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("VmRSS:")
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
        })
        .map_or(0, |kb| kb * 1024)
}

/// Total bytes of the files under `dir`.
pub(crate) fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Runs the views benchmark.
///
/// # Errors
/// The scratch directory is not empty, the node fails, or the load is refused.
pub async fn views(config: &ViewsConfig) -> anyhow::Result<ViewsReport> {
    if config.data_dir.exists()
        && std::fs::read_dir(&config.data_dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        bail!(
            "{} is not empty: the benchmark needs a scratch directory",
            config.data_dir.display()
        );
    }
    let result = run_views(config).await;
    if !config.keep {
        let _ = std::fs::remove_dir_all(&config.data_dir);
    }
    result
}

async fn run_views(config: &ViewsConfig) -> anyhow::Result<ViewsReport> {
    let mut report = ViewsReport {
        events: config.events,
        ..ViewsReport::default()
    };
    let node = Node::start(config, false).await?;
    let org = "bench";

    // Sample lag and RSS while loading.
    let sampling = CancellationToken::new();
    let started = Instant::now();
    let sampler = {
        let stop = sampling.clone();
        let http = node.http;
        tokio::spawn(async move {
            let mut lags = Vec::new();
            let mut heads = Vec::new();
            let mut max_events = 0u64;
            let mut rss_peak = 0u64;
            while !stop.is_cancelled() {
                if let Ok(m) = read_metrics(http).await {
                    lags.push(m.lag_s);
                    heads.push((started.elapsed().as_secs_f64(), m.head));
                    max_events = max_events.max(m.head.saturating_sub(m.checkpoint));
                }
                rss_peak = rss_peak.max(rss_bytes());
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (lags, heads, max_events, rss_peak)
        })
    };
    let load = client::load(
        &node.grpc,
        org,
        config.events,
        config.batch,
        config.concurrency,
        pb::AckLevel::Committed,
        Mix::Restructuring,
    )
    .await
    .context("loading the ledger")?;
    report.load_events_per_s = load.events as f64 / load.seconds;
    let loaded_at = Instant::now();
    let head = node.metrics().await?.head;
    // The load's end, so the last stretch has a sample at its end.
    let loaded = (loaded_at.duration_since(started).as_secs_f64(), head);
    node.caught_up(head).await?;
    report.drain_s = loaded_at.elapsed().as_secs_f64();
    sampling.cancel();
    let (mut lags, mut heads, max_events, rss_peak) =
        sampler.await.map_err(|e| anyhow!("sampler: {e}"))?;
    heads.push(loaded);
    heads.sort_by(|a, b| a.0.total_cmp(&b.0));
    let fifth = head / 5;
    report.load_first_fifth_events_per_s = rate_between(&heads, 0, fifth);
    report.load_last_fifth_events_per_s = rate_between(&heads, head - fifth, head);
    report.load_last_to_first =
        report.load_last_fifth_events_per_s / report.load_first_fifth_events_per_s.max(1.0);
    lags.sort_by(f64::total_cmp);
    report.lag_p99_s = percentile(&lags, 0.99);
    report.lag_max_s = lags.last().copied().unwrap_or(0.0);
    report.lag_max_events = max_events;
    report.rss_peak_bytes = rss_peak.max(rss_bytes());
    report.lag_histogram_p99_s = node.metrics().await?.lag_histogram_p99_s;

    let channel = client::connect(&node.grpc).await?;
    let mut views = pb::views_client::ViewsClient::new(channel).max_decoding_message_size(64 << 20);
    // as-of answers at spread sequences (a tally snapshot moved to each), then as many current
    // ones (the current tallies): Separations of the org, p50 and max in milliseconds.
    let n = config.as_of_queries as u64;
    let as_of: Vec<u64> = (1..=n).map(|k| (head * k / (n + 1)).max(1)).collect();
    (report.as_of_p50_ms, report.as_of_max_ms) = time_answers(&mut views, org, &as_of).await?;
    (report.current_p50_ms, report.current_max_ms) =
        time_answers(&mut views, org, &vec![0; as_of.len()]).await?;
    node.stop().await?;

    // A restart on the stored views, then the same as-of answers (the first builds the tally
    // snapshot it needs: none is held below the checkpoint after a restart).
    let started = Instant::now();
    let node = Node::start(config, false).await?;
    node.caught_up(head).await?;
    report.restart_s = started.elapsed().as_secs_f64();
    let channel = client::connect(&node.grpc).await?;
    let mut views = pb::views_client::ViewsClient::new(channel).max_decoding_message_size(64 << 20);
    let (first, rest) = as_of.split_at(as_of.len().min(1));
    (report.restart_first_as_of_ms, _) = time_answers(&mut views, org, first).await?;
    (report.restart_as_of_p50_ms, report.restart_as_of_max_ms) =
        time_answers(&mut views, org, rest).await?;
    node.stop().await?;

    report.ledger_bytes = dir_bytes(&config.data_dir.join("ledger"));
    report.views_bytes = dir_bytes(&config.data_dir.join("projector"));
    report.views_bytes_per_event = report.views_bytes as f64 / head.max(1) as f64;
    report.views_to_ledger = report.views_bytes as f64 / report.ledger_bytes.max(1) as f64;

    // Catch-up: fold the whole ledger again from sequence 1.
    let started = Instant::now();
    let node = Node::start(config, true).await?;
    let (first, folded_at_first) = loop {
        if let Ok(m) = node.metrics().await {
            if m.checkpoint > 0 {
                break (Instant::now(), m.checkpoint);
            }
        }
        if node.task.is_finished() {
            bail!("the node stopped before the views caught up");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    node.caught_up(head).await?;
    report.catchup_events_per_s = head as f64 / started.elapsed().as_secs_f64();
    report.catchup_fold_events_per_s =
        head.saturating_sub(folded_at_first) as f64 / first.elapsed().as_secs_f64();
    loop {
        if node.metrics().await?.persisted >= head {
            break;
        }
        if node.task.is_finished() {
            bail!("the node stopped before the views were persisted");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    report.catchup_persisted_events_per_s = head as f64 / started.elapsed().as_secs_f64();
    report.rss_after_rebuild_bytes = rss_bytes();
    node.stop().await?;
    report.views_bytes_after_rebuild = dir_bytes(&config.data_dir.join("projector"));
    Ok(report)
}

/// Times one Separations answer of `org` per sequence in `as_of` (0: the current state);
/// returns p50 and max in milliseconds.
async fn time_answers(
    views: &mut pb::views_client::ViewsClient<wfl_auth::Conn>,
    org: &str,
    as_of: &[u64],
) -> anyhow::Result<(f64, f64)> {
    let mut times = Vec::with_capacity(as_of.len());
    for &seq in as_of {
        let t = Instant::now();
        views
            .separations(pb::ViewRequest {
                org_id: org.into(),
                as_of_sequence: seq,
                ..Default::default()
            })
            .await
            .map_err(|s| {
                let at = if seq == 0 {
                    "current".to_owned()
                } else {
                    format!("as-of {seq}")
                };
                anyhow!("{at} answer: {}", client::describe_status(&s))
            })?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    Ok((
        percentile(&times, 0.5),
        times.last().copied().unwrap_or(0.0),
    ))
}

/// What `wfl bench fold` measured: the projector's steps one at a time, in this process, on
/// events of the restructuring mix (no network, no ledger).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FoldReport {
    pub events: u64,
    /// Protobuf `CommittedEvent` bytes -> domain event (what the follower does per event).
    pub decode_events_per_s: f64,
    /// `Projection::apply_owned` alone, into memory the process never used before (as the
    /// projector's fold does: a second fold in the same process reuses what the allocator kept
    /// and ran up to 1.8 times as fast here, which is not what the projector gets).
    pub fold_events_per_s: f64,
    /// `take_changes` + encoding what changed as the view store writes it (binary parts), per
    /// 1,000 events.
    pub encode_events_per_s: f64,
    /// Entries + links held in memory after the fold, bytes of process RSS growth per event.
    /// The decoded events are made before it is measured, so the heap of the payloads the
    /// entries keep (a worker's name, a separation's boxed block) is not in it. (Measured from
    /// before they are made, it would count the envelope fields the fold drops too: decoded all
    /// at once, their freed blocks stay spread over pages the process keeps.)
    pub rss_bytes_per_event: f64,
    /// The threshold watch over the final state (every pack, every unit), milliseconds.
    pub watch_ms: f64,
    /// The longest single hold of the projection's lock while copying the watch's inputs (the
    /// copy is made a part at a time: the fold waits at most this long), milliseconds.
    #[serde(default)]
    pub watch_locked_ms: f64,
    /// Where the watch's time went: the copy of the state, borrowing its inputs from the copy,
    /// indexing the population, the evaluation; milliseconds.
    #[serde(default)]
    pub watch_copy_ms: f64,
    #[serde(default)]
    pub watch_inputs_ms: f64,
    #[serde(default)]
    pub watch_population_ms: f64,
    #[serde(default)]
    pub watch_evaluation_ms: f64,
    /// Cells of the tallies after the fold (what one as-of snapshot holds), and the snapshots
    /// the fold took (one per `DEFAULT_SNAPSHOT_EVERY` sequences).
    #[serde(default)]
    pub tally_cells: u64,
    #[serde(default)]
    pub tally_snapshots: u64,
    /// A Separations answer as of the sequence midway between two snapshots in the middle of
    /// the history (the farthest an as-of answer is from a snapshot the fold took),
    /// milliseconds.
    #[serde(default)]
    pub as_of_tallies_ms: f64,
    /// A second org of a hundredth the events (at least 1,000), folded after the first: its
    /// threshold watch over a copy of it alone, and the same rows from a copy of the whole
    /// state (what every org's watch read before), milliseconds.
    #[serde(default)]
    pub small_tenant_events: u64,
    #[serde(default)]
    pub small_tenant_watch_ms: f64,
    #[serde(default)]
    pub small_tenant_whole_copy_ms: f64,
    /// Its separations view with the evidence ids (an `Explain` first page's work), read
    /// through its runs, and walking every entry; milliseconds.
    #[serde(default)]
    pub small_tenant_evidence_ms: f64,
    #[serde(default)]
    pub small_tenant_evidence_walk_ms: f64,
}

impl FoldReport {
    /// A table for people.
    #[must_use]
    pub fn table(&self) -> String {
        format!(
            "step                                  rate\n\
             events (restructuring mix)            {}\n\
             decode (protobuf -> domain)           {:.0} events/s\n\
             fold (Projection::apply)              {:.0} events/s\n\
             take changes + encode (per 1,000)     {:.0} events/s\n\
             RSS growth per folded event           {:.0} B\n\
             threshold watch over the final state  {:.1} ms (longest hold of the lock {:.1} ms)\n\
             ... copy / inputs / population / rules {:.0} / {:.0} / {:.0} / {:.0} ms\n\
             tally cells (one snapshot) / snapshots {} / {}\n\
             as-of tallies, midway between two      {:.1} ms\n\
             a second org of {} events: its watch   {:.1} ms (over a whole copy {:.1} ms)\n\
             ... its separations with evidence     {:.1} ms (walking every entry {:.1} ms)\n",
            self.events,
            self.decode_events_per_s,
            self.fold_events_per_s,
            self.encode_events_per_s,
            self.rss_bytes_per_event,
            self.watch_ms,
            self.watch_locked_ms,
            self.watch_copy_ms,
            self.watch_inputs_ms,
            self.watch_population_ms,
            self.watch_evaluation_ms,
            self.tally_cells,
            self.tally_snapshots,
            self.as_of_tallies_ms,
            self.small_tenant_events,
            self.small_tenant_watch_ms,
            self.small_tenant_whole_copy_ms,
            self.small_tenant_evidence_ms,
            self.small_tenant_evidence_walk_ms,
        )
    }
}

/// Runs the fold benchmark over `events` generated events.
///
/// # Errors
/// An event that does not convert (a bug in the generator).
pub fn fold(events: u64, packs: &[wfl_projector::RulePack]) -> anyhow::Result<FoldReport> {
    use prost::Message;
    let generator = crate::loadgen::Generator::new(Mix::Restructuring, "bench", "fold")
        .map_err(|e| anyhow!(e))?;
    let mut encoded = Vec::with_capacity(events as usize);
    for (i, e) in generator.events(0, events).iter().enumerate() {
        encoded.push(
            pb::CommittedEvent {
                sequence: i as u64 + 1,
                event: Some(wfl_proto::convert::event_to_pb(e)),
                ..Default::default()
            }
            .encode_to_vec(),
        );
    }
    let t = Instant::now();
    let mut decoded = Vec::with_capacity(encoded.len());
    for bytes in &encoded {
        let c = pb::CommittedEvent::decode(bytes.as_slice())?;
        let e = c
            .event
            .ok_or_else(|| anyhow!("event {} has no body", c.sequence))?;
        decoded.push(
            wfl_proto::convert::event_from_pb(e)
                .map_err(|v| anyhow!("event {} does not convert: {v}", c.sequence))?,
        );
    }
    let decode_s = t.elapsed().as_secs_f64();
    drop(encoded);

    // The follower gives each decoded event away to the fold: so does this.
    let n = decoded.len() as f64;
    let owned = decoded.clone();
    let rss_before = rss_bytes();
    let mut p = wfl_projections::views::Projection::new();
    let t = Instant::now();
    for (i, e) in owned.into_iter().enumerate() {
        p.apply_owned(i as u64 + 1, e);
    }
    let fold_events_per_s = n / t.elapsed().as_secs_f64().max(1e-9);
    let rss_growth = rss_bytes().saturating_sub(rss_before);

    // Encoding as the store does it, from a fresh fold cut every 1,000 events.
    let mut q = wfl_projections::views::Projection::new();
    let mut encode_s = 0.0;
    for (i, e) in decoded.iter().enumerate() {
        q.apply(i as u64 + 1, e);
        if (i + 1) % 1000 == 0 || i + 1 == decoded.len() {
            let t = Instant::now();
            let changes = q.take_changes();
            let mut bytes = 0usize;
            wfl_projector::encode_changes(&changes, &mut |key, value| {
                bytes += key.len() + value.len();
            });
            std::hint::black_box(bytes);
            encode_s += t.elapsed().as_secs_f64();
        }
    }
    drop(q);

    let t = Instant::now();
    let as_of = p
        .latest_effective_date(None)
        .ok_or_else(|| anyhow!("nothing folded"))?;
    let (rows, timing) = wfl_projector::watch_rows_timed(&p, packs, None, as_of);
    std::hint::black_box(rows);
    let watch_ms = t.elapsed().as_secs_f64() * 1e3;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let watch_locked_ms = ms(timing.longest_hold);

    let every = wfl_projections::views::DEFAULT_SNAPSHOT_EVERY;
    let midway = (decoded.len() as u64 / every / 2) * every + every / 2;
    let t = Instant::now();
    let answer = p.read_at(midway, |at| {
        at.separation_counts(&wfl_projections::views::Query::default())
    });
    std::hint::black_box(answer);
    let as_of_tallies_ms = t.elapsed().as_secs_f64() * 1e3;

    // A second tenant, a hundredth of the first's size, folded after it: its threshold watch
    // (as `ThresholdWatch` for it, and the alert loop when only it changed, compute it) reads
    // its own copy; the whole-state copy every org's watch read before is timed beside it.
    let small = (decoded.len() as u64 / 100).max(1_000);
    let tenant = crate::loadgen::Generator::new(Mix::Restructuring, "bench-small", "fold")
        .map_err(|e| anyhow!(e))?;
    let base = p.last_sequence();
    for (i, e) in tenant.events(0, small).into_iter().enumerate() {
        p.apply_owned(base + i as u64 + 1, e);
    }
    let org = tenant.org.clone();
    let as_of = p
        .latest_effective_date(Some(&org))
        .ok_or_else(|| anyhow!("nothing folded"))?;
    let t = Instant::now();
    let (own, _) = wfl_projector::watch_rows_timed(&p, packs, Some(&org), as_of);
    let small_tenant_watch_ms = t.elapsed().as_secs_f64() * 1e3;
    // The copy is part of the old path's cost, and is read again below.
    let t = Instant::now();
    let snapshot = p.snapshot();
    let whole = wfl_projector::watch_rows(&snapshot, packs, Some(&org), as_of);
    let small_tenant_whole_copy_ms = t.elapsed().as_secs_f64() * 1e3;
    anyhow::ensure!(
        own == whole,
        "the small tenant's watch over its own copy differs from the whole state's"
    );
    // Its separations with their evidence (what the first page of an `Explain` of one of its
    // figures computes, in place under the read lock): through its runs, and walking every
    // entry as a state without the org index does.
    let q = wfl_projections::views::Query {
        org: Some(org.clone()),
        ..Default::default()
    };
    let t = Instant::now();
    let own = p.separations(&q);
    let small_tenant_evidence_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let whole = snapshot.separations(&q);
    let small_tenant_evidence_walk_ms = t.elapsed().as_secs_f64() * 1e3;
    anyhow::ensure!(
        own == whole,
        "the small tenant's separations through its runs differ from a walk of every entry"
    );

    Ok(FoldReport {
        tally_cells: p.tally_cells() as u64,
        tally_snapshots: p.tally_snapshots() as u64,
        as_of_tallies_ms,
        small_tenant_events: small,
        small_tenant_watch_ms,
        small_tenant_whole_copy_ms,
        small_tenant_evidence_ms,
        small_tenant_evidence_walk_ms,
        events: decoded.len() as u64,
        decode_events_per_s: n / decode_s,
        fold_events_per_s,
        encode_events_per_s: n / encode_s.max(1e-9),
        watch_locked_ms,
        watch_copy_ms: ms(timing.copy),
        watch_inputs_ms: ms(timing.inputs),
        watch_population_ms: ms(timing.population),
        watch_evaluation_ms: ms(timing.evaluation),
        rss_bytes_per_event: rss_growth as f64 / n,
        watch_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::{histogram_quantile, rate_between};

    #[test]
    fn a_load_rate_is_taken_between_the_samples_around_the_stretch() {
        // 0 → 100 in the first second, then 100 more every 2 s.
        let heads = [(0.0, 0), (0.5, 40), (1.0, 100), (3.0, 200), (5.0, 300)];
        assert_eq!(rate_between(&heads, 0, 100), 100.0);
        assert_eq!(rate_between(&heads, 200, 300), 50.0);
        // From the last sample at or below 50 (40 at 0.5 s) to the first at or above 150.
        assert_eq!(rate_between(&heads, 50, 150), 160.0 / 2.5);
        assert_eq!(rate_between(&heads, 0, 400), 0.0, "not reached: no rate");
        assert_eq!(rate_between(&[], 0, 10), 0.0);
    }

    #[test]
    fn the_quantile_of_a_histogram_is_the_bound_of_the_bucket_holding_it() {
        let body = "wfl_view_lag_seconds_bucket{le=\"0.1\"} 90\n\
                    wfl_view_lag_seconds_bucket{le=\"0.5\"} 98\n\
                    wfl_view_lag_seconds_bucket{le=\"1\"} 100\n\
                    wfl_view_lag_seconds_bucket{le=\"+Inf\"} 100\n\
                    wfl_view_lag_seconds_sum 12.5\n";
        assert_eq!(histogram_quantile(body, "wfl_view_lag_seconds", 0.5), 0.1);
        assert_eq!(histogram_quantile(body, "wfl_view_lag_seconds", 0.99), 1.0);
        assert_eq!(histogram_quantile("", "wfl_view_lag_seconds", 0.99), 0.0);
        let slow = "x_bucket{le=\"1\"} 1\nx_bucket{le=\"+Inf\"} 10\n";
        assert_eq!(histogram_quantile(slow, "x", 0.99), f64::INFINITY);
    }
}
