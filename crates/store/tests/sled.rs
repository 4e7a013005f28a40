//! `SledLog`-specific behaviour: reopening, tamper detection, damaged values
//! and concurrent readers. The shared contract lives in `conformance.rs`.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use uuid::Uuid;
use wfl_store::{
    Decision, Error, Filter, Head, Log, NewRecord, Rejection, SledLog, StoredRecord, TREE_NAME,
};

fn rec(sequence: u64, org: &str, event_type: &str) -> NewRecord {
    NewRecord {
        sequence,
        event_id: Uuid::from_u128(u128::from(sequence)),
        org_id: org.to_owned(),
        event_type: event_type.to_owned(),
        bytes: format!("event {sequence}").into_bytes(),
    }
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

fn record_key(sequence: u64) -> Vec<u8> {
    let mut key = vec![b'e'];
    key.extend_from_slice(&sequence.to_be_bytes());
    key
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
    let db = sled::open(dir).unwrap();
    let tree = db.open_tree(TREE_NAME).unwrap();
    let log = SledLog::open_db(db.clone()).unwrap();
    (db, tree, log)
}

/// Apply `damage` to the tree of a closed store at `dir`.
fn tamper_closed(dir: &Path, damage: impl FnOnce(&sled::Tree)) {
    let db = sled::open(dir).unwrap();
    let tree = db.open_tree(TREE_NAME).unwrap();
    damage(&tree);
    db.flush().unwrap();
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
                code: 9,
                message: "no".to_owned(),
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
            code: 9,
            message: "no".to_owned()
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
    for (sequence, offset_from_end) in [(7u64, 1usize), (1, 3), (20, 1)] {
        let dir = tempfile::tempdir().unwrap();
        let (_db, tree, log) = open_with_handle(dir.path());
        seed(&log, 20);
        assert_eq!(log.verify_chain().unwrap().sequence, 20);

        let key = record_key(sequence);
        let mut value = tree.get(&key).unwrap().unwrap().to_vec();
        let at = value.len() - offset_from_end;
        value[at] ^= 0x01;
        tree.insert(&key, value).unwrap();

        assert_eq!(corrupt_at(log.verify_chain()), sequence);
    }
}

#[test]
fn tampered_links_and_hashes_are_corrupt_at_that_sequence() {
    // Byte offsets inside a record value: id 0..16, prev 16..48, hash 48..80.
    for offset in [20usize, 60] {
        let dir = tempfile::tempdir().unwrap();
        let (_db, tree, log) = open_with_handle(dir.path());
        seed(&log, 10);
        let key = record_key(4);
        let mut value = tree.get(&key).unwrap().unwrap().to_vec();
        value[offset] ^= 0x80;
        tree.insert(&key, value).unwrap();
        assert_eq!(corrupt_at(log.verify_chain()), 4, "offset {offset}");
    }
}

#[test]
fn tampering_survives_reopen_and_is_still_caught() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = SledLog::open(dir.path()).unwrap();
        seed(&log, 10);
    }
    tamper_closed(dir.path(), |tree| {
        let key = record_key(3);
        let mut value = tree.get(&key).unwrap().unwrap().to_vec();
        let last = value.len() - 1;
        value[last] ^= 0xff;
        tree.insert(&key, value).unwrap();
    });
    let log = SledLog::open(dir.path()).unwrap();
    assert_eq!(corrupt_at(log.verify_chain()), 3);
}

#[test]
fn a_short_record_value_is_corrupt_everywhere_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, tree, log) = open_with_handle(dir.path());
    seed(&log, 10);
    tree.insert(record_key(5), &b"short"[..]).unwrap();
    assert_eq!(corrupt_at(log.get(5)), 5);
    assert_eq!(corrupt_at(log.read(0, None, &Filter::default(), 100)), 5);
    assert_eq!(corrupt_at(log.read(0, None, &org("odd"), 100)), 5);
    assert_eq!(corrupt_at(log.verify_chain()), 5);
    // Records before the damage are still served.
    assert_eq!(
        log.read(0, Some(4), &Filter::default(), 100).unwrap().len(),
        4
    );
}

#[test]
fn a_missing_record_is_corrupt_not_absent() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, tree, log) = open_with_handle(dir.path());
    seed(&log, 10);
    tree.remove(record_key(6)).unwrap();
    assert_eq!(corrupt_at(log.get(6)), 6);
    assert_eq!(corrupt_at(log.read(0, None, &org("even"), 100)), 6);
    assert_eq!(corrupt_at(log.verify_chain()), 6);
    // The unfiltered scan cannot see the hole without a chain check, but it
    // must not invent a record either.
    let seqs: Vec<u64> = log
        .read(0, None, &Filter::default(), 100)
        .unwrap()
        .iter()
        .map(|r| r.sequence)
        .collect();
    assert!(!seqs.contains(&6));
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

    // An index key with a 9-byte sequence suffix, sorted inside org "odd".
    let mut key = vec![b'o', 0, 3];
    key.extend_from_slice(b"odd");
    key.extend_from_slice(&5u64.to_be_bytes());
    key.push(0);
    tree.insert(key, &[][..]).unwrap();
    assert!(matches!(
        log.read(0, None, &org("odd"), 100),
        Err(Error::Corrupt { .. })
    ));
    // Other orgs are unaffected.
    assert_eq!(log.read(0, None, &org("even"), 100).unwrap().len(), 5);
}

#[test]
fn a_damaged_head_or_layout_version_fails_the_open() {
    type Damage = fn(&sled::Tree);
    let damages: [(&str, Damage); 5] = [
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
        let dir = tempfile::tempdir().unwrap();
        {
            let log = SledLog::open(dir.path()).unwrap();
            seed(&log, 10);
        }
        tamper_closed(dir.path(), damage);
        assert!(
            matches!(SledLog::open(dir.path()), Err(Error::Corrupt { .. })),
            "{what}"
        );
    }
}

#[test]
fn head_hash_disagreeing_with_last_record_fails_the_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = SledLog::open(dir.path()).unwrap();
        seed(&log, 3);
    }
    tamper_closed(dir.path(), |t| {
        let mut head = 3u64.to_be_bytes().to_vec();
        head.extend_from_slice(&[7; 32]);
        t.insert(b"h", head).unwrap();
    });
    assert!(matches!(
        SledLog::open(dir.path()),
        Err(Error::Corrupt { .. })
    ));
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
