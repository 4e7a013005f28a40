//! Crash test: an acknowledged append survives `kill -9`.
//!
//! The test binary re-executes itself as a writer child (selected by an
//! environment variable). The child appends batches of 100 in a loop and
//! prints each acknowledged last sequence; the parent reads a few hundred
//! acknowledgements, SIGKILLs the child mid-stream, reopens the store and
//! checks that nothing acknowledged was lost and the chain still verifies.
//! Each append also writes metadata (`Log::append_with_meta`): after the kill
//! it must describe exactly the surviving head, never a batch more or less.
//! Synchronisation is purely on the child's stdout lines: no sleeps.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use uuid::Uuid;
use wfl_store::{Filter, Log, NewRecord, SledLog};

/// Set (to the store directory) when this binary runs as the writer child.
const CHILD_ENV: &str = "WFL_STORE_CRASH_WRITER_DIR";
const TEST_NAME: &str = "kill_minus_nine_loses_no_acknowledged_append";
/// Marker in front of every acknowledged sequence; searched anywhere in a
/// line because the test harness may print on the same line.
const ACK: &str = "wfl-ack=";
const BATCH: u64 = 100;
const ACKS_BEFORE_KILL: usize = 300;
/// Metadata each append writes: the last sequence, and one key per batch.
const THROUGH: &str = "crash/through";
const BATCHES: &str = "crash/batch/";

fn record(sequence: u64) -> NewRecord {
    NewRecord {
        sequence,
        event_id: Uuid::from_u128(u128::from(sequence) << 64 | 0xc0ffee),
        org_id: format!("org-{}", sequence % 7),
        event_type: "CrashTested".to_owned(),
        bytes: payload(sequence),
        submission: None,
    }
}

fn payload(sequence: u64) -> Vec<u8> {
    let mut bytes = format!("crash-test record {sequence};").into_bytes();
    bytes.resize(120, (sequence % 251) as u8);
    bytes
}

/// The writer child: append forever, acknowledging each durable batch.
fn writer_child(dir: &Path) -> ! {
    let log = SledLog::open(dir).expect("child: open store");
    let mut next = log.head().expect("child: head").sequence + 1;
    let mut out = std::io::stdout().lock();
    loop {
        let batch: Vec<NewRecord> = (next..next + BATCH).map(record).collect();
        let last = next + BATCH - 1;
        let meta = [
            (THROUGH.to_owned(), Some(last.to_be_bytes().to_vec())),
            (format!("{BATCHES}{next:016x}"), Some(Vec::new())),
        ];
        log.append_with_meta(&batch, &[], &meta)
            .expect("child: append");
        next += BATCH;
        // Only after `append` returned Ok may the sequence be acknowledged.
        if writeln!(out, "{ACK}{}", next - 1)
            .and_then(|()| out.flush())
            .is_err()
        {
            // The parent is gone; nothing left to prove.
            std::process::exit(0);
        }
    }
}

#[test]
fn kill_minus_nine_loses_no_acknowledged_append() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        writer_child(Path::new(&dir));
    }

    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();

    let mut last_ack = 0;
    let mut acks = 0;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        let Some(at) = line.find(ACK) else { continue };
        let sequence: u64 = line[at + ACK.len()..].trim().parse().unwrap();
        assert_eq!(sequence, last_ack + BATCH, "acks must be contiguous");
        last_ack = sequence;
        acks += 1;
        if acks == ACKS_BEFORE_KILL {
            break;
        }
    }
    assert_eq!(acks, ACKS_BEFORE_KILL, "writer child stopped early");
    // SIGKILL on unix: no destructors, no final flush.
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "child must have been killed, got {status}"
    );

    let log = SledLog::open(dir.path()).unwrap();
    let head = log.head().unwrap();
    assert!(
        head.sequence >= last_ack,
        "lost acknowledged records: head {} < acknowledged {last_ack}",
        head.sequence
    );
    assert_eq!(
        head.sequence % BATCH,
        0,
        "a batch was torn: head {}",
        head.sequence
    );
    assert_eq!(log.verify_chain().unwrap(), head);
    // The metadata written with the records survived with them, and only with them.
    assert_eq!(
        log.meta_get(THROUGH).unwrap(),
        Some(head.sequence.to_be_bytes().to_vec())
    );
    let batches = log.meta_scan(BATCHES, None, usize::MAX).unwrap();
    assert_eq!(batches.len() as u64, head.sequence / BATCH);
    assert_eq!(
        batches.last().map(|(k, _)| k.clone()),
        Some(format!("{BATCHES}{:016x}", head.sequence - BATCH + 1))
    );

    let all = log
        .read(1, Some(last_ack), &Filter::default(), usize::MAX)
        .unwrap();
    assert_eq!(all.len() as u64, last_ack);
    for (want, stored) in (1..=last_ack).zip(&all) {
        assert_eq!(stored.sequence, want);
        assert_eq!(stored.event_id, record(want).event_id);
        assert_eq!(stored.bytes, payload(want));
    }
    let org_three = log
        .read(
            1,
            Some(last_ack),
            &Filter {
                org_ids: vec!["org-3".to_owned()],
                event_types: vec![],
            },
            usize::MAX,
        )
        .unwrap();
    assert_eq!(
        org_three.len() as u64,
        (1..=last_ack).filter(|s| s % 7 == 3).count() as u64
    );

    // The recovered store keeps going where the dead writer stopped.
    let next = head.sequence + 1;
    log.append(&[record(next)], &[]).unwrap();
    assert_eq!(log.verify_chain().unwrap().sequence, next);
}
