//! `wfl key`, `wfl export` and `wfl verify`: what an auditor runs.
//!
//! Owns: the export directory format (below), the resumable streaming export from a running
//! ledger over gRPC, and the offline verifier of an export or of a stopped node's data dir.
//!
//! Must not: write to a ledger, or trust anything in an export but the public key it is told to
//! pin (`--key`); the export's own `public_key.hex` is only used when no key is pinned.
//!
//! # Export directory
//!
//! ```text
//! events.pb        each event as a length-delimited wfl.v1.CommittedEvent, as Ledger.Read returns
//!                  it; its encoding is the record's stored bytes (fields 1-3) followed by
//!                  prev_hash (4) and hash (5), so the verifier hashes the bytes as they are
//! events.jsonl     the same events as JSON lines (`wfl replay` format)
//! checkpoints.pb   every signed checkpoint within the export, length-delimited wfl.v1.SignedCheckpoint
//! public_key.hex   the ledger's ed25519 public key
//! manifest.json    counts, last sequence, head hash, Merkle root, SHA-256 of each file
//! ```
//!
//! `wfl verify` recomputes the chain (`SHA-256(prev_hash || stored bytes)`) and the RFC 9162
//! Merkle root of every prefix a checkpoint names, checks every checkpoint's signature, root and
//! head hash (so consecutive checkpoints are roots of prefixes of one sequence of events, i.e.
//! consistent), the JSON lines against the protobuf stream, and the manifest.

// `u64::is_multiple_of` needs Rust 1.87; the workspace supports 1.85.
#![allow(clippy::manual_is_multiple_of)]

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, bail, Context};
use ed25519_dalek::VerifyingKey;
use futures::StreamExt;
use prost::Message;
use serde_json::json;
use sha2::{Digest, Sha256};
use wfl_ledger::checkpoint::{self, SignedCheckpoint};
use wfl_proto::pb;
use wfl_store::merkle::{self, Frontier};
use wfl_store::{chain_hash, Hash, Log, ZERO_HASH};

use crate::client::{connect, describe_status};

pub const EVENTS_PB: &str = "events.pb";
pub const EVENTS_JSONL: &str = "events.jsonl";
pub const CHECKPOINTS_PB: &str = "checkpoints.pb";
pub const PUBLIC_KEY: &str = "public_key.hex";
pub const MANIFEST: &str = "manifest.json";
const FORMAT: &str = "wfl-export-v1";

/// `wfl key`: the hex public key of the signing key at `key` (default: the data dir's).
///
/// # Errors
/// When the key file is missing or unreadable.
pub fn public_key_hex(data_dir: &Path, key: Option<&Path>) -> anyhow::Result<String> {
    let path = key.map_or_else(|| checkpoint::default_key_path(data_dir), Path::to_path_buf);
    let signer = checkpoint::Signer::load(&path).map_err(|e| {
        anyhow!(
            "{e} (the ledger creates its key on first start: `wfl up --data-dir {}`)",
            data_dir.display()
        )
    })?;
    Ok(hex::encode(signer.public().as_bytes()))
}

/// The outcome of a verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Events that verified, in order from sequence 1.
    pub events: u64,
    /// Checkpoints whose signature, root and head hash verified.
    pub checkpoints: u64,
    /// Merkle root of the verified events.
    pub root: Hash,
    /// `None` when everything verified; otherwise the first bad sequence (0 when the failure is
    /// not tied to one record) and what failed.
    pub failure: Option<(u64, String)>,
}

impl Verdict {
    fn fail(mut self, sequence: u64, detail: impl Into<String>) -> Verdict {
        self.failure = Some((sequence, detail.into()));
        self
    }

    /// One human line.
    #[must_use]
    pub fn describe(&self) -> String {
        match &self.failure {
            None => format!(
                "OK: {} events verified (hash chain and Merkle root {}), {} signed checkpoints verified and consistent",
                self.events,
                hex::encode(self.root),
                self.checkpoints
            ),
            Some((sequence, detail)) => format!(
                "FAILED: first bad sequence {sequence}: {detail} ({} events verified before it)",
                self.events
            ),
        }
    }
}

/// One parsed `events.pb` frame.
struct Frame<'a> {
    sequence: u64,
    stored: &'a [u8],
    prev_hash: &'a [u8],
    hash: &'a [u8],
}

fn read_varint(buf: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *buf.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// Split a CommittedEvent encoding into the stored bytes (fields 1-3) and the two hash fields,
/// without decoding the event.
fn parse_frame(buf: &[u8]) -> Option<Frame<'_>> {
    let mut at = 0;
    let mut sequence = 0;
    let mut stored_end = None;
    let (mut prev_hash, mut hash) = (None, None);
    while at < buf.len() {
        let field_start = at;
        let tag = read_varint(buf, &mut at)?;
        let (number, wire) = (tag >> 3, tag & 7);
        match wire {
            0 => {
                let v = read_varint(buf, &mut at)?;
                if number == 1 {
                    sequence = v;
                }
            }
            2 => {
                let len = usize::try_from(read_varint(buf, &mut at)?).ok()?;
                let value = buf.get(at..at.checked_add(len)?)?;
                at += len;
                match number {
                    4 => {
                        stored_end.get_or_insert(field_start);
                        prev_hash = Some(value);
                    }
                    5 => {
                        stored_end.get_or_insert(field_start);
                        hash = Some(value);
                    }
                    _ if stored_end.is_some() => return None,
                    _ => {}
                }
            }
            1 => at = at.checked_add(8)?,
            5 => at = at.checked_add(4)?,
            _ => return None,
        }
        if number <= 3 && stored_end.is_some() {
            return None;
        }
    }
    Some(Frame {
        sequence,
        stored: buf.get(..stored_end?)?,
        prev_hash: prev_hash?,
        hash: hash?,
    })
}

