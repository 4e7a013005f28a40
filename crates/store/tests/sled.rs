//! `SledLog`-specific behaviour: reopening, tamper detection, damaged values
//! and concurrent readers. The shared contract lives in `conformance.rs`.

// `u64::is_multiple_of` needs Rust 1.87; the workspace supports 1.80.
#![allow(clippy::manual_is_multiple_of)]

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use uuid::Uuid;
use wfl_store::{
    Decision, Error, Filter, Head, Log, NewRecord, RefusalCode, Rejection, SledLog, StoredRecord,
    TREE_NAME,
};

fn rec(sequence: u64, org: &str, event_type: &str) -> NewRecord {
    NewRecord {
        sequence,
        event_id: Uuid::from_u128(u128::from(sequence)),
        org_id: org.to_owned(),
        event_type: event_type.to_owned(),
        bytes: payload(sequence),
        submission: None,
    }
}

/// Delimited so that no record's payload contains another's.
fn payload(sequence: u64) -> Vec<u8> {
    format!("<event {sequence}>").into_bytes()
}

fn seed(log: &dyn Log, count: u64) {
    let records: Vec<NewRecord> = (1..=count)
        .map(|s| rec(s, if s % 2 == 0 { "even" } else { "odd" }, "T"))
        .collect();
    log.append(&records, &[]).unwrap();
}

fn org(name: &str) -> Filter {
    Filter {
        org_ids: vec![name.to_owned()],
        event_types: vec![],
    }
}

/// Key of the chunk whose first record is `sequence`.
fn chunk_key(sequence: u64) -> Vec<u8> {
    let mut key = vec![b'e'];
    key.extend_from_slice(&sequence.to_be_bytes());
    key
}

/// The chunk holding record `sequence` and where its opaque bytes start in
/// it. Per the documented layout the entry is `event_id:16 prev_hash:32
/// hash:32 bytes`, so the hash is the 32 bytes before that offset and the
/// prev hash the 32 before those.
fn locate(tree: &sled::Tree, sequence: u64) -> (sled::IVec, Vec<u8>, usize) {
    let needle = payload(sequence);
    for entry in tree.scan_prefix(b"e") {
        let (key, value) = entry.unwrap();
        if let Some(at) = value.windows(needle.len()).position(|w| w == needle) {
            return (key, value.to_vec(), at);
        }
    }
    panic!("record {sequence} not found in any chunk");
}

/// Flip bits of the byte `offset` bytes from the start of record
/// `sequence`'s opaque bytes (negative: into its entry header).
fn flip(tree: &sled::Tree, sequence: u64, offset: isize, mask: u8) {
    let (key, mut value, at) = locate(tree, sequence);
    let index = at.checked_add_signed(offset).unwrap();
    value[index] ^= mask;
    tree.insert(key, value).unwrap();
}

/// Ten records committed by three appends: chunks start at 1, 5 and 8.
fn seed_three_chunks(log: &dyn Log) {
    let all: Vec<NewRecord> = (1..=10)
        .map(|s| rec(s, if s % 2 == 0 { "even" } else { "odd" }, "T"))
        .collect();
    for range in [0..4, 4..7, 7..10] {
        log.append(&all[range], &[]).unwrap();
    }
}

