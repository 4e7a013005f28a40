//! The client side of the CLI: `record`, `import`, `replay`, `tail` and `load` over gRPC.
//!
//! Events are read as JSON in the domain's serde form (see README.md for an example); the wire is
//! protobuf. Every failure becomes one line saying what and where.

use std::io::{BufRead, Write};

use anyhow::{anyhow, bail, Context};
use futures::StreamExt;
use serde_json::json;
use wfl_auth::Conn;
use wfl_proto::pb;

/// Output format of the client commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// Connects to a wfl gRPC endpoint with this process's credentials (`--ca`, `--cert`/`--key`,
/// `--token`; see [`crate::security`]).
///
/// # Errors
/// When the address is malformed or nothing answers there.
pub async fn connect(addr: &str) -> anyhow::Result<Conn> {
    Ok(crate::security::client_credentials().connect(addr).await?)
}

/// Parses one event from JSON text.
///
/// # Errors
/// A one-line reason naming the problem (serde reports the line and column).
///
/// # Errors
/// When the text is not JSON, not an event, or names a field the event does not have (a typo
/// must not be dropped silently): the error names the field's path (`payload.reason_cod`).
pub fn parse_event(text: &str) -> anyhow::Result<pb::Event> {
    let given: serde_json::Value =
        serde_json::from_str(text).map_err(|e| anyhow!("not a wfl event: {e}"))?;
    let event: wfl_domain::Event =
        serde_json::from_value(given.clone()).map_err(|e| anyhow!("not a wfl event: {e}"))?;
    let known = serde_json::to_value(&event)?;
    if let Some(path) = unknown_field(&given, &known, "") {
        bail!("unknown field {path}");
    }
    Ok(wfl_proto::convert::event_to_pb(&event))
}

/// The first key of `given` that the parsed event does not carry back (`known` is the event
/// serialized again). Null values and empty lists are skipped: the event omits those when
/// serializing, so they would look unknown.
fn unknown_field(given: &serde_json::Value, known: &serde_json::Value, at: &str) -> Option<String> {
    use serde_json::Value;
    match (given, known) {
        (Value::Object(g), Value::Object(k)) => g.iter().find_map(|(key, v)| {
            if v.is_null() || v.as_array().is_some_and(Vec::is_empty) {
                return None;
            }
            let path = if at.is_empty() {
                key.clone()
            } else {
                format!("{at}.{key}")
            };
            match k.get(key) {
                None => Some(path),
                Some(kv) => unknown_field(v, kv, &path),
            }
        }),
        (Value::Array(g), Value::Array(k)) => g
            .iter()
            .zip(k)
            .enumerate()
            .find_map(|(i, (v, kv))| unknown_field(v, kv, &format!("{at}[{i}]"))),
        _ => None,
    }
}

/// Longest line `wfl import` reads; a longer one is reported with its size and skipped (an
/// event is a few hundred bytes; its text fields are at most 256 bytes).
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// One line of an import file.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// The line's bytes, without the newline.
    Text(Vec<u8>),
    /// Longer than the limit: its size in bytes (its bytes were read and dropped).
    TooLong(usize),
}

/// Reads the next line, holding at most `max` bytes of it in memory.
///
/// # Errors
/// When the reader fails.
pub fn next_line(reader: &mut impl BufRead, max: usize) -> std::io::Result<Option<Line>> {
    let mut buf = Vec::new();
    let mut size = 0usize;
    let mut any = false;
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            break;
        }
        any = true;
        let (part, done) = match chunk.iter().position(|b| *b == b'\n') {
            Some(i) => (&chunk[..i], Some(i + 1)),
            None => (chunk, None),
        };
        size += part.len();
        if size <= max {
            buf.extend_from_slice(part);
        }
        let used = done.unwrap_or(chunk.len());
        reader.consume(used);
        if done.is_some() {
            break;
        }
    }
    if !any {
        return Ok(None);
    }
    if buf.last() == Some(&b'\r') && size <= max {
        buf.pop();
    }
    Ok(Some(if size > max {
        Line::TooLong(size)
    } else {
        Line::Text(buf)
    }))
}