/// Reads length-delimited frames.
struct Frames<R> {
    reader: R,
    buf: Vec<u8>,
    /// Bytes consumed so far (end of the last complete frame).
    offset: u64,
}

impl<R: BufRead> Frames<R> {
    fn new(reader: R) -> Self {
        Frames {
            reader,
            buf: Vec::new(),
            offset: 0,
        }
    }

    /// The next frame; `Ok(None)` at a clean end; `Err` (with the offset) for a torn frame.
    fn next(&mut self) -> Result<Option<&[u8]>, String> {
        let mut len: u64 = 0;
        let mut prefix = 0u64;
        for shift in (0..64).step_by(7) {
            let mut byte = [0u8; 1];
            match self.reader.read(&mut byte) {
                Ok(0) if shift == 0 => return Ok(None),
                Ok(0) => return Err(format!("torn length prefix at byte {}", self.offset)),
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
            prefix += 1;
            len |= u64::from(byte[0] & 0x7f) << shift;
            if byte[0] & 0x80 == 0 {
                break;
            }
        }
        let len = usize::try_from(len).map_err(|_| "frame too large".to_owned())?;
        if len > 256 << 20 {
            return Err(format!("frame of {len} bytes at byte {}", self.offset));
        }
        self.buf.resize(len, 0);
        self.reader
            .read_exact(&mut self.buf)
            .map_err(|_| format!("torn frame at byte {}", self.offset))?;
        self.offset += prefix + len as u64;
        Ok(Some(&self.buf))
    }
}

fn sha256_file(path: &Path) -> anyhow::Result<String> {
    let mut file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// What an interrupted export left behind that is still good: events `1..=count`, the end of
/// their frames and lines, and the chain state after them.
struct Resume {
    count: u64,
    pb_len: u64,
    jsonl_len: u64,
    prev: Hash,
}

fn resume_point(dir: &Path) -> anyhow::Result<Resume> {
    let mut resume = Resume {
        count: 0,
        pb_len: 0,
        jsonl_len: 0,
        prev: ZERO_HASH,
    };
    let (Ok(pb), Ok(jsonl)) = (
        File::open(dir.join(EVENTS_PB)),
        File::open(dir.join(EVENTS_JSONL)),
    ) else {
        return Ok(resume);
    };
    let mut frames = Frames::new(BufReader::with_capacity(1 << 20, pb));
    let mut lines = BufReader::with_capacity(1 << 20, jsonl);
    let mut line = String::new();
    while let Ok(Some(buf)) = frames.next() {
        let Some(frame) = parse_frame(buf) else { break };
        let hash = chain_hash(&resume.prev, frame.stored);
        if frame.sequence != resume.count + 1
            || frame.prev_hash != resume.prev
            || frame.hash != hash
        {
            break;
        }
        line.clear();
        let n = lines.read_line(&mut line)?;
        if n == 0 || !line.ends_with('\n') {
            break;
        }
        resume.count += 1;
        resume.prev = hash;
        resume.pb_len = frames.offset;
        resume.jsonl_len += n as u64;
    }
    Ok(resume)
}

/// Summary of an export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSummary {
    pub events: u64,
    pub resumed_from: u64,
    pub checkpoints: u64,
}

/// `wfl export --to DIR`: streams the ledger at `addr` into `dir`, resuming after the events a
/// previous (interrupted or complete) export already holds.
///
/// # Errors
/// When the ledger cannot be reached, the stream breaks (run again to resume), or `dir` cannot be
/// written.
pub async fn export(addr: &str, dir: &Path, progress: bool) -> anyhow::Result<ExportSummary> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut client = pb::ledger_client::LedgerClient::new(connect(addr).await?)
        .max_decoding_message_size(64 << 20);
    let status = |s: tonic::Status| anyhow!("{}", describe_status(&s));
    let key = client
        .get_public_key(pb::PublicKeyRequest {})
        .await
        .map_err(status)?
        .into_inner();
    let key_hex = hex::encode(&key.public_key);
    let key_path = dir.join(PUBLIC_KEY);
    if let Ok(existing) = fs::read_to_string(&key_path) {
        if existing.trim() != key_hex {
            bail!(
                "{} holds another ledger's key ({}); export to an empty directory",
                key_path.display(),
                existing.trim()
            );
        }
    }
    fs::write(&key_path, format!("{key_hex}\n"))?;