fn corrupt_at<T: std::fmt::Debug>(result: Result<T, Error>) -> u64 {
    match result {
        Err(Error::Corrupt { sequence, .. }) => sequence,
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

/// Open `dir` through a sled handle the test keeps, so it can tamper with
/// the tree underneath a live log.
fn open_with_handle(dir: &Path) -> (sled::Db, sled::Tree, SledLog) {
    let db = wfl_store::open_sled(&sled::Config::new().path(dir)).unwrap();
    let tree = db.open_tree(TREE_NAME).unwrap();
    let log = SledLog::open_db(db.clone()).unwrap();
    (db, tree, log)
}

/// Seed a store, close the log, damage its tree, and try to open a log on
/// it again (over the same sled handle, so no sled-level reopen is needed).
fn reopen_after(count: u64, damage: impl FnOnce(&sled::Tree)) -> Result<SledLog, Error> {
    let dir = tempfile::tempdir().unwrap();
    let (db, tree, log) = open_with_handle(dir.path());
    seed(&log, count);
    drop(log);
    damage(&tree);
    SledLog::open_db(db)
}

#[test]
fn reopen_keeps_head_chain_indexes_and_continues_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let (head, snapshot) = {
        let log = SledLog::open(dir.path()).unwrap();
        seed(&log, 10);
        log.meta_put("cursor", b"7").unwrap();
        log.append(
            &[],
            &[Rejection {
                event_id: Uuid::from_u128(999),
                code: RefusalCode::FailedPrecondition,
                message: "no".to_owned(),
                content: Some([7; 32]),
            }],
        )
        .unwrap();
        (
            log.head().unwrap(),
            log.read(0, None, &Filter::default(), 100).unwrap(),
        )
    };

    let log = SledLog::open(dir.path()).unwrap();
    assert_eq!(log.head().unwrap(), head);
    assert_eq!(log.verify_chain().unwrap(), head);
    assert_eq!(
        log.read(0, None, &Filter::default(), 100).unwrap(),
        snapshot
    );
    let odd: Vec<u64> = log
        .read(0, None, &org("odd"), 100)
        .unwrap()
        .iter()
        .map(|r| r.sequence)
        .collect();
    assert_eq!(odd, vec![1, 3, 5, 7, 9]);
    assert_eq!(log.meta_get("cursor").unwrap(), Some(b"7".to_vec()));
    assert_eq!(
        log.decision(&Uuid::from_u128(999)).unwrap(),
        Some(Decision::Rejected {
            code: RefusalCode::FailedPrecondition,
            message: "no".to_owned(),
            content: Some([7; 32]),
        })
    );
    assert!(matches!(
        log.decision(&Uuid::from_u128(4)).unwrap(),
        Some(Decision::Committed { sequence: 4, .. })
    ));
    // Duplicate detection survives the reopen too.
    assert!(matches!(
        log.append(&[rec(11, "odd", "T")], &[])
            .map(|_| ())
            .and_then(|()| {
                let mut again = rec(12, "odd", "T");
                again.event_id = Uuid::from_u128(3);
                log.append(&[again], &[])
            }),
        Err(Error::Conflict(_))
    ));

    let eleven = log.get(11).unwrap().unwrap();
    assert_eq!(eleven.prev_hash, head.hash);
    drop(log);

    let log = SledLog::open(dir.path()).unwrap();
    assert_eq!(log.verify_chain().unwrap().sequence, 11);
    let odd: Vec<u64> = log
        .read(0, None, &org("odd"), 100)
        .unwrap()
        .iter()
        .map(|r| r.sequence)
        .collect();
    assert_eq!(odd, vec![1, 3, 5, 7, 9, 11]);
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _log = SledLog::open(dir.path()).unwrap();
    assert!(matches!(SledLog::open(dir.path()), Err(Error::Io(_))));
}

#[test]
fn flipping_one_stored_byte_is_corrupt_at_exactly_that_sequence() {
    // (record, byte offset into its opaque bytes)
    for (sequence, offset) in [(7u64, 8isize), (1, 0), (20, 2), (13, 5)] {
        let dir = tempfile::tempdir().unwrap();
        let (_db, tree, log) = open_with_handle(dir.path());
        seed(&log, 20);
        assert_eq!(log.verify_chain().unwrap().sequence, 20);

        flip(&tree, sequence, offset, 0x01);

        assert_eq!(corrupt_at(log.verify_chain()), sequence);
        // Plain reads do not re-hash; they still serve the (damaged) bytes.
        assert_ne!(log.get(sequence).unwrap().unwrap().bytes, payload(sequence));
    }
}

#[test]
fn tampered_links_and_hashes_are_corrupt_at_that_sequence() {
    // Into the stored hash (-1..-32) and the stored prev hash (-33..-64).
    for offset in [-1isize, -20, -33, -60] {
        let dir = tempfile::tempdir().unwrap();
        let (_db, tree, log) = open_with_handle(dir.path());
        seed(&log, 10);
        flip(&tree, 4, offset, 0x80);
        assert_eq!(corrupt_at(log.verify_chain()), 4, "offset {offset}");
    }
}

#[test]
fn tampering_survives_reopen_and_is_still_caught() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (_db, tree, log) = open_with_handle(dir.path());
        seed(&log, 10);
        flip(&tree, 3, 1, 0xff);
    }
    // No checkpoint has verified anything yet, so the open re-checks the
    // whole tail and refuses.
    assert_eq!(corrupt_at(SledLog::open(dir.path())), 3);
}

