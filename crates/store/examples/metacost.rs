use std::time::Instant;
use uuid::Uuid;
use wfl_store::{Log, NewRecord, SledLog};
fn cpu() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap();
    let f: Vec<&str> = s.rsplit(')').next().unwrap().split_whitespace().collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
}
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let meta_per: usize = std::env::args().nth(1).unwrap().parse()?;
    let events = 300_000u64;
    let tmp = tempfile::tempdir()?;
    let log = SledLog::open(tmp.path())?;
    let (c0, t0) = (cpu(), Instant::now());
    let mut next = 1;
    let mut w = 0u64;
    while next <= events {
        let batch: Vec<NewRecord> = (next..next + 1000)
            .map(|s| NewRecord {
                sequence: s,
                event_id: Uuid::now_v7(),
                org_id: format!("org-{}", s % 4),
                event_type: format!("T{}", s % 12),
                bytes: vec![(s % 256) as u8; 340],
                submission: Some(Uuid::new_v4()),
            })
            .collect();
        let meta: Vec<(String, Option<Vec<u8>>)> = (0..meta_per)
            .map(|_| {
                w += 1;
                (
                    format!("ledger-keyed/w/{:08x}/bench-org-1run-{w}", 10),
                    Some(vec![1u8; 13]),
                )
            })
            .collect();
        log.append_with_meta(&batch, &[], &meta)?;
        next += 1000;
    }
    let (c, t) = (cpu() - c0, t0.elapsed().as_secs_f64());
    println!(
        "meta/1000={meta_per}: {:.0} ev/s, {:.2} us cpu/event",
        events as f64 / t,
        c / events as f64 * 1e6
    );
    Ok(())
}