    let resume = resume_point(dir)?;
    let head = client
        .head(pb::HeadRequest {})
        .await
        .map_err(status)?
        .into_inner()
        .sequence;
    let mut pb_file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(dir.join(EVENTS_PB))?;
    pb_file.set_len(resume.pb_len)?;
    pb_file.seek(SeekFrom::End(0))?;
    let mut jsonl_file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(dir.join(EVENTS_JSONL))?;
    jsonl_file.set_len(resume.jsonl_len)?;
    jsonl_file.seek(SeekFrom::End(0))?;
    let mut pb_out = BufWriter::with_capacity(1 << 20, pb_file);
    let mut jsonl_out = BufWriter::with_capacity(1 << 20, jsonl_file);

    let mut count = resume.count;
    let mut last_hash = resume.prev;
    if head > count {
        let mut stream = client
            .read(pb::ReadRequest {
                from_sequence: count + 1,
                to_sequence: head,
                org_ids: vec![],
                event_types: vec![],
                limit: 0,
                as_of_recorded_at_micros: 0,
                max_batch: 0,
            })
            .await
            .map_err(status)?
            .into_inner();
        let started = Instant::now();
        let mut line = Vec::new();
        while let Some(item) = stream.next().await {
            let c = item.map_err(|s| {
                anyhow!(
                    "export interrupted after {count} events (run it again to resume): {}",
                    describe_status(&s)
                )
            })?;
            if c.sequence != count + 1 {
                bail!("the ledger sent sequence {} after {count}", c.sequence);
            }
            pb_out.write_all(&c.encode_length_delimited_to_vec())?;
            count = c.sequence;
            last_hash = c.hash.as_slice().try_into().unwrap_or(ZERO_HASH);
            line.clear();
            crate::jsonl::push_line(&mut line, c)?;
            jsonl_out.write_all(&line)?;
            if progress && (count % 10_000 == 0 || count == head) {
                let rate =
                    (count - resume.count) as f64 / started.elapsed().as_secs_f64().max(1e-9);
                eprint!(
                    "\rexport: {count}/{head} events ({:.0}%, {rate:.0} events/s)",
                    100.0 * count as f64 / head as f64
                );
            }
        }
        if progress {
            eprintln!();
        }
    }
    // Flushed and synced before the manifest names them.
    pb_out
        .into_inner()
        .map_err(|e| e.into_error())?
        .sync_all()?;
    jsonl_out
        .into_inner()
        .map_err(|e| e.into_error())?
        .sync_all()?;

    let mut checkpoints = client
        .list_checkpoints(pb::ListCheckpointsRequest { from_size: 1 })
        .await
        .map_err(status)?
        .into_inner();
    let mut cp_out = BufWriter::new(File::create(dir.join(CHECKPOINTS_PB))?);
    let mut cp_count = 0;
    let mut root = None;
    while let Some(item) = checkpoints.next().await {
        let cp = item.map_err(status)?;
        if cp.tree_size > count {
            break;
        }
        if cp.tree_size == count {
            root = Some(cp.root_hash.clone());
        }
        cp_out.write_all(&cp.encode_length_delimited_to_vec())?;
        cp_count += 1;
    }
    cp_out
        .into_inner()
        .map_err(|e| e.into_error())?
        .sync_all()?;
    let root = match root {
        Some(r) => r,
        None if count == 0 => merkle::empty_root().to_vec(),
        None => {
            client
                .get_consistency_proof(pb::ConsistencyProofRequest {
                    old_size: count,
                    new_size: count,
                })
                .await
                .map_err(status)?
                .into_inner()
                .new_root
        }
    };

    let manifest = json!({
        "format": FORMAT,
        "events": count,
        "last_sequence": count,
        "head_hash": hex::encode(last_hash),
        "merkle_root": hex::encode(root),
        "checkpoints": cp_count,
        "public_key": key_hex,
        "files": {
            EVENTS_PB: sha256_file(&dir.join(EVENTS_PB))?,
            EVENTS_JSONL: sha256_file(&dir.join(EVENTS_JSONL))?,
            CHECKPOINTS_PB: sha256_file(&dir.join(CHECKPOINTS_PB))?,
        },
    });
    let tmp = dir.join(format!("{MANIFEST}.tmp"));
    fs::write(&tmp, serde_json::to_vec_pretty(&manifest)?)?;
    fs::rename(&tmp, dir.join(MANIFEST))?;
    Ok(ExportSummary {
        events: count,
        resumed_from: resume.count,
        checkpoints: cp_count,
    })
}

/// `wfl verify DIR|DATA_DIR`: an export (it has a manifest) or a stopped node's data dir.
///
/// # Errors
/// Only when `target` is neither (verification failures are in the [`Verdict`]).
pub fn verify(target: &Path, pinned: Option<&str>, progress: bool) -> anyhow::Result<Verdict> {
    let pinned = pinned
        .map(|h| {
            hex::decode(h.trim())
                .map_err(|e| anyhow!("--key: not hex: {e}"))
                .and_then(|b| checkpoint::public_key(&b).map_err(|e| anyhow!("--key: {e}")))
        })
        .transpose()?;
    if target.join(MANIFEST).exists() || target.join(EVENTS_PB).exists() {
        verify_export(target, pinned.as_ref(), progress)
    } else if target.join("ledger").is_dir() {
        verify_data_dir(target, pinned.as_ref(), progress)
    } else {
        bail!(
            "{} is neither an export (no {MANIFEST}) nor a data dir (no ledger/)",
            target.display()
        )
    }
}

