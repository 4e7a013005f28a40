//! Shared harness of the end-to-end tests: real `wfl` processes on loopback ports, real
//! nats-servers, gRPC clients, and the checks every suite makes on a replayed ledger.
#![allow(dead_code)] // each test binary uses a different part of the harness

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Once;

use prost::Message;
use sha2::{Digest, Sha256};
use tonic::transport::Channel;
use wfl_proto::pb;
use wfl_testkit::NatsServer;

/// How long a process started by [`Proc`] may take to print its listening line: far beyond any
/// start seen (a ledger opening and checking its store takes seconds), short of the test's
/// own timeout.
const START_BOUND: std::time::Duration = std::time::Duration::from_secs(120);

/// Which bus the node under test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Memory,
    Nats,
}

/// A binary of the workspace, built on first use if the test run did not build it.
/// Removes the test runner's package variables from a `cargo` command: ring's build script
/// reruns when they change, so inheriting them would rebuild the whole TLS stack (minutes on a
/// busy machine).
pub fn without_package_env(cmd: &mut Command) {
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if [
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
            "CARGO_CRATE_",
            "CARGO_BIN_",
            "CARGO_PRIMARY_",
        ]
        .iter()
        .any(|p| name.starts_with(p))
            || name == "CARGO_TARGET_TMPDIR"
        {
            cmd.env_remove(name.as_ref());
        }
    }
}

pub fn bin(name: &str) -> PathBuf {
    static BUILD: Once = Once::new();
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf();
    let path = dir.join(name);
    BUILD.call_once(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build
            .args(["build", "--workspace", "--bins"])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        // The test runner sets the package variables of wfl-tests; ring's build script reruns
        // when they change, so inheriting them would rebuild the TLS stack on every test run.
        without_package_env(&mut build);
        let status = build.status().expect("cargo build runs");
        assert!(status.success(), "building the wfl binaries failed");
    });
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// A child process that is killed (SIGKILL) when dropped.
pub struct Proc {
    pub child: Child,
    pub grpc: String,
    pub http: Option<String>,
    pub log: PathBuf,
}

impl Proc {
    /// One figure of this process's `/metrics` (0 when absent).
    pub fn metric(&self, name: &str) -> u64 {
        let text = http_get(self.http.as_deref().expect("an http address"), "/metrics");
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Starts `bin args...` and waits for its "listening" line on stdout.
    pub fn start(name: &str, args: &[String], log_dir: &Path) -> Proc {
        Proc::start_in(None, name, args, log_dir)
    }

    /// As [`Proc::start`], inside network namespace `netns` when given (`ip netns exec`, which
    /// execs the binary: the child's pid is the binary's).
    pub fn start_in(netns: Option<&str>, name: &str, args: &[String], log_dir: &Path) -> Proc {
        Proc::start_inner(netns, name, args, log_dir, true)
    }

    /// As [`Proc::start`], with transport and authentication as the arguments say (`--insecure`
    /// or `--tls-cert`, and a `--tokens-file`): the process is told neither `WFL_INSECURE` nor
    /// `WFL_NO_AUTH`.
    pub fn start_authenticated(name: &str, args: &[String], log_dir: &Path) -> Proc {
        Proc::start_inner(None, name, args, log_dir, false)
    }

    fn start_inner(
        netns: Option<&str>,
        name: &str,
        args: &[String],
        log_dir: &Path,
        open: bool,
    ) -> Proc {
        std::fs::create_dir_all(log_dir).expect("log dir");
        let log = log_dir.join(format!("{name}-{}.log", uuid::Uuid::now_v7()));
        let err = std::fs::File::create(&log).expect("log file");
        // Every process serves HTTP (`/healthz`, `/metrics`): on a free port unless the test
        // chose one, so tests running in parallel never collide on the defaults.
        let mut args = args.to_vec();
        if name.starts_with("wfl-") && !args.iter().any(|a| a == "--http-addr") {
            args.extend(["--http-addr".to_owned(), "127.0.0.1:0".to_owned()]);
        }
        let mut command = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(bin(name));
                c
            }
            None => Command::new(bin(name)),
        };
        if name.starts_with("wfl-") {
            // The split services serve plain and open on loopback only when asked (SECURITY.md);
            // tests/auth.rs checks them with TLS and tokens.
            if open {
                command.env("WFL_INSECURE", "1").env("WFL_NO_AUTH", "1");
            }
        }
        let mut child = command
            .args(&args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let stdout = child.stdout.take().expect("stdout");
        // The first line, read on a thread that then keeps draining stdout (so the child never
        // blocks on a full pipe), waited for with a bound: a process that neither listens nor
        // exits fails the test with its log instead of hanging it.
        let (first, listening) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = first.send(lines.next().and_then(Result::ok));
            for _ in lines {}
        });
        let line = match listening.recv_timeout(START_BOUND) {
            Ok(Some(l)) => l,
            outcome => {
                let _ = child.kill();
                let _ = child.wait();
                let what = match outcome {
                    Err(_) => format!("did not say it listens within {START_BOUND:?}"),
                    Ok(_) => "exited before listening".to_owned(),
                };
                panic!(
                    "{name} {what}; log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
        };
        let field = |key: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(key))
                .map(|a| format!("http://{a}"))
        };
        let grpc = field("grpc=").unwrap_or_else(|| panic!("no grpc address in {line:?}"));
        Proc {
            child,
            grpc,
            http: field("http="),
            log,
        }
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().expect("wait")
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts `wfl up` on loopback ports with its data in `dir/data`, its log in `dir/logs` and the
/// repository's rule packs, plus `extra` arguments.
pub fn up(dir: &Path, extra: &[&str]) -> Proc {
    let data = dir.join("data").display().to_string();
    let rulepacks = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../rulepacks")
        .display()
        .to_string();
    let mut args: Vec<String> = [
        "up",
        "--data-dir",
        &data,
        "--grpc-addr",
        "127.0.0.1:0",
        "--http-addr",
        "127.0.0.1:0",
        "--rulepacks",
        &rulepacks,
    ]
    .map(String::from)
    .to_vec();
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    Proc::start("wfl", &args, &dir.join("logs"))
}

