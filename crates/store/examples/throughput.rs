//! Rough throughput check for `SledLog`:
//! `cargo run --release -p wfl-store --example throughput [events] [orgs] [ids] [dir]`.
//!
//! Appends `events` (default 200 000) ~200-byte events of `orgs` (default
//! 1 000) organisations in 1 000-record batches (one flush each), then times
//! a full scan, filtered reads and a chain verification. `ids` is `v7`
//! (time-ordered, the recommended event id; default) or `v4` (random).
//! Not a test: numbers depend on the machine and disk.

use std::time::Instant;

use uuid::Uuid;
use wfl_store::{Filter, Log, NewRecord, SledLog};

const BATCH: u64 = 1_000;
const TYPES: u64 = 12;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let events: u64 = args.next().map_or(Ok(200_000), |s| s.parse())?;
    let org_count: u64 = args.next().map_or(Ok(1_000), |s| s.parse())?;
    let random_ids = args.next().is_some_and(|s| s == "v4");
    let tmp = tempfile::tempdir()?;
    let dir = args
        .next()
        .map_or_else(|| tmp.path().to_path_buf(), Into::into);
    let log = SledLog::open(&dir)?;
    let start_seq = log.head()?.sequence + 1;
    let orgs: Vec<String> = (0..org_count.max(9))
        .map(|i| format!("org-{i:04}"))
        .collect();
    let types: Vec<String> = (0..TYPES).map(|i| format!("EventType{i}")).collect();

    let started = Instant::now();
    let mut next = start_seq;
    let end = start_seq + events;
    while next < end {
        let upto = (next + BATCH).min(end);
        let batch: Vec<NewRecord> = (next..upto)
            .map(|s| NewRecord {
                sequence: s,
                event_id: if random_ids {
                    Uuid::new_v4()
                } else {
                    Uuid::now_v7()
                },
                org_id: orgs[(s % orgs.len() as u64) as usize].clone(),
                event_type: types[(s % TYPES) as usize].clone(),
                bytes: vec![(s % 256) as u8; 200],
                submission: Some(Uuid::new_v4()),
            })
            .collect();
        log.append(&batch, &[])?;
        next = upto;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "append ({} orgs, {} ids): {events} events in {secs:.2}s = {:.0} events/s",
        orgs.len(),
        if random_ids { "v4" } else { "v7" },
        events as f64 / secs
    );

    let started = Instant::now();
    let mut scanned = 0u64;
    let mut from = 1;
    loop {
        let chunk = log.read(from, None, &Filter::default(), 10_000)?;
        let Some(last) = chunk.last() else { break };
        from = last.sequence + 1;
        scanned += chunk.len() as u64;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "scan: {scanned} records in {secs:.2}s = {:.0} records/s",
        scanned as f64 / secs
    );

    let filter = Filter {
        org_ids: vec![orgs[7].clone()],
        event_types: vec![],
    };
    let started = Instant::now();
    let small = log.read(1, None, &filter, usize::MAX)?;
    println!(
        "one org: {} records in {:?}",
        small.len(),
        started.elapsed()
    );

    let filter = Filter {
        org_ids: vec![orgs[7].clone(), orgs[8].clone()],
        event_types: vec![types[7].clone()],
    };
    let started = Instant::now();
    let both = log.read(1, None, &filter, usize::MAX)?;
    println!(
        "two orgs x one type: {} records in {:?}",
        both.len(),
        started.elapsed()
    );

    let started = Instant::now();
    let head = log.verify_chain()?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "verify: {} records in {secs:.2}s = {:.0} records/s",
        head.sequence,
        head.sequence as f64 / secs
    );

    // Merkle: roots and proofs read from the stored tiles, never rebuilt.
    let n = head.sequence;
    let started = Instant::now();
    let root = log.merkle_root(n)?;
    println!("merkle root at {n}: {:?}", started.elapsed());
    let samples = 1_000u64;
    let started = Instant::now();
    let mut longest = std::time::Duration::ZERO;
    for i in 0..samples {
        let sequence = 1 + (i * 7_919) % n.max(1);
        let one = Instant::now();
        let proof = log.inclusion_proof(sequence, n)?;
        longest = longest.max(one.elapsed());
        std::hint::black_box(&proof);
    }
    println!(
        "inclusion proof: {samples} proofs at size {n}, mean {:?}, max {longest:?}",
        started.elapsed() / samples as u32
    );
    let started = Instant::now();
    let mut longest = std::time::Duration::ZERO;
    for i in 0..samples {
        let old = 1 + (i * 7_919) % n.max(1);
        let one = Instant::now();
        let proof = log.consistency_proof(old, n)?;
        longest = longest.max(one.elapsed());
        std::hint::black_box(&proof);
    }
    println!(
        "consistency proof: {samples} proofs to size {n}, mean {:?}, max {longest:?}",
        started.elapsed() / samples as u32
    );
    let started = Instant::now();
    log.verify_all(&mut |_| {})?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "verify_all (chain + every Merkle node): {n} records in {secs:.2}s = {:.0} records/s (root {})",
        n as f64 / secs,
        root.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    Ok(())
}