fn empty_verdict() -> Verdict {
    Verdict {
        events: 0,
        checkpoints: 0,
        root: merkle::empty_root(),
        failure: None,
    }
}

/// Signed checkpoints, checked against the key; sizes strictly increasing.
fn check_checkpoints(
    list: Vec<SignedCheckpoint>,
    key: &VerifyingKey,
    verdict: Verdict,
) -> Result<(Vec<SignedCheckpoint>, Verdict), Verdict> {
    let mut last = 0;
    for cp in &list {
        let size = cp.checkpoint.tree_size;
        if !cp.verify(key) {
            return Err(verdict.fail(
                size,
                format!("the signature of the checkpoint at tree size {size} does not verify under key {}", hex::encode(key.as_bytes())),
            ));
        }
        if size <= last {
            return Err(verdict.fail(
                size,
                format!("checkpoint at tree size {size} follows one at {last}"),
            ));
        }
        last = size;
    }
    Ok((list, verdict))
}

fn verify_export(
    dir: &Path,
    pinned: Option<&VerifyingKey>,
    progress: bool,
) -> anyhow::Result<Verdict> {
    let mut verdict = empty_verdict();
    let manifest: serde_json::Value = match fs::read(dir.join(MANIFEST)) {
        Ok(bytes) => serde_json::from_slice(&bytes).context("manifest.json is not JSON")?,
        Err(_) => {
            return Ok(verdict.fail(
                0,
                "manifest.json is missing (an interrupted export? run it again)",
            ))
        }
    };
    if manifest["format"] != FORMAT {
        return Ok(verdict.fail(
            0,
            format!(
                "manifest format is {}, expected {FORMAT}",
                manifest["format"]
            ),
        ));
    }
    let key_hex = fs::read_to_string(dir.join(PUBLIC_KEY)).unwrap_or_default();
    let key = match hex::decode(key_hex.trim())
        .ok()
        .and_then(|b| checkpoint::public_key(&b).ok())
    {
        Some(k) => k,
        None => return Ok(verdict.fail(0, "public_key.hex does not hold an ed25519 public key")),
    };
    if let Some(p) = pinned {
        if p != &key {
            return Ok(verdict.fail(
                0,
                format!(
                    "the export's public key {} is not the pinned key {}",
                    hex::encode(key.as_bytes()),
                    hex::encode(p.as_bytes())
                ),
            ));
        }
    }
    let key = pinned.copied().unwrap_or(key);

    // Checkpoints (small): decode, check signatures.
    let mut list = Vec::new();
    let mut frames = Frames::new(BufReader::new(
        File::open(dir.join(CHECKPOINTS_PB)).context("checkpoints.pb is missing")?,
    ));
    loop {
        match frames.next() {
            Ok(Some(buf)) => {
                let m = pb::SignedCheckpoint::decode(buf);
                match m.ok().and_then(|m| SignedCheckpoint::from_pb(&m).ok()) {
                    Some(cp) => list.push(cp),
                    None => {
                        return Ok(verdict.fail(0, "checkpoints.pb holds a malformed checkpoint"))
                    }
                }
            }
            Ok(None) => break,
            Err(e) => return Ok(verdict.fail(0, format!("checkpoints.pb: {e}"))),
        }
    }
    let (list, v) = match check_checkpoints(list, &key, verdict) {
        Ok(ok) => ok,
        Err(failed) => return Ok(failed),
    };
    verdict = v;
    let mut pending = list.iter().peekable();

    // Events: one streaming pass over the protobuf frames; the JSON lines are checked against
    // the recomputed hashes on a second thread, in batches.
    let mut frames = Frames::new(BufReader::with_capacity(
        1 << 20,
        File::open(dir.join(EVENTS_PB)).context("events.pb is missing")?,
    ));
    let jsonl = File::open(dir.join(EVENTS_JSONL)).context("events.jsonl is missing")?;
    let (batches, batch_rx) = std::sync::mpsc::sync_channel::<Vec<Hash>>(16);
    let jsonl_check = std::thread::spawn(move || check_jsonl(jsonl, &batch_rx));
    let mut batch: Vec<Hash> = Vec::with_capacity(JSONL_BATCH);
    let mut frontier = Frontier::new();
    let mut prev = ZERO_HASH;
    let mut expected = 1u64;
    let started = Instant::now();
    let mut failure: Option<(u64, String)> = None;
    loop {
        let buf = match frames.next() {
            Ok(Some(buf)) => buf,
            Ok(None) => break,
            Err(e) => {
                failure = Some((expected, format!("events.pb: {e}")));
                break;
            }
        };
        let Some(frame) = parse_frame(buf) else {
            failure = Some((
                expected,
                "the record does not have the CommittedEvent shape".to_owned(),
            ));
            break;
        };
        if frame.sequence != expected {
            failure = Some((
                expected,
                format!(
                    "record says sequence {} (deleted, reordered or inserted records)",
                    frame.sequence
                ),
            ));
            break;
        }
        if frame.prev_hash != prev {
            failure = Some((
                expected,
                "prev_hash does not match the previous record's hash".to_owned(),
            ));
            break;
        }
        let hash = chain_hash(&prev, frame.stored);
        if frame.hash != hash {
            failure = Some((
                expected,
                "hash does not match SHA-256(prev_hash || stored bytes)".to_owned(),
            ));
            break;
        }
        batch.push(hash);
        if batch.len() == JSONL_BATCH {
            // A closed channel means the JSON lines already failed; the join below says where.
            let _ = batches.send(std::mem::replace(
                &mut batch,
                Vec::with_capacity(JSONL_BATCH),
            ));
        }
        frontier.push(merkle::leaf_hash(frame.stored));
        prev = hash;
        verdict.events = expected;
        while let Some(cp) = pending.peek() {
            if cp.checkpoint.tree_size != expected {
                break;
            }
            if cp.checkpoint.root != frontier.root() || cp.checkpoint.head_hash != hash {
                failure = Some((
                    expected,
                    format!("the records do not have the root and head hash signed at tree size {expected} (changed before it)"),
                ));
                break;
            }
            verdict.checkpoints += 1;
            pending.next();
        }
        if failure.is_some() {
            break;
        }
        if progress && expected % 100_000 == 0 {
            eprint!(
                "\rverify: {expected} events ({:.0} events/s)",
                expected as f64 / started.elapsed().as_secs_f64().max(1e-9)
            );
        }
        expected += 1;
    }
    if progress {
        eprintln!();
    }
    if !batch.is_empty() {
        let _ = batches.send(batch);
    }
    drop(batches);
    let jsonl_result = jsonl_check
        .join()
        .map_err(|_| anyhow!("the JSON-lines check panicked"))?;
    // The first bad sequence of the two passes.
    let jsonl_failure = jsonl_result.as_ref().err().cloned();
    let first = match (failure, jsonl_failure) {
        (Some(a), Some(b)) => Some(if b.0 < a.0 { b } else { a }),
        (a, b) => a.or(b),
    };
    if let Some((sequence, detail)) = first {
        // `events` counts the records verified in order before the failure.
        verdict.events = verdict.events.min(sequence.saturating_sub(1));
        return Ok(verdict.fail(sequence, detail));
    }
    let jsonl_sha = jsonl_result.map(|(sha, _)| sha).unwrap_or_default();
    verdict.root = frontier.root();
    let count = verdict.events;
    if let Some(cp) = pending.next() {
        return Ok(verdict.fail(
            count + 1,
            format!(
                "a signed checkpoint covers {} events but the export ends at {count} (truncated)",
                cp.checkpoint.tree_size
            ),
        ));
    }
    if manifest["events"].as_u64() != Some(count) {
        return Ok(verdict.fail(
            count + 1,
            format!(
                "the manifest lists {} events, the export holds {count} (truncated)",
                manifest["events"]
            ),
        ));
    }
    let checks = [
        ("head_hash", hex::encode(prev)),
        ("merkle_root", hex::encode(verdict.root)),
    ];
    for (field, value) in checks {
        if manifest[field].as_str() != Some(value.as_str()) {
            return Ok(verdict.fail(count, format!("manifest {field} does not match the events")));
        }
    }
    // events.pb needs no file hash: every byte of every frame is covered by the chain (the stored
    // bytes and both hash fields) and a torn or extra frame fails to parse.
    let files = [
        (EVENTS_JSONL, jsonl_sha),
        (CHECKPOINTS_PB, sha256_file(&dir.join(CHECKPOINTS_PB))?),
    ];
    for (file, sha) in files {
        if manifest["files"][file].as_str() != Some(sha.as_str()) {
            return Ok(verdict.fail(
                0,
                format!("the SHA-256 of {file} does not match the manifest"),
            ));
        }
    }
    Ok(verdict)
}