#[test]
fn a_malformed_chunk_is_corrupt_everywhere_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, tree, log) = open_with_handle(dir.path());
    seed_three_chunks(&log);
    tree.insert(chunk_key(5), &b"short"[..]).unwrap();
    assert_eq!(corrupt_at(log.get(5)), 5);
    assert_eq!(corrupt_at(log.get(6)), 5);
    assert_eq!(corrupt_at(log.read(0, None, &Filter::default(), 100)), 5);
    assert_eq!(corrupt_at(log.read(0, None, &org("odd"), 100)), 5);
    assert_eq!(corrupt_at(log.verify_chain()), 5);
    // Records outside the damaged chunk are still served.
    assert_eq!(
        log.read(0, Some(4), &Filter::default(), 100).unwrap().len(),
        4
    );
    assert_eq!(log.get(9).unwrap().unwrap().bytes, payload(9));
}

#[test]
fn no_chunk_shape_makes_reads_panic() {
    let mut shapes: Vec<Vec<u8>> = vec![
        vec![],
        vec![0, 0, 0],
        vec![0, 0, 0, 0],                                             // zero records
        vec![0xff, 0xff, 0xff, 0xff],                                 // more records than bytes
        vec![0, 0, 0, 3, 0, 0, 0, 80, 0, 0, 0, 40, 0, 0, 0, 200],     // offsets going backwards
        vec![0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff],                     // offset past the end
        vec![0, 0, 0, 1, 0, 0, 0, 10, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10], // entry too short
    ];
    let mut tail = vec![0, 0, 0, 2, 0, 0, 0, 80, 0, 0, 0, 160];
    tail.extend_from_slice(&[0; 100]);
    shapes.push(tail); // second entry truncated
    for shape in shapes {
        let dir = tempfile::tempdir().unwrap();
        let (_db, tree, log) = open_with_handle(dir.path());
        seed_three_chunks(&log);
        tree.insert(chunk_key(5), shape.clone()).unwrap();
        for sequence in 1..=10 {
            // Whatever the shape, an answer and never a panic; some shapes
            // still decode to (garbage) records.
            let _ = log.get(sequence);
        }
        assert!(
            matches!(log.verify_chain(), Err(Error::Corrupt { .. })),
            "{shape:?}"
        );
        assert!(
            log.read(0, None, &Filter::default(), 100).is_err(),
            "{shape:?}"
        );
        assert!(log.read(0, None, &org("even"), 100).is_err(), "{shape:?}");
        assert!(log.read(0, Some(4), &Filter::default(), 100).is_ok());
    }
}

#[test]
fn a_missing_chunk_is_corrupt_not_absent() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, tree, log) = open_with_handle(dir.path());
    seed_three_chunks(&log);
    tree.remove(chunk_key(5)).unwrap();
    assert_eq!(corrupt_at(log.get(6)), 6);
    assert_eq!(corrupt_at(log.read(0, None, &org("even"), 100)), 6);
    assert_eq!(corrupt_at(log.read(0, None, &Filter::default(), 100)), 5);
    assert_eq!(corrupt_at(log.read(6, None, &Filter::default(), 100)), 6);
    assert_eq!(corrupt_at(log.verify_chain()), 5);
    assert_eq!(log.read(8, None, &Filter::default(), 100).unwrap().len(), 3);
}

