//! What the writer's per-worker state keys cost an append:
//! `cargo run --release -p wfl-store --example writer_state_cost [keys per 1,000 events] [events] [layout]`.
//!
//! Appends `events` (default 300,000) records of 340 bytes in batches of 1,000, one flush each,
//! as the ledger's writer does, and with each batch the metadata writes `layout` says, for `keys`
//! (default 600: what the realistic mix of `wfl load` and `wfl bench ingest` changes) workers:
//!
//! - `keyed` (default): one metadata key per worker, as `wfl_ledger::snapshot` writes its
//!   `ledger-keyed/w/…` keys today, names in increasing order;
//! - `scattered`: the same keys, names in no order;
//! - `one`: the same bytes in one value per batch;
//! - `chunks`: twice as many workers per batch as it has events (a dump of the whole state
//!   written a slice per append), in values of about 6 KB, the records' chunk size.
//!
//! Prints the rate and the CPU time (user + system) per event. Run it with `0` keys for the
//! records alone. Not a test: numbers depend on the machine and the disk.

use std::time::Instant;

use uuid::Uuid;
use wfl_store::{Log, NewRecord, SledLog};

const BATCH: u64 = 1_000;

/// This process's CPU time so far (user + system), in seconds.
fn cpu_seconds() -> Result<f64, Box<dyn std::error::Error>> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // The fields after the command name, which ends at the last ')'.
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let ticks = |i: usize| -> Result<f64, Box<dyn std::error::Error>> {
        Ok(fields
            .get(i)
            .ok_or("short /proc/self/stat")?
            .parse::<f64>()?)
    };
    // utime and stime, in clock ticks (100 per second on Linux).
    Ok((ticks(11)? + ticks(12)?) / 100.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let keys: u64 = args.next().map_or(Ok(600), |s| s.parse())?;
    let events: u64 = args.next().map_or(Ok(300_000), |s| s.parse())?;
    let layout = args.next().unwrap_or_else(|| "keyed".to_owned());
    if !["keyed", "scattered", "one", "chunks"].contains(&layout.as_str()) {
        return Err(format!("layout {layout:?}: expected keyed, scattered, one or chunks").into());
    }
    let tmp = tempfile::tempdir()?;
    let log = SledLog::open(tmp.path())?;
    let (cpu_before, started) = (cpu_seconds()?, Instant::now());
    let mut worker = 0u64;
    let mut next = 1;
    while next <= events {
        let upto = (next + BATCH).min(events + 1);
        let records: Vec<NewRecord> = (next..upto)
            .map(|sequence| NewRecord {
                sequence,
                event_id: Uuid::now_v7(),
                org_id: format!("org-{}", sequence % 4),
                event_type: format!("EventType{}", sequence % 12),
                bytes: vec![(sequence % 256) as u8; 340],
                submission: Some(Uuid::new_v4()),
            })
            .collect();
        let mut names = Vec::with_capacity(keys as usize);
        for _ in 0..keys {
            worker += 1;
            names.push(match layout.as_str() {
                "scattered" => worker.wrapping_mul(0x9E37_79B9_7F4A_7C15),
                _ => worker,
            });
        }
        // A worker key and value as `wfl_ledger::snapshot` writes them: 13 bytes of state and a
        // 4-byte check.
        let key = |n: u64| format!("ledger-keyed/w/0000000a/bench-orgwfl-load-{n:020}");
        let meta: Vec<(String, Option<Vec<u8>>)> = if layout == "chunks" {
            // 2 workers per event, about 45 bytes each, 128 to a value.
            let workers = 2 * (upto - next);
            (0..workers.div_ceil(128))
                .map(|n| {
                    let value = vec![1; 128 * 45];
                    (format!("dump/{next:016x}/{n:08x}"), Some(value))
                })
                .collect()
        } else if layout == "one" && !names.is_empty() {
            let mut value = Vec::new();
            for &n in &names {
                value.extend_from_slice(key(n).as_bytes());
                value.extend_from_slice(&[1; 17]);
            }
            vec![(format!("delta/{next:016x}"), Some(value))]
        } else {
            names.iter().map(|&n| (key(n), Some(vec![1; 17]))).collect()
        };
        log.append_with_meta(&records, &[], &meta)?;
        next = upto;
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds()? - cpu_before;
    let what = if layout == "chunks" {
        "2 workers per event in 6 KB values (chunks)".to_owned()
    } else {
        format!("{keys} worker keys per 1,000 events ({layout})")
    };
    println!(
        "{what}: {events} events in {secs:.2} s = {:.0} events/s, {:.2} µs CPU per event",
        events as f64 / secs,
        cpu / events as f64 * 1e6
    );
    Ok(())
}