/// Bytes at the end of a JSON line that hold the ledger fields (two hex hashes, the time and the
/// sequence), with room to spare.
const JSONL_TAIL: usize = 320;

/// Hashes per batch handed to the JSON-lines check.
const JSONL_BATCH: usize = 4096;

/// Checks each line of `events.jsonl` against the chain hash of the same sequence (received in
/// batches, in order) and hashes the file. Returns its SHA-256 and line count, or the first
/// sequence whose line is missing or disagrees.
fn check_jsonl(
    file: File,
    batches: &std::sync::mpsc::Receiver<Vec<Hash>>,
) -> Result<(String, u64), (u64, String)> {
    use std::fmt::Write as _;
    let mut lines = BufReader::with_capacity(1 << 20, file);
    let mut sha = Sha256::new();
    let mut line: Vec<u8> = Vec::with_capacity(4096);
    let mut needle = [0u8; 8 + 64 + 1];
    needle[..8].copy_from_slice(b"\"hash\":\"");
    needle[72] = b'"';
    let mut tail = String::with_capacity(40);
    let mut sequence = 0u64;
    let io = |sequence: u64, e: std::io::Error| (sequence, format!("events.jsonl: {e}"));
    while let Ok(batch) = batches.recv() {
        for hash in batch {
            sequence += 1;
            line.clear();
            let n = lines
                .read_until(b'\n', &mut line)
                .map_err(|e| io(sequence, e))?;
            if n == 0 {
                return Err((sequence, "events.jsonl ends before events.pb".to_owned()));
            }
            sha.update(&line);
            let _ = hex::encode_to_slice(hash, &mut needle[8..72]);
            tail.clear();
            let _ = write!(tail, "\"sequence\":{sequence}}}");
            // Keys are sorted, so the line ends with the top-level
            // `"hash":…,"prev_hash":…,"recorded_at_micros":…,"sequence":…}`: only that tail is read.
            let mut from = line.len().saturating_sub(JSONL_TAIL);
            // Start on a character boundary (event text may be any UTF-8).
            while line.get(from).is_some_and(|b| b & 0xC0 == 0x80) {
                from += 1;
            }
            let end = line.get(from..).unwrap_or(&line);
            let text = std::str::from_utf8(end).unwrap_or("");
            let needle = std::str::from_utf8(&needle).unwrap_or("");
            if !text.trim_end().ends_with(tail.as_str()) || !text.contains(needle) {
                return Err((sequence, "events.jsonl disagrees with events.pb".to_owned()));
            }
        }
    }
    line.clear();
    if lines
        .read_until(b'\n', &mut line)
        .map_err(|e| io(sequence + 1, e))?
        != 0
    {
        return Err((
            sequence + 1,
            "events.jsonl has more lines than events.pb".to_owned(),
        ));
    }
    Ok((hex::encode(sha.finalize()), sequence))
}