/// One line describing a gRPC failure, field violations included.
#[must_use]
pub fn describe_status(s: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    let mut line = format!("{:?}: {}", s.code(), s.message());
    if let Some(bad) = s.get_details_bad_request() {
        let fields: Vec<String> = bad
            .field_violations
            .iter()
            .map(|v| format!("{} ({})", v.field, v.description))
            .collect();
        if !fields.is_empty() {
            line = format!("{:?}: {}", s.code(), fields.join("; "));
        }
    }
    line
}

fn describe_item(e: &pb::ItemError) -> String {
    let code = tonic::Code::from_i32(e.code);
    if e.field_violations.is_empty() {
        format!("{code:?}: {}", e.message)
    } else {
        let fields: Vec<String> = e
            .field_violations
            .iter()
            .map(|v| format!("{} ({})", v.field, v.description))
            .collect();
        format!("{code:?}: {}", fields.join("; "))
    }
}

/// `wfl record`: one event from a file or stdin.
///
/// # Errors
/// When the input is not an event, or the ledger refuses it (the reason is the message).
pub async fn record(
    addr: &str,
    input: Option<&std::path::Path>,
    ack: pb::AckLevel,
    format: Format,
) -> anyhow::Result<()> {
    let text = match input {
        Some(p) => {
            std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?
        }
        None => std::io::read_to_string(std::io::stdin()).context("cannot read stdin")?,
    };
    let event = parse_event(&text)?;
    let mut client = pb::ingest_client::IngestClient::new(connect(addr).await?);
    let r = client
        .record(pb::RecordRequest {
            event: Some(event),
            ack: ack as i32,
            include_proof: false,
        })
        .await
        .map_err(|s| anyhow!("{}", describe_status(&s)))?
        .into_inner();
    match format {
        Format::Json => println!("{}", response_json(&r)),
        Format::Text if r.sequence > 0 => println!(
            "{} event {} at sequence {} hash {}",
            if r.duplicate {
                "already committed:"
            } else {
                "committed:"
            },
            r.event_id,
            r.sequence,
            hex::encode(&r.hash)
        ),
        Format::Text => println!(
            "accepted: event {}{}",
            r.event_id,
            if r.duplicate { " (duplicate)" } else { "" }
        ),
    }
    Ok(())
}

fn response_json(r: &pb::RecordResponse) -> serde_json::Value {
    json!({
        "event_id": r.event_id,
        "sequence": r.sequence,
        "hash": hex::encode(&r.hash),
        "duplicate": r.duplicate,
        "ack": if r.ack == pb::AckLevel::Accepted as i32 { "accepted" } else { "committed" },
    })
}

/// Totals of an import.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ImportSummary {
    pub lines: u64,
    pub committed: u64,
    pub duplicates: u64,
    pub accepted: u64,
    pub rejected: u64,
}

/// What `wfl import` prints per line: the refused lines only (default), or every line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lines {
    Refused,
    All,
}