#[test]
fn damaged_decisions_and_index_keys_are_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, tree, log) = open_with_handle(dir.path());
    seed(&log, 10);

    for garbage in [
        &b""[..],
        b"C",
        b"Cxxxx",
        b"Q12345",
        b"R\x00\x00\x00\x01\xff\xfe",
        b"Dshort",
        b"S\x00\x00\x00\x01short",
    ] {
        let mut key = vec![b'i'];
        key.extend_from_slice(Uuid::from_u128(2).as_bytes());
        tree.insert(key, garbage).unwrap();
        assert_eq!(corrupt_at(log.decision(&Uuid::from_u128(2))), 0);
        // A damaged decision must not let the id be committed twice.
        let mut again = rec(11, "odd", "T");
        again.event_id = Uuid::from_u128(2);
        assert!(log.append(&[again], &[]).is_err());
        assert_eq!(log.head().unwrap().sequence, 10);
    }

    // Committed ids live in groups under `k` + first 6 id bytes + group
    // number (66-byte entries); ids 1..=10 share the all-zero prefix.
    let group_key = [b'k', 0, 0, 0, 0, 0, 0, 0];
    let good = tree.get(group_key).unwrap().unwrap();
    let mut unsorted = good.to_vec();
    unsorted.rotate_left(66);
    for garbage in [vec![], vec![1, 2, 3], good[..70].to_vec(), unsorted] {
        tree.insert(group_key, garbage).unwrap();
        assert_eq!(corrupt_at(log.decision(&Uuid::from_u128(4))), 0);
        assert!(matches!(
            log.append(&[rec(11, "odd", "T")], &[]),
            Err(Error::Corrupt { .. })
        ));
    }
    tree.insert(group_key, good).unwrap();
    assert!(matches!(
        log.decision(&Uuid::from_u128(4)).unwrap(),
        Some(Decision::Committed { sequence: 4, .. })
    ));

    // A posting key with a 9-byte sequence suffix, sorted inside org "odd".
    let mut key = vec![b'o', 0, 3];
    key.extend_from_slice(b"odd");
    key.extend_from_slice(&5u64.to_be_bytes());
    key.push(0);
    tree.insert(&key, &[0, 0, 0, 0][..]).unwrap();
    assert!(matches!(
        log.read(0, None, &org("odd"), 100),
        Err(Error::Corrupt { .. })
    ));
    tree.remove(&key).unwrap();
    assert_eq!(log.read(0, None, &org("odd"), 100).unwrap().len(), 5);

    // A posting group whose value is not a whole number of offsets.
    let mut key = vec![b'o', 0, 4];
    key.extend_from_slice(b"even");
    key.extend_from_slice(&2u64.to_be_bytes());
    tree.insert(&key, &[0, 0, 0][..]).unwrap();
    assert!(matches!(
        log.read(0, None, &org("even"), 100),
        Err(Error::Corrupt { .. })
    ));
    // Other orgs are unaffected.
    assert_eq!(log.read(0, None, &org("odd"), 100).unwrap().len(), 5);
}