fn verify_data_dir(
    dir: &Path,
    pinned: Option<&VerifyingKey>,
    progress: bool,
) -> anyhow::Result<Verdict> {
    let verdict = empty_verdict();
    let store_dir = dir.join("ledger");
    let log = match wfl_store::SledLog::open(&store_dir) {
        Ok(log) => log,
        Err(wfl_store::Error::Corrupt { sequence, detail }) => {
            return Ok(verdict.fail(sequence, format!("the store does not open: {detail}")))
        }
        Err(e) => bail!(
            "cannot open {}: {e} (is the node still running?)",
            store_dir.display()
        ),
    };
    let key = match pinned {
        Some(k) => *k,
        None => {
            let path: PathBuf = checkpoint::default_key_path(dir);
            match checkpoint::Signer::load(&path) {
                Ok(s) => s.public(),
                Err(e) => {
                    return Ok(verdict.fail(
                        0,
                        format!("no key to check checkpoints with: {e} (pass --key)"),
                    ))
                }
            }
        }
    };
    let started = Instant::now();
    let mut shown = 0u64;
    let result = log.verify_all(&mut |s| {
        if progress && s >= shown + 100_000 {
            shown = s;
            eprint!(
                "\rverify: {s} records ({:.0} records/s)",
                s as f64 / started.elapsed().as_secs_f64().max(1e-9)
            );
        }
    });
    if progress && shown > 0 {
        eprintln!();
    }
    let head = match result {
        Ok(head) => head,
        Err(wfl_store::Error::Corrupt { sequence, detail }) => {
            let mut v = verdict.fail(sequence, detail);
            v.events = sequence.saturating_sub(1);
            return Ok(v);
        }
        Err(e) => bail!("cannot read the store: {e}"),
    };
    // Every record decodes and names its own sequence.
    let mut from = 1;
    loop {
        let records = log.read(from, None, &wfl_store::Filter::default(), 10_000)?;
        let Some(last) = records.last().map(|r| r.sequence) else {
            break;
        };
        for r in &records {
            match pb::CommittedEvent::decode(r.bytes.as_slice()) {
                Ok(c) if c.sequence == r.sequence && c.event.is_some() => {}
                _ => {
                    let mut v = verdict.fail(
                        r.sequence,
                        "the stored bytes are not a CommittedEvent of this sequence",
                    );
                    v.events = r.sequence - 1;
                    return Ok(v);
                }
            }
        }
        from = last + 1;
    }
    let mut stored = Vec::new();
    let mut from = 1;
    loop {
        let page = log.checkpoints(from, 1000)?;
        let Some(last) = page.last().map(|(s, _)| *s) else {
            break;
        };
        for (size, bytes) in page {
            match SignedCheckpoint::decode(&bytes) {
                Ok(cp) if cp.checkpoint.tree_size == size => stored.push(cp),
                _ => {
                    return Ok(verdict.fail(
                        size,
                        format!("the checkpoint stored at tree size {size} is malformed"),
                    ))
                }
            }
        }
        from = last + 1;
    }
    let mut verdict = Verdict {
        events: head.sequence,
        ..verdict
    };
    let (list, v) = match check_checkpoints(stored, &key, verdict) {
        Ok(ok) => ok,
        Err(failed) => return Ok(failed),
    };
    verdict = v;
    let mut previous: Option<&SignedCheckpoint> = None;
    for cp in &list {
        let size = cp.checkpoint.tree_size;
        let root = log.merkle_root(size)?;
        let record_hash = log.get(size)?.map(|r| r.hash);
        if root != cp.checkpoint.root || record_hash != Some(cp.checkpoint.head_hash) {
            return Ok(verdict.fail(
                size,
                format!(
                    "the records do not have the root and head hash signed at tree size {size}"
                ),
            ));
        }
        if let Some(p) = previous {
            let old = p.checkpoint.tree_size;
            let proof = log.consistency_proof(old, size)?;
            if !merkle::verify_consistency(
                old,
                size,
                &p.checkpoint.root,
                &cp.checkpoint.root,
                &proof,
            ) {
                return Ok(verdict.fail(
                    old,
                    format!("checkpoints at {old} and {size} are not consistent"),
                ));
            }
        }
        previous = Some(cp);
        verdict.checkpoints += 1;
    }
    verdict.root = log.merkle_root(head.sequence)?;
    Ok(verdict)
}