/// `wfl import FILE`: JSON lines, sent in batches. Prints the refused lines (or, with
/// [`Lines::All`], one result per line) on stdout, and a progress line on stderr when it is a
/// terminal.
///
/// # Errors
/// When the file cannot be read or the server cannot be reached; refused lines are not errors
/// here, they are counted in the summary (the binary exits non-zero when any line was refused).
pub async fn import(
    addr: &str,
    path: &std::path::Path,
    batch: usize,
    ack: pb::AckLevel,
    format: Format,
    lines: Lines,
) -> anyhow::Result<ImportSummary> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let progress = crate::progress::bar(
        file.metadata().map_or(0, |m| m.len()),
        crate::progress::Unit::Bytes,
        true,
    );
    let mut bytes = 0u64;
    let mut client = pb::ingest_client::IngestClient::new(connect(addr).await?)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20);
    let mut summary = ImportSummary::default();
    let batch = batch.clamp(1, wfl_domain::MAX_BATCH);
    let mut pending: Vec<(u64, pb::Event)> = Vec::with_capacity(batch);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut reader = std::io::BufReader::new(file);
    let mut n = 0u64;
    // Every line is read and answered: a bad one is reported by number and the rest still sent.
    while let Some(line) = next_line(&mut reader, MAX_LINE_BYTES)
        .with_context(|| format!("cannot read line {} of {}", n + 1, path.display()))?
    {
        n += 1;
        bytes += 1 + match &line {
            Line::TooLong(size) => *size as u64,
            Line::Text(b) => b.len() as u64,
        };
        progress.set_position(bytes);
        if n % 1000 == 1 {
            progress.set_message(format!(
                "importing: {} lines, {} refused",
                summary.lines, summary.rejected
            ));
        }
        let parsed = match line {
            Line::TooLong(size) => Err(anyhow!(
                "line of {size} bytes; at most {MAX_LINE_BYTES} bytes"
            )),
            Line::Text(bytes) => match String::from_utf8(bytes) {
                Err(e) => Err(anyhow!(
                    "not UTF-8 (invalid byte at offset {})",
                    e.utf8_error().valid_up_to()
                )),
                Ok(text) if text.trim().is_empty() => continue,
                Ok(text) => parse_event(&text),
            },
        };
        summary.lines += 1;
        match parsed {
            Ok(e) => pending.push((n, e)),
            Err(e) => {
                summary.rejected += 1;
                emit(&mut out, format, n, "", Err(e.to_string()))?;
            }
        }
        if pending.len() >= batch {
            send(
                &mut client,
                &mut pending,
                ack,
                (format, lines),
                &mut out,
                &mut summary,
            )
            .await?;
        }
    }
    send(
        &mut client,
        &mut pending,
        ack,
        (format, lines),
        &mut out,
        &mut summary,
    )
    .await?;
    progress.finish_and_clear();
    out.flush()?;
    Ok(summary)
}

async fn send(
    client: &mut pb::ingest_client::IngestClient<Conn>,
    pending: &mut Vec<(u64, pb::Event)>,
    ack: pb::AckLevel,
    (format, lines_shown): (Format, Lines),
    out: &mut impl Write,
    summary: &mut ImportSummary,
) -> anyhow::Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    let (lines, events): (Vec<u64>, Vec<pb::Event>) = std::mem::take(pending).into_iter().unzip();
    let resp = client
        .record_batch(pb::RecordBatchRequest {
            events,
            ack: ack as i32,
            include_proof: false,
        })
        .await
        .map_err(|s| anyhow!("batch refused: {}", describe_status(&s)))?
        .into_inner();
    if resp.results.len() != lines.len() {
        bail!(
            "server answered {} results for {} events",
            resp.results.len(),
            lines.len()
        );
    }
    for (n, item) in lines.into_iter().zip(resp.results) {
        let result = match item.outcome {
            Some(pb::item_result::Outcome::Ok(r)) => {
                if r.duplicate {
                    summary.duplicates += 1;
                } else if r.ack == pb::AckLevel::Accepted as i32 {
                    summary.accepted += 1;
                } else {
                    summary.committed += 1;
                }
                Ok(r)
            }
            Some(pb::item_result::Outcome::Error(e)) => {
                summary.rejected += 1;
                Err(describe_item(&e))
            }
            None => {
                summary.rejected += 1;
                Err("no outcome".to_owned())
            }
        };
        if result.is_err() || lines_shown == Lines::All {
            emit(out, format, n, &item.event_id, result)?;
        }
    }
    Ok(())
}

fn emit(
    out: &mut impl Write,
    format: Format,
    line: u64,
    event_id: &str,
    r: Result<pb::RecordResponse, String>,
) -> std::io::Result<()> {
    match (format, r) {
        (Format::Json, Ok(r)) => {
            writeln!(out, "{}", json!({"line": line, "ok": response_json(&r)}))
        }
        (Format::Json, Err(e)) => writeln!(
            out,
            "{}",
            json!({"line": line, "event_id": event_id, "error": e})
        ),
        (Format::Text, Ok(r)) => writeln!(
            out,
            "line {line}: {} {} seq {}",
            if r.duplicate {
                "duplicate"
            } else if r.sequence == 0 {
                "accepted"
            } else {
                "committed"
            },
            r.event_id,
            r.sequence
        ),
        (Format::Text, Err(e)) => writeln!(out, "line {line}: rejected: {e}"),
    }
}