/// A single-node wfl (`wfl up`) on loopback, with its own data dir and, in NATS mode, its own
/// nats-server.
pub struct Node {
    pub mode: Mode,
    pub dir: tempfile::TempDir,
    pub nats: Option<NatsServer>,
    pub proc: Proc,
}

impl Node {
    pub fn start(mode: Mode) -> Node {
        let dir = wfl_testkit::temp_dir();
        let nats = (mode == Mode::Nats).then(NatsServer::start);
        let proc = Self::spawn(dir.path(), nats.as_ref());
        Node {
            mode,
            dir,
            nats,
            proc,
        }
    }

    fn spawn(dir: &Path, nats: Option<&NatsServer>) -> Proc {
        match nats {
            Some(n) => up(dir, &["--nats-url", &n.url()]),
            None => up(dir, &[]),
        }
    }

    /// Kills the node with SIGKILL and starts it again on the same data (and NATS).
    pub fn restart_hard(&mut self) {
        self.proc.kill();
        self.proc = Self::spawn(self.dir.path(), self.nats.as_ref());
    }

    pub async fn channel(&self) -> Channel {
        connect(&self.proc.grpc).await
    }
}

pub async fn connect(addr: &str) -> Channel {
    Channel::from_shared(addr.to_owned())
        .expect("uri")
        .connect()
        .await
        .expect("connect to wfl")
}

pub fn ingest(ch: &Channel) -> pb::ingest_client::IngestClient<Channel> {
    pb::ingest_client::IngestClient::new(ch.clone())
        .max_encoding_message_size(64 << 20)
        .max_decoding_message_size(64 << 20)
}

pub fn ledger(ch: &Channel) -> pb::ledger_client::LedgerClient<Channel> {
    pb::ledger_client::LedgerClient::new(ch.clone()).max_decoding_message_size(64 << 20)
}

pub fn wire(e: &wfl_domain::Event) -> pb::Event {
    wfl_proto::convert::event_to_pb(e)
}

/// Records a batch and returns its per-item results.
pub async fn record_batch(ch: &Channel, events: &[wfl_domain::Event]) -> pb::RecordBatchResponse {
    ingest(ch)
        .record_batch(pb::RecordBatchRequest {
            events: events.iter().map(wire).collect(),
            ack: pb::AckLevel::Committed as i32,
            include_proof: false,
        })
        .await
        .expect("RecordBatch call succeeds")
        .into_inner()
}

/// Everything in the ledger, in order.
pub async fn replay(ch: &Channel) -> Vec<pb::CommittedEvent> {
    let mut stream = ledger(ch)
        .read(pb::ReadRequest::default())
        .await
        .expect("Read")
        .into_inner();
    let mut out = Vec::new();
    while let Some(item) = stream.message().await.expect("Read stream") {
        out.push(item);
    }
    out
}

/// Checks sequences are 1..=n without gaps, the hash chain links and every hash recomputes.
pub fn assert_valid_chain(events: &[pb::CommittedEvent]) {
    let mut prev = vec![0u8; 32];
    for (i, c) in events.iter().enumerate() {
        assert_eq!(
            c.sequence,
            i as u64 + 1,
            "sequence gap or disorder at index {i}"
        );
        assert_eq!(
            c.prev_hash, prev,
            "prev_hash does not link at sequence {}",
            c.sequence
        );
        let mut stored = c.clone();
        stored.prev_hash.clear();
        stored.hash.clear();
        let mut h = Sha256::new();
        h.update(&prev);
        h.update(stored.encode_to_vec());
        assert_eq!(
            h.finalize().to_vec(),
            c.hash,
            "hash does not recompute at sequence {}",
            c.sequence
        );
        prev = c.hash.clone();
    }
}