/// What `wfl verify --views` found: the export's events folded here, compared with a projector's
/// answers at the export's size.
#[derive(Debug)]
pub struct ViewsVerdict {
    /// The export's size: every answer was asked `as_of_sequence` = this.
    pub sequence: u64,
    /// Answers compared (orgs × views).
    pub compared: usize,
    /// Orgs compared.
    pub orgs: usize,
    /// `None` when every answer named the export's sequence and chain hash and equalled the
    /// re-derived view; else the first difference.
    pub failure: Option<String>,
}

impl ViewsVerdict {
    /// One line for the terminal.
    #[must_use]
    pub fn describe(&self) -> String {
        match &self.failure {
            None => format!(
                "views OK: {} answers ({} orgs x 5 views) at sequence {} name its chain hash and Merkle root and equal the views re-derived from the export",
                self.compared, self.orgs, self.sequence
            ),
            Some(why) => format!("views FAILED at sequence {}: {why}", self.sequence),
        }
    }
}

/// The five document views, by name, as the projector and this check compute them.
const VIEWS: [&str; 5] = [
    "separations",
    "headcount",
    "cohort_exposure",
    "hiring_signals",
    "ai_adoption",
];

/// `wfl verify EXPORT --views ADDR`: folds the export's events into a projection here and asks
/// the projector at `addr` for every document view of every org (or of `orgs`) as of the
/// export's size. Each answer must name that sequence, the export's chain hash there and its
/// Merkle root `root` (the proof it was computed over exactly this history), and equal the view
/// re-derived here.
///
/// Run it after `wfl verify` of the same export passed (its verdict gives `root`): it trusts
/// the events it folds.
///
/// # Errors
/// The export cannot be read, or the projector cannot be reached (a refused call is a failure in
/// the verdict, not an error).
pub async fn verify_views(
    dir: &Path,
    root: Hash,
    addr: &str,
    orgs: &[String],
) -> anyhow::Result<ViewsVerdict> {
    let dir = dir.to_owned();
    let (projection, sequence, hash, seen) =
        tokio::task::spawn_blocking(move || fold_export(&dir)).await??;
    let orgs: Vec<String> = if orgs.is_empty() {
        seen.into_iter().collect()
    } else {
        orgs.to_vec()
    };
    let mut verdict = ViewsVerdict {
        sequence,
        compared: 0,
        orgs: orgs.len(),
        failure: None,
    };
    let mut client = pb::views_client::ViewsClient::new(connect(addr).await?)
        .max_decoding_message_size(64 << 20);
    let at = projection.at(sequence);
    for org in &orgs {
        let q = wfl_projections::views::Query {
            org: Some(wfl_domain::OrgId(org.clone())),
            ..Default::default()
        };
        for name in VIEWS {
            let request = pb::ViewRequest {
                org_id: org.clone(),
                as_of_sequence: sequence,
                ..Default::default()
            };
            let (served, local) = match name {
                "separations" => (
                    client.separations(request).await,
                    wfl_projector::view_message(&at.separations(&q)),
                ),
                "headcount" => (
                    client.headcount(request).await,
                    wfl_projector::view_message(&at.headcount(&q)),
                ),
                "cohort_exposure" => (
                    client.cohort_exposure(request).await,
                    wfl_projector::view_message(&at.cohort_exposure(&q)),
                ),
                "hiring_signals" => (
                    client.hiring_signals(request).await,
                    wfl_projector::view_message(&at.hiring_signals(&q)),
                ),
                _ => (
                    client.ai_adoption(request).await,
                    wfl_projector::view_message(&at.ai_adoption(&q)),
                ),
            };
            let served = match served {
                Ok(r) => r.into_inner(),
                Err(s) => {
                    verdict.failure = Some(format!(
                        "{name} of {org}: the projector refused: {}",
                        describe_status(&s)
                    ));
                    return Ok(verdict);
                }
            };
            verdict.compared += 1;
            let problem = if served.as_of_sequence != sequence {
                Some(format!(
                    "answered at sequence {}, not the export's {sequence}",
                    served.as_of_sequence
                ))
            } else if served.as_of_hash != hash {
                Some(format!(
                    "names chain hash {} at sequence {sequence}, the export has {}: another history",
                    hex::encode(&served.as_of_hash),
                    hex::encode(hash)
                ))
            } else if served.as_of_root != root {
                Some(if served.as_of_root.is_empty() {
                    "names no Merkle root (the projector's ledger principal needs the auditor role)"
                        .to_owned()
                } else {
                    format!(
                        "names Merkle root {} at sequence {sequence}, the export's is {}",
                        hex::encode(&served.as_of_root),
                        hex::encode(root)
                    )
                })
            } else {
                view_difference(served.view.as_ref(), Some(&local))
                    .map(|(path, s, l)| format!("{path}: served {s}, re-derived {l}"))
            };
            if let Some(problem) = problem {
                verdict.failure = Some(format!("{name} of {org}: {problem}"));
                return Ok(verdict);
            }
        }
    }
    Ok(verdict)
}