/// `wfl replay`: committed events as JSON lines ([`crate::jsonl`]), in sequence order, on stdout.
///
/// # Errors
/// When the server cannot be reached, refuses the request, or the stream breaks.
pub async fn replay(addr: &str, request: pb::ReadRequest) -> anyhow::Result<u64> {
    let client = pb::ledger_client::LedgerClient::new(connect(addr).await?);
    replay_to(client, request, std::io::stdout()).await
}

/// Blocking threads making JSON lines in parallel (batches dealt to them in turn), at most.
const LINE_MAKERS: usize = 4;

/// What [`replay`] does, to any writer: `ReadBatches` with `request` (`max_batch` 0 asks for the
/// largest batches), every event written as a JSON line. The lines of each batch are made on
/// one of a few blocking threads (one per core, at most [`LINE_MAKERS`]; batches dealt to them
/// in turn) while the next batches are received and decoded, and one more thread writes each
/// batch's lines in the order the batches came, in one write per batch. Returns the number of
/// events written.
///
/// # Errors
/// When the server refuses the request, the stream breaks (after every event received before
/// the break is written), an event does not convert, or `out` fails.
pub async fn replay_to(
    client: pb::ledger_client::LedgerClient<Conn>,
    request: pb::ReadRequest,
    out: impl Write + Send + 'static,
) -> anyhow::Result<u64> {
    type Lines = tokio::sync::oneshot::Receiver<anyhow::Result<(Vec<u8>, u64)>>;
    let mut stream = client
        .max_decoding_message_size(64 << 20)
        .read_batches(request)
        .await
        .map_err(|s| anyhow!("{}", describe_status(&s)))?
        .into_inner();
    let makers = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .clamp(1, LINE_MAKERS);
    let mut to_makers = Vec::with_capacity(makers);
    for _ in 0..makers {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<(
            pb::EventBatch,
            tokio::sync::oneshot::Sender<anyhow::Result<(Vec<u8>, u64)>>,
        )>(2);
        tokio::task::spawn_blocking(move || {
            let mut lines = crate::jsonl::Lines::default();
            while let Some((batch, done)) = rx.blocking_recv() {
                let _ = done.send(make_lines(&mut lines, batch));
            }
        });
        to_makers.push(tx);
    }
    let (in_order, mut made) = tokio::sync::mpsc::channel::<Lines>(2 * makers + 2);
    let writer = tokio::task::spawn_blocking(move || -> anyhow::Result<u64> {
        let mut out = out;
        let mut n = 0;
        while let Some(lines) = made.blocking_recv() {
            let (bytes, count) = lines
                .blocking_recv()
                .map_err(|_| anyhow!("a line maker stopped"))??;
            out.write_all(&bytes)?;
            n += count;
        }
        out.flush()?;
        Ok(n)
    });
    let mut next = 0usize;
    let broken = loop {
        match stream.next().await {
            None => break None,
            Some(Ok(batch)) => {
                let (done, lines) = tokio::sync::oneshot::channel();
                // The writer's queue first, so it waits for this batch's lines in order.
                if in_order.send(lines).await.is_err()
                    || to_makers[next].send((batch, done)).await.is_err()
                {
                    break None; // the writer failed: its error is the answer
                }
                next = (next + 1) % makers;
            }
            Some(Err(s)) => break Some(s),
        }
    };
    drop((in_order, to_makers));
    let written = writer.await??;
    if let Some(s) = broken {
        bail!(
            "replay interrupted after {written} events: {}",
            describe_status(&s)
        );
    }
    Ok(written)
}

/// One batch's events as JSON lines, and how many.
fn make_lines(
    lines: &mut crate::jsonl::Lines,
    batch: pb::EventBatch,
) -> anyhow::Result<(Vec<u8>, u64)> {
    let mut buf = Vec::with_capacity(batch.events.len() * 768);
    let n = batch.events.len() as u64;
    for c in batch.events {
        lines.push(&mut buf, c)?;
    }
    Ok((buf, n))
}