#[test]
fn a_damaged_head_or_layout_version_fails_the_open() {
    type Damage = fn(&sled::Tree);
    let damages: [(&str, Damage); 6] = [
        ("last chunk malformed", |t| {
            t.insert(chunk_key(1), &b"xx"[..]).unwrap();
        }),
        ("short head", |t| {
            t.insert(b"h", &b"xx"[..]).unwrap();
        }),
        ("head ahead of the records", |t| {
            let mut head = 11u64.to_be_bytes().to_vec();
            head.extend_from_slice(&[0; 32]);
            t.insert(b"h", head).unwrap();
        }),
        ("head behind the records", |t| {
            let mut head = 9u64.to_be_bytes().to_vec();
            head.extend_from_slice(&[0; 32]);
            t.insert(b"h", head).unwrap();
        }),
        ("head missing", |t| {
            t.remove(b"h").unwrap();
        }),
        ("unknown layout version", |t| {
            t.insert(b"v", &[9u8][..]).unwrap();
        }),
    ];
    for (what, damage) in damages {
        assert!(
            matches!(reopen_after(10, damage), Err(Error::Corrupt { .. })),
            "{what}"
        );
    }
    // Undamaged, the same path succeeds.
    assert_eq!(
        reopen_after(10, |_| {}).unwrap().head().unwrap().sequence,
        10
    );
}

#[test]
fn head_hash_disagreeing_with_last_record_fails_the_open() {
    let result = reopen_after(3, |t| {
        let mut head = 3u64.to_be_bytes().to_vec();
        head.extend_from_slice(&[7; 32]);
        t.insert(b"h", head).unwrap();
    });
    assert!(matches!(result, Err(Error::Corrupt { .. })));
}

#[test]
fn concurrent_readers_only_see_whole_durable_prefixes() {
    let dir = tempfile::tempdir().unwrap();
    let log = SledLog::open(dir.path()).unwrap();
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                let mut observed = 0;
                while !done.load(Ordering::Acquire) {
                    let head = log.head().unwrap();
                    assert!(head.sequence >= observed, "head went backwards");
                    observed = head.sequence;
                    if head.sequence == 0 {
                        continue;
                    }
                    let last = log.get(head.sequence).unwrap().unwrap();
                    assert_eq!(last.hash, head.hash);
                    let all: Vec<StoredRecord> =
                        log.read(1, None, &Filter::default(), usize::MAX).unwrap();
                    assert!(all.len() as u64 >= head.sequence);
                    assert!(all.windows(2).all(|w| w[1].prev_hash == w[0].hash));
                    assert!(log.verify_chain().unwrap().sequence >= head.sequence);
                }
            });
        }
        let mut next = 1;
        for _ in 0..40 {
            let batch: Vec<NewRecord> = (next..next + 25).map(|s| rec(s, "o", "T")).collect();
            log.append(&batch, &[]).unwrap();
            next += 25;
        }
        done.store(true, Ordering::Release);
    });
    assert_eq!(
        log.verify_chain().unwrap(),
        Head {
            sequence: 1000,
            hash: log.get(1000).unwrap().unwrap().hash
        }
    );
}

/// Look-ups racing appends (the outcome questions beside the writer): what a look-up found is
/// kept for the next append, so one read too early would let an id be appended twice, or an
/// append extend a stale id group and lose ids. Every id stays decided exactly once, through
/// groups and the per-id keys beyond them (2,000 ids in one prefix).
#[test]
fn look_ups_racing_appends_never_let_an_id_be_decided_twice_or_lost() {
    const BATCH: u64 = 20;
    const BATCHES: u64 = 100;
    let dir = tempfile::tempdir().unwrap();
    let log = SledLog::open(dir.path()).unwrap();
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for t in 0..2u64 {
            let (log, done) = (&log, &done);
            scope.spawn(move || {
                let mut x = 0x9e37_79b9_7f4a_7c15_u64 ^ t;
                while !done.load(Ordering::Acquire) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let _ = log
                        .decision(&Uuid::from_u128(u128::from(1 + x % (BATCH * BATCHES))))
                        .unwrap();
                }
            });
        }
        for b in 0..BATCHES {
            let first = 1 + b * BATCH;
            let batch: Vec<NewRecord> = (first..first + BATCH).map(|s| rec(s, "o", "T")).collect();
            // As the writer does: look every id up, then append.
            for r in &batch {
                assert_eq!(log.decision(&r.event_id).unwrap(), None);
            }
            log.append(&batch, &[]).unwrap();
            for earlier in [1, first.div_ceil(2), first] {
                let mut again = rec(first + BATCH, "o", "T");
                again.event_id = Uuid::from_u128(u128::from(earlier));
                let _ = log.decision(&again.event_id).unwrap();
                assert!(
                    matches!(log.append(&[again], &[]), Err(Error::Conflict(_))),
                    "id {earlier} was appended twice"
                );
            }
        }
        done.store(true, Ordering::Release);
    });
    for s in 1..=BATCH * BATCHES {
        assert!(
            matches!(
                log.decision(&Uuid::from_u128(u128::from(s))).unwrap(),
                Some(Decision::Committed { sequence, .. }) if sequence == s
            ),
            "id {s} lost its decision"
        );
    }
}