/// The committed response of an item, or a panic naming the error.
pub fn ok(item: &pb::ItemResult) -> &pb::RecordResponse {
    match &item.outcome {
        Some(pb::item_result::Outcome::Ok(r)) => r,
        other => panic!("item {} not ok: {other:?}", item.index),
    }
}

/// The error of an item, or a panic.
pub fn err(item: &pb::ItemResult) -> &pb::ItemError {
    match &item.outcome {
        Some(pb::item_result::Outcome::Error(e)) => e,
        other => panic!("item {} should have failed: {other:?}", item.index),
    }
}

/// A plain HTTP/1.1 GET on loopback (for `/metrics` and `/healthz`), returning the body.
pub fn http_get(base: &str, path: &str) -> String {
    http_get_status(base, path).1
}

/// A plain HTTP/1.1 GET on loopback, returning the status code and the body.
pub fn http_get_status(base: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let host = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(host).expect("connect http");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    let code = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {out:?}"));
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (code, body)
}

/// Opens a Subscribe stream.
pub async fn subscribe(ch: &Channel, from: u64) -> tonic::Streaming<pb::SubscribeResponse> {
    ledger(ch)
        .subscribe(pb::SubscribeRequest {
            from_sequence: from,
            heartbeat_ms: 200,
            ..Default::default()
        })
        .await
        .expect("Subscribe")
        .into_inner()
}

/// The next event of a subscription, skipping heartbeats; None when the stream ends or breaks.
pub async fn next_event(
    stream: &mut tonic::Streaming<pb::SubscribeResponse>,
) -> Option<Result<pb::CommittedEvent, tonic::Status>> {
    loop {
        match stream.message().await {
            Ok(Some(pb::SubscribeResponse {
                kind: Some(pb::subscribe_response::Kind::Event(c)),
            })) => return Some(Ok(c)),
            Ok(Some(_)) => continue,
            Ok(None) => return None,
            Err(s) => return Some(Err(s)),
        }
    }
}

/// A `RecordBatch` call under faults failed as a whole: the server said "retry", or the
/// connection broke under the call (a process killed mid-request: tonic reports a transport, h2
/// or broken-pipe failure as UNKNOWN or CANCELLED, codes wfl itself never answers). The outcome
/// is unknown and the client retries the ids; anything else fails the test.
pub fn assert_retryable(s: &tonic::Status) {
    let broken = std::error::Error::source(s)
        .is_some_and(|e| e.downcast_ref::<tonic::transport::Error>().is_some())
        || matches!(s.code(), tonic::Code::Unknown | tonic::Code::Cancelled);
    assert!(s.code() == tonic::Code::Unavailable || broken, "{s:?}");
}

/// The items of a COMMITTED `RecordBatch` answer under faults: the committed ones (event and
/// answer) and the events to retry with the same ids (an item may fail only as UNAVAILABLE).
pub fn committed_and_retry<'a>(
    batch: &'a [wfl_domain::Event],
    r: &'a pb::RecordBatchResponse,
) -> (
    Vec<(&'a wfl_domain::Event, &'a pb::RecordResponse)>,
    Vec<wfl_domain::Event>,
) {
    let mut committed = Vec::new();
    let mut retry = Vec::new();
    for (item, event) in r.results.iter().zip(batch) {
        match &item.outcome {
            Some(pb::item_result::Outcome::Ok(o)) => {
                assert!(o.sequence > 0);
                committed.push((event, o));
            }
            Some(pb::item_result::Outcome::Error(e)) => {
                assert_eq!(
                    e.code,
                    tonic::Code::Unavailable as i32,
                    "only unavailability may fail an item: {e:?}"
                );
                retry.push(event.clone());
            }
            None => panic!("item without outcome"),
        }
    }
    (committed, retry)
}

/// `wfl token add`: the token it prints (once, on stdout).
pub fn token_add(file: &Path, name: &str, role: &str, orgs: &[&str]) -> String {
    let mut args = vec![
        "token".to_owned(),
        "add".into(),
        "--role".into(),
        role.into(),
        "--name".into(),
        name.into(),
        "--tokens-file".into(),
        file.display().to_string(),
    ];
    for o in orgs {
        args.extend(["--org".to_owned(), (*o).to_owned()]);
    }
    let out = std::process::Command::new(bin("wfl"))
        .args(&args)
        .output()
        .expect("wfl token add runs");
    assert!(
        out.status.success(),
        "wfl token add failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_owned();
    assert!(token.starts_with("wfl_") && token.len() == 68, "{token:?}");
    token
}