/// `wfl tail`: follows the committed stream, printing events as JSON lines. Reconnects after a
/// broken stream and resumes after the last event printed, so nothing is missed or repeated.
///
/// # Errors
/// When the request is refused (bad filter) or `count` events could not be printed.
pub async fn tail(
    addr: &str,
    mut request: pb::SubscribeRequest,
    count: Option<u64>,
) -> anyhow::Result<u64> {
    let mut printed = 0u64;
    let mut backoff = std::time::Duration::from_millis(100);
    loop {
        let channel = match crate::security::client_credentials().connect(addr).await {
            Ok(c) => c,
            // Only an unreachable ledger is waited for; a bad address, token or TLS setting
            // would fail the same way forever.
            Err(e @ wfl_auth::client::Error::Connect { .. }) => {
                eprintln!("wfl tail: {e}; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(std::time::Duration::from_secs(5));
                continue;
            }
            Err(e) => bail!("{e}"),
        };
        let mut client =
            pb::ledger_client::LedgerClient::new(channel).max_decoding_message_size(64 << 20);
        let mut stream = match client.subscribe(request.clone()).await {
            Ok(s) => s.into_inner(),
            Err(s) if retryable(&s) => {
                eprintln!("wfl tail: {}; retrying", describe_status(&s));
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(std::time::Duration::from_secs(5));
                continue;
            }
            Err(s) => bail!("{}", describe_status(&s)),
        };
        backoff = std::time::Duration::from_millis(100);
        let stdout = std::io::stdout();
        let mut line = Vec::new();
        loop {
            match stream.message().await {
                Ok(Some(pb::SubscribeResponse {
                    kind: Some(pb::subscribe_response::Kind::Event(c)),
                })) => {
                    let sequence = c.sequence;
                    line.clear();
                    crate::jsonl::push_line(&mut line, c)?;
                    let mut out = stdout.lock();
                    out.write_all(&line)?;
                    out.flush()?;
                    request.from_sequence = sequence + 1;
                    printed += 1;
                    if count.is_some_and(|n| printed >= n) {
                        return Ok(printed);
                    }
                }
                Ok(Some(_)) => {} // heartbeat
                Ok(None) => break,
                Err(s) if retryable(&s) => {
                    eprintln!(
                        "wfl tail: stream broke ({}); resuming from {}",
                        describe_status(&s),
                        request.from_sequence
                    );
                    break;
                }
                Err(s) => bail!("{}", describe_status(&s)),
            }
        }
    }
}

/// Whether a broken subscription is worth resuming (the ledger restarting, the network).
fn retryable(s: &tonic::Status) -> bool {
    matches!(
        s.code(),
        tonic::Code::Unavailable
            | tonic::Code::Unknown
            | tonic::Code::ResourceExhausted
            | tonic::Code::Cancelled
    )
}

/// What `wfl load` measured.
#[derive(Debug, Clone, Copy)]
pub struct LoadReport {
    pub events: u64,
    pub seconds: f64,
    pub batch_p50_ms: f64,
    pub batch_p99_ms: f64,
}

/// `wfl load`: a load generator. Sends `events` hires (unique workers of org `org`) in batches of
/// `batch`, keeping `concurrency` RecordBatch calls in flight, and measures committed events per
/// second end to end (gRPC, validation, bus, group commit, outcome).
///
/// # Errors
/// When the server cannot be reached or refuses any event.
pub async fn load(
    addr: &str,
    org: &str,
    events: u64,
    batch: usize,
    concurrency: usize,
    ack: pb::AckLevel,
    mix: crate::loadgen::Mix,
) -> anyhow::Result<LoadReport> {
    let channel = connect(addr).await?;
    let run = uuid::Uuid::now_v7().simple().to_string();
    let generator = crate::loadgen::Generator::new(mix, org, &run[..12]).map_err(|e| anyhow!(e))?;
    let mut batch = batch.clamp(1, wfl_domain::MAX_BATCH) as u64;
    if mix != crate::loadgen::Mix::Hires && batch >= 10 {
        batch -= batch % 10; // whole blocks: every batch is self-contained
    }
    let batches: Vec<(u64, u64)> = (0..events)
        .step_by(batch as usize)
        .map(|s| (s, (s + batch).min(events)))
        .collect();
    let started = std::time::Instant::now();
    let results = futures::stream::iter(batches)
        .map(|(from, to)| {
            let mut client = pb::ingest_client::IngestClient::new(channel.clone())
                .max_encoding_message_size(64 << 20)
                .max_decoding_message_size(64 << 20);
            let events: Vec<pb::Event> = generator
                .events(from, to)
                .iter()
                .map(wfl_proto::convert::event_to_pb)
                .collect();
            async move {
                let t = std::time::Instant::now();
                let r = client
                    .record_batch(pb::RecordBatchRequest {
                        events,
                        ack: ack as i32,
                        include_proof: false,
                    })
                    .await;
                (t.elapsed(), r)
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect::<Vec<_>>()
        .await;
    let seconds = started.elapsed().as_secs_f64();
    let mut latencies = Vec::with_capacity(results.len());
    for (elapsed, r) in results {
        let r = r
            .map_err(|s| anyhow!("{}", describe_status(&s)))?
            .into_inner();
        if r.rejected > 0 {
            let first = r.results.iter().find_map(|i| match &i.outcome {
                Some(pb::item_result::Outcome::Error(e)) => Some(describe_item(e)),
                _ => None,
            });
            bail!(
                "{} events refused, first: {}",
                r.rejected,
                first.unwrap_or_default()
            );
        }
        latencies.push(elapsed.as_secs_f64() * 1000.0);
    }
    latencies.sort_by(f64::total_cmp);
    let pick = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    Ok(LoadReport {
        events,
        seconds,
        batch_p50_ms: pick(0.5),
        batch_p99_ms: pick(0.99),
    })
}

/// The importer's line reader and parser against arbitrary input (fuzz targets, proptest).
/// Long run: `PROPTEST_CASES=1000000 cargo nextest run -p wfl-cli import_fuzz`.
#[cfg(test)]
mod import_fuzz {
    use super::*;
    use proptest::prelude::*;

    fn lines(bytes: &[u8], max: usize) -> Vec<Line> {
        let mut reader = std::io::BufReader::with_capacity(7, bytes);
        let mut out = Vec::new();
        while let Some(line) = next_line(&mut reader, max).expect("in-memory read") {
            out.push(line);
        }
        out
    }

    proptest! {
        #[test]
        fn the_reader_splits_like_split_on_newline(
            bytes in proptest::collection::vec(
                prop_oneof![Just(b'\n'), Just(b'\r'), any::<u8>()], 0..300),
            max in 0usize..40,
        ) {
            let got = lines(&bytes, max);
            let mut want: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
            if bytes.is_empty() || bytes.ends_with(b"\n") {
                want.pop();
            }
            prop_assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(want) {
                let w = w.strip_suffix(b"\r").filter(|_| w.len() <= max).unwrap_or(w);
                match g {
                    Line::Text(t) => prop_assert_eq!(t.as_slice(), w),
                    Line::TooLong(n) => {
                        prop_assert!(*n > max);
                        prop_assert_eq!(*n, w.len());
                    }
                }
            }
        }

        #[test]
        fn parsing_arbitrary_text_never_panics(text in any::<String>()) {
            if let Err(e) = parse_event(&text) {
                prop_assert!(!e.to_string().is_empty());
            }
        }

        #[test]
        fn an_unknown_key_anywhere_is_named(key in "[a-z]{1,8}_x") {
            let event = serde_json::json!({
                "event_id": "0190a5c4-0000-7000-8000-000000000001",
                "org_id": "acme", "site_id": "main", "jurisdiction": "CN",
                "effective_date": "2026-03-02", "source": {"system": "test"},
                "payload": {"type": "Resignation", "separation": {
                    "worker_ref": "w1", "employment_relationship": "employee",
                    "contract_type": "open_ended", "initiator": "employee"}},
            });
            prop_assert!(parse_event(&event.to_string()).is_ok());
            for path in [vec![], vec!["source"], vec!["payload"], vec!["payload", "separation"]] {
                let mut bad = event.clone();
                let mut at = &mut bad;
                for p in &path {
                    at = &mut at[*p];
                }
                at[key.as_str()] = serde_json::json!(1);
                let e = parse_event(&bad.to_string()).expect_err("unknown field refused");
                let mut want = path.join(".");
                if !want.is_empty() {
                    want.push('.');
                }
                want.push_str(&key);
                prop_assert_eq!(e.to_string(), format!("unknown field {want}"));
            }
        }
    }
}