/// Folds every event of an export: the projection, the last sequence, its chain hash, the orgs.
fn fold_export(
    dir: &Path,
) -> anyhow::Result<(
    wfl_projections::views::Projection,
    u64,
    Hash,
    std::collections::BTreeSet<String>,
)> {
    let mut frames = Frames::new(BufReader::with_capacity(
        1 << 20,
        File::open(dir.join(EVENTS_PB)).context("events.pb is missing")?,
    ));
    let mut p = wfl_projections::views::Projection::new();
    let mut last = (0u64, ZERO_HASH);
    let mut orgs = std::collections::BTreeSet::new();
    while let Some(frame) = frames.next().map_err(|e| anyhow!("events.pb: {e}"))? {
        let c = pb::CommittedEvent::decode(frame)
            .map_err(|e| anyhow!("events.pb: record {} does not decode: {e}", last.0 + 1))?;
        let event = c
            .event
            .ok_or_else(|| anyhow!("events.pb: record {} has no event", c.sequence))?;
        let event = wfl_proto::convert::event_from_pb(event)
            .map_err(|e| anyhow!("events.pb: record {} does not convert: {e}", c.sequence))?;
        orgs.insert(event.org_id.0.clone());
        p.apply(c.sequence, &event);
        last = (
            c.sequence,
            c.hash
                .as_slice()
                .try_into()
                .map_err(|_| anyhow!("events.pb: record {} has no 32-byte hash", c.sequence))?,
        );
    }
    Ok((p, last.0, last.1, orgs))
}

/// The first path where two answers differ (a JSON pointer into the view as `wfl report` prints
/// it), with both values rendered.
fn view_difference(
    served: Option<&pb::view_response::View>,
    local: Option<&pb::view_response::View>,
) -> Option<(String, String, String)> {
    if served == local {
        return None;
    }
    let json = |v: Option<&pb::view_response::View>| {
        v.map_or(serde_json::Value::Null, crate::report::view_value)
    };
    json_difference(Some(&json(served)), Some(&json(local)), "").or_else(|| {
        Some((
            "/".to_owned(),
            "another view".to_owned(),
            "this one".to_owned(),
        ))
    })
}

/// The first path where two JSON values differ, with both values rendered.
fn json_difference(
    s: Option<&serde_json::Value>,
    l: Option<&serde_json::Value>,
    path: &str,
) -> Option<(String, String, String)> {
    use serde_json::Value;
    fn render(v: Option<&Value>) -> String {
        match v {
            None => "nothing".to_owned(),
            Some(Value::String(s)) => format!("{s:?}"),
            Some(Value::Array(l)) => format!("a list of {}", l.len()),
            Some(Value::Object(o)) => format!("an object of {} keys", o.len()),
            Some(other) => other.to_string(),
        }
    }
    match (s, l) {
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            keys.into_iter().find_map(|k| {
                let key = k.replace('~', "~0").replace('/', "~1");
                json_difference(a.get(k), b.get(k), &format!("{path}/{key}"))
            })
        }
        (Some(Value::Array(a)), Some(Value::Array(b))) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(i, (x, y))| json_difference(Some(x), Some(y), &format!("{path}/{i}"))),
        _ if s == l => None,
        _ => Some((path.to_owned(), render(s), render(l))),
    }
}

#[cfg(test)]
mod tests {
    use wfl_proto::pb;

    use super::view_difference;

    fn separations(count: u64, bucket: &str) -> pb::view_response::View {
        pb::view_response::View::Separations(pb::SeparationsView {
            as_of_sequence: 9,
            period: "month".into(),
            totals: vec![
                pb::BucketTotal {
                    bucket: "formal_layoff".into(),
                    evidence: "/totals/0".into(),
                    ..Default::default()
                },
                pb::BucketTotal {
                    bucket: bucket.into(),
                    count,
                    evidence_count: count,
                    evidence: "/totals/1".into(),
                    ai: Some(pb::AiShare::default()),
                    ..Default::default()
                },
            ],
            ..Default::default()
        })
    }

    #[test]
    fn a_view_difference_names_the_first_differing_path() {
        let served = separations(12, "gradual_attrition");
        assert_eq!(view_difference(Some(&served), Some(&served.clone())), None);
        assert_eq!(
            view_difference(Some(&served), Some(&separations(11, "gradual_attrition"))),
            Some(("/totals/1/count".into(), "12".into(), "11".into()))
        );
        assert_eq!(
            view_difference(Some(&served), Some(&separations(12, "neutral"))),
            Some((
                "/totals/1/bucket".into(),
                "\"gradual_attrition\"".into(),
                "\"neutral\"".into()
            ))
        );
        let headcount = pb::view_response::View::Headcount(pb::HeadcountView::default());
        assert!(view_difference(Some(&served), Some(&headcount)).is_some());
        assert_eq!(
            view_difference(None, Some(&served)).map(|d| d.0),
            Some(String::new())
        );
    }
}