/// A layout 2 store (committed ids in `j` groups without submission ids, refusals without a
/// content hash) is still read after the upgrade to layout 3: its ids stay decided, with
/// `submission` and `content` unknown, and new appends extend the layout 3 groups.
#[test]
fn a_layout_2_store_keeps_its_decisions() {
    let dir = tempfile::tempdir().unwrap();
    let (db, tree, log) = open_with_handle(dir.path());
    seed(&log, 10);
    log.append(
        &[],
        &[Rejection {
            event_id: Uuid::from_u128(999),
            code: RefusalCode::FailedPrecondition,
            message: "no".to_owned(),
            content: Some([7; 32]),
        }],
    )
    .unwrap();
    drop(log);
    // Rewrite the layout 3 shapes as layout 2 wrote them.
    let groups: Vec<_> = tree.scan_prefix(b"k").map(Result::unwrap).collect();
    assert!(!groups.is_empty(), "seeded ids are in k groups");
    for (key, value) in groups {
        let mut old_key = key.to_vec();
        old_key[0] = b'j';
        let old: Vec<u8> = value
            .chunks_exact(66)
            .flat_map(|entry| entry[..50].to_vec())
            .collect();
        tree.remove(&key).unwrap();
        tree.insert(old_key, old).unwrap();
    }
    let mut refusal = b"R".to_vec();
    refusal.extend_from_slice(&9i32.to_be_bytes());
    refusal.extend_from_slice(b"no");
    let mut refusal_key = b"i".to_vec();
    refusal_key.extend_from_slice(Uuid::from_u128(999).as_bytes());
    tree.insert(refusal_key, refusal).unwrap();
    tree.insert(b"v", &[2u8][..]).unwrap();

    let log = SledLog::open_db(db).unwrap();
    assert_eq!(tree.get(b"v").unwrap().unwrap().as_ref(), &[3u8]);
    assert_eq!(
        log.decision(&Uuid::from_u128(4)).unwrap(),
        Some(Decision::Committed {
            sequence: 4,
            hash: log.get(4).unwrap().unwrap().hash,
            submission: None,
        })
    );
    assert_eq!(
        log.decision(&Uuid::from_u128(999)).unwrap(),
        Some(Decision::Rejected {
            code: RefusalCode::FailedPrecondition,
            message: "no".to_owned(),
            content: None,
        })
    );
    // Old ids stay decided: appending one again is a conflict, a new one lands in a k group.
    log.append(&[rec(11, "odd", "T")], &[]).unwrap();
    let mut again = rec(12, "odd", "T");
    again.event_id = Uuid::from_u128(3);
    assert!(matches!(log.append(&[again], &[]), Err(Error::Conflict(_))));
    let mut fresh = rec(12, "odd", "T");
    fresh.submission = Some(Uuid::from_u128(0xabc));
    log.append(&[fresh], &[]).unwrap();
    assert!(matches!(
        log.decision(&Uuid::from_u128(12)).unwrap(),
        Some(Decision::Committed { sequence: 12, submission: Some(s), .. }) if s == Uuid::from_u128(0xabc)
    ));
}
