//! The one conformance suite every [`Log`] backend must pass.
//!
//! Each `suite_*` function takes `&dyn Log` and states one part of the
//! contract; the `conformance!` macro at the bottom runs all of them against
//! `MemLog` and against a fresh `SledLog` in a temporary directory.

// `u64::is_multiple_of` needs Rust 1.87; the workspace supports 1.80.
#![allow(clippy::manual_is_multiple_of)]

use uuid::Uuid;
use wfl_store::{
    chain_hash, Decision, Error, Filter, Head, Log, NewRecord, RefusalCode, Rejection,
    StoredRecord, MAX_LABEL_LEN, ZERO_HASH,
};

fn id(n: u128) -> Uuid {
    Uuid::from_u128(0x5eed_0000_0000_0000_0000_0000_0000_0000 | n)
}

fn rec(sequence: u64, org: &str, event_type: &str) -> NewRecord {
    NewRecord {
        sequence,
        event_id: id(u128::from(sequence)),
        org_id: org.to_owned(),
        event_type: event_type.to_owned(),
        bytes: format!("event {sequence} of {org}/{event_type}").into_bytes(),
        submission: Some(submission(sequence)),
    }
}

/// The submission id `rec` stores with each record's decision.
fn submission(sequence: u64) -> Uuid {
    Uuid::from_u128(0x5b5b_u128 << 64 | u128::from(sequence))
}

fn reject(n: u128, code: RefusalCode) -> Rejection {
    Rejection {
        event_id: id(n),
        code,
        message: format!("refused {n}"),
        content: Some([n as u8; 32]),
    }
}

fn is_conflict<T: std::fmt::Debug>(result: Result<T, Error>) -> bool {
    matches!(result, Err(Error::Conflict(_)))
}

fn seqs(records: &[StoredRecord]) -> Vec<u64> {
    records.iter().map(|r| r.sequence).collect()
}

fn filter(orgs: &[&str], types: &[&str]) -> Filter {
    Filter {
        org_ids: orgs.iter().map(|s| (*s).to_owned()).collect(),
        event_types: types.iter().map(|s| (*s).to_owned()).collect(),
    }
}

/// Appends 12 records: orgs cycle a, b, c; types alternate X, Y.
fn seed(log: &dyn Log) {
    let orgs = ["a", "b", "c"];
    let types = ["X", "Y"];
    let records: Vec<NewRecord> = (1..=12u64)
        .map(|s| rec(s, orgs[(s as usize - 1) % 3], types[(s as usize - 1) % 2]))
        .collect();
    log.append(&records, &[]).unwrap();
}

fn suite_empty_log(log: &dyn Log) {
    assert_eq!(
        log.head().unwrap(),
        Head {
            sequence: 0,
            hash: ZERO_HASH
        }
    );
    assert_eq!(log.get(0).unwrap(), None);
    assert_eq!(log.get(1).unwrap(), None);
    assert_eq!(log.decision(&id(1)).unwrap(), None);
    assert!(log
        .read(0, None, &Filter::default(), 10)
        .unwrap()
        .is_empty());
    assert_eq!(log.verify_chain().unwrap(), Head::EMPTY);
    assert_eq!(log.append(&[], &[]).unwrap(), vec![]);
    assert_eq!(log.head().unwrap(), Head::EMPTY);
}

fn suite_append_three_then_read_back(log: &dyn Log) {
    let records = vec![rec(1, "a", "X"), rec(2, "b", "Y"), rec(3, "a", "Y")];
    let links = log.append(&records, &[]).unwrap();
    assert_eq!(links.len(), 3);
    assert_eq!(links.iter().map(|l| l.0).collect::<Vec<_>>(), vec![1, 2, 3]);
    let head = log.head().unwrap();
    assert_eq!(head.sequence, 3);
    assert_eq!(head.hash, links[2].1);

    for (record, (sequence, hash)) in records.iter().zip(&links) {
        let stored = log.get(*sequence).unwrap().unwrap();
        assert_eq!(stored.sequence, *sequence);
        assert_eq!(stored.event_id, record.event_id);
        assert_eq!(stored.bytes, record.bytes);
        assert_eq!(stored.hash, *hash);
        assert_eq!(
            log.decision(&record.event_id).unwrap(),
            Some(Decision::Committed {
                sequence: *sequence,
                hash: *hash,
                submission: Some(submission(*sequence)),
            })
        );
    }
    assert_eq!(log.get(4).unwrap(), None);
    assert_eq!(log.get(0).unwrap(), None);
    assert_eq!(log.get(u64::MAX).unwrap(), None);
}

fn suite_chain_links(log: &dyn Log) {
    seed(log);
    log.append(&[rec(13, "a", "X")], &[]).unwrap();
    let mut prev = ZERO_HASH;
    for sequence in 1..=13 {
        let stored = log.get(sequence).unwrap().unwrap();
        assert_eq!(stored.prev_hash, prev, "prev link of {sequence}");
        assert_eq!(stored.hash, chain_hash(&prev, &stored.bytes));
        prev = stored.hash;
    }
    assert_eq!(log.head().unwrap().hash, prev);
}

fn suite_non_contiguous_is_conflict_and_writes_nothing(log: &dyn Log) {
    seed(log);
    let before = log.head().unwrap();
    let attempts: Vec<Vec<NewRecord>> = vec![
        vec![rec(14, "a", "X")],                    // gap
        vec![rec(12, "a", "X")],                    // reuses the head's sequence
        vec![rec(0, "a", "X")],                     // zero
        vec![rec(13, "a", "X"), rec(15, "a", "X")], // gap inside the batch
        vec![rec(13, "a", "X"), rec(13, "a", "X")], // repeat inside the batch
    ];
    for records in attempts {
        // Fresh ids so only the sequence can be the problem.
        let records: Vec<NewRecord> = records
            .into_iter()
            .enumerate()
            .map(|(i, mut r)| {
                r.event_id = id(1000 + i as u128);
                r
            })
            .collect();
        assert!(is_conflict(log.append(
            &records,
            &[reject(2000, RefusalCode::InvalidArgument)]
        )));
        assert_eq!(log.head().unwrap(), before);
        assert_eq!(log.get(13).unwrap(), None);
        assert_eq!(log.decision(&id(1000)).unwrap(), None);
        assert_eq!(log.decision(&id(1001)).unwrap(), None);
        assert_eq!(log.decision(&id(2000)).unwrap(), None);
        assert!(log
            .read(13, None, &filter(&["a"], &[]), 10)
            .unwrap()
            .is_empty());
    }
    assert_eq!(log.verify_chain().unwrap(), before);
}

fn suite_duplicate_event_ids_are_conflicts(log: &dyn Log) {
    seed(log);
    log.append(&[], &[reject(500, RefusalCode::Aborted)])
        .unwrap();
    let before = log.head().unwrap();

    let mut committed_again = rec(13, "a", "X");
    committed_again.event_id = id(5); // committed at sequence 5
    let mut rejected_before = rec(13, "a", "X");
    rejected_before.event_id = id(500);
    let mut twice = [rec(13, "a", "X"), rec(14, "a", "X")];
    twice[1].event_id = twice[0].event_id;

    assert!(is_conflict(log.append(&[committed_again], &[])));
    assert!(is_conflict(log.append(&[rejected_before], &[])));
    assert!(is_conflict(log.append(&twice, &[])));
    // Rejections obey the same rule, against records and each other.
    assert!(is_conflict(
        log.append(&[], &[reject(5, RefusalCode::InvalidArgument)])
    ));
    assert!(is_conflict(
        log.append(&[], &[reject(500, RefusalCode::InvalidArgument)])
    ));
    assert!(is_conflict(log.append(
        &[],
        &[
            reject(600, RefusalCode::InvalidArgument),
            reject(600, RefusalCode::FailedPrecondition)
        ]
    )));
    let mut record_and_rejection = rec(13, "a", "X");
    record_and_rejection.event_id = id(700);
    assert!(is_conflict(log.append(
        &[record_and_rejection],
        &[reject(700, RefusalCode::InvalidArgument)]
    )));

    assert_eq!(log.head().unwrap(), before);
    assert_eq!(log.get(13).unwrap(), None);
    assert_eq!(log.decision(&id(600)).unwrap(), None);
    assert_eq!(log.decision(&id(700)).unwrap(), None);
    assert_eq!(
        log.decision(&id(500)).unwrap(),
        Some(Decision::Rejected {
            code: RefusalCode::Aborted,
            message: "refused 500".to_owned(),
            content: Some([500u128 as u8; 32]),
        })
    );
    assert!(matches!(
        log.decision(&id(5)).unwrap(),
        Some(Decision::Committed { sequence: 5, .. })
    ));
}

/// Looking an id up before appending it (what the ledger's writer does for every event) does
/// not let it be decided twice, nor hide it once decided: the sled backend keeps what a look-up
/// read for the next append, and an append must make that stale.
fn suite_an_id_looked_up_as_new_is_refused_once_decided(log: &dyn Log) {
    seed(log);
    // All of `id`'s ids share one prefix, so one look-up's groups serve the others.
    for n in [13, 14, 900] {
        assert_eq!(log.decision(&id(n)).unwrap(), None);
    }
    log.append(&[rec(13, "a", "X")], &[reject(900, RefusalCode::Aborted)])
        .unwrap();
    assert!(matches!(
        log.decision(&id(13)).unwrap(),
        Some(Decision::Committed { sequence: 13, .. })
    ));
    assert!(matches!(
        log.decision(&id(900)).unwrap(),
        Some(Decision::Rejected { .. })
    ));
    // 14 was looked up before 13 was appended; both are appended once now, never again.
    let before = log.head().unwrap();
    let mut again = rec(14, "a", "X");
    again.event_id = id(13);
    assert!(is_conflict(log.append(&[again], &[])));
    let mut rejected_again = rec(14, "a", "X");
    rejected_again.event_id = id(900);
    assert!(is_conflict(log.append(&[rejected_again], &[])));
    assert!(is_conflict(
        log.append(&[], &[reject(13, RefusalCode::InvalidArgument)])
    ));
    assert_eq!(log.head().unwrap(), before);
    log.append(&[rec(14, "a", "X")], &[]).unwrap();
    assert!(is_conflict(log.append(
        &[rec(15, "a", "X")].map(|mut r| {
            r.event_id = id(14);
            r
        }),
        &[]
    )));
    assert!(matches!(
        log.decision(&id(14)).unwrap(),
        Some(Decision::Committed { sequence: 14, .. })
    ));
    assert_eq!(log.decision(&id(15)).unwrap(), None);
}

fn suite_rejections_are_recorded(log: &dyn Log) {
    let links = log
        .append(
            &[rec(1, "a", "X")],
            &[
                reject(100, RefusalCode::InvalidArgument),
                reject(101, RefusalCode::Aborted),
            ],
        )
        .unwrap();
    assert_eq!(links.len(), 1);
    assert_eq!(log.head().unwrap().sequence, 1);
    // Rejection-only append: head does not move.
    assert_eq!(
        log.append(&[], &[reject(102, RefusalCode::FailedPrecondition)])
            .unwrap(),
        vec![]
    );
    assert_eq!(log.head().unwrap().sequence, 1);
    for (n, code) in [
        (100, RefusalCode::InvalidArgument),
        (101, RefusalCode::Aborted),
        (102, RefusalCode::FailedPrecondition),
    ] {
        assert_eq!(
            log.decision(&id(n)).unwrap(),
            Some(Decision::Rejected {
                code,
                message: format!("refused {n}"),
                content: Some([n as u8; 32]),
            })
        );
    }
    // Rejections are not records.
    assert_eq!(
        seqs(&log.read(0, None, &Filter::default(), 100).unwrap()),
        vec![1]
    );
    // Unicode and empty messages survive.
    let odd = Rejection {
        event_id: id(103),
        code: RefusalCode::FailedPrecondition,
        message: "né — 拒否".to_owned(),
        content: None,
    };
    let empty = Rejection {
        event_id: id(104),
        code: RefusalCode::InvalidArgument,
        message: String::new(),
        content: Some([0xee; 32]),
    };
    log.append(&[], &[odd.clone(), empty.clone()]).unwrap();
    for r in [odd, empty] {
        assert_eq!(
            log.decision(&r.event_id).unwrap(),
            Some(Decision::Rejected {
                code: r.code,
                message: r.message,
                content: r.content,
            })
        );
    }
    assert_eq!(log.verify_chain().unwrap().sequence, 1);
}

fn suite_read_ranges(log: &dyn Log) {
    seed(log);
    let all = Filter::default();
    assert_eq!(
        seqs(&log.read(0, None, &all, 100).unwrap()),
        (1..=12).collect::<Vec<_>>()
    );
    assert_eq!(seqs(&log.read(1, None, &all, 3).unwrap()), vec![1, 2, 3]);
    assert_eq!(
        seqs(&log.read(5, Some(7), &all, 100).unwrap()),
        vec![5, 6, 7]
    );
    assert_eq!(seqs(&log.read(5, Some(7), &all, 2).unwrap()), vec![5, 6]);
    assert_eq!(
        seqs(&log.read(10, Some(1000), &all, 100).unwrap()),
        vec![10, 11, 12]
    );
    assert_eq!(seqs(&log.read(12, Some(12), &all, 100).unwrap()), vec![12]);
    assert!(log.read(13, None, &all, 100).unwrap().is_empty());
    assert!(log.read(7, Some(6), &all, 100).unwrap().is_empty());
    assert!(log.read(1, None, &all, 0).unwrap().is_empty());
    assert!(log.read(u64::MAX, None, &all, 10).unwrap().is_empty());
    let read = log.read(4, Some(4), &all, 1).unwrap();
    assert_eq!(read, vec![log.get(4).unwrap().unwrap()]);
}

fn suite_read_filtered(log: &dyn Log) {
    seed(log);
    // a: 1 4 7 10   b: 2 5 8 11   c: 3 6 9 12   X: odd   Y: even
    // (filter, from, to, limit, expected sequences)
    type Case = (Filter, u64, Option<u64>, usize, Vec<u64>);
    let cases: Vec<Case> = vec![
        (filter(&["a"], &[]), 0, None, 100, vec![1, 4, 7, 10]),
        (filter(&["b"], &[]), 3, Some(8), 100, vec![5, 8]),
        (filter(&["a"], &[]), 0, None, 2, vec![1, 4]),
        (filter(&[], &["X"]), 0, None, 100, vec![1, 3, 5, 7, 9, 11]),
        (filter(&[], &["Y"]), 5, None, 2, vec![6, 8]),
        (filter(&["a"], &["Y"]), 0, None, 100, vec![4, 10]),
        (
            filter(&["a", "c"], &[]),
            0,
            None,
            100,
            vec![1, 3, 4, 6, 7, 9, 10, 12],
        ),
        (filter(&["c", "a"], &[]), 4, Some(9), 100, vec![4, 6, 7, 9]),
        (filter(&["a", "b"], &["X"]), 0, None, 100, vec![1, 5, 7, 11]),
        (
            filter(&["a", "b"], &["X", "Y"]),
            0,
            None,
            5,
            vec![1, 2, 4, 5, 7],
        ),
        (filter(&["a", "a"], &[]), 0, None, 100, vec![1, 4, 7, 10]),
        (filter(&["zzz"], &[]), 0, None, 100, vec![]),
        (filter(&["a"], &["nope"]), 0, None, 100, vec![]),
        (filter(&[""], &[]), 0, None, 100, vec![]),
        // A prefix of a stored org must not match it.
        (filter(&["ab"], &[]), 0, None, 100, vec![]),
    ];
    for (f, from, to, limit, want) in cases {
        let got = log.read(from, to, &f, limit).unwrap();
        assert_eq!(
            seqs(&got),
            want,
            "filter {f:?} from {from} to {to:?} limit {limit}"
        );
        for r in &got {
            assert_eq!(Some(r), log.get(r.sequence).unwrap().as_ref());
        }
    }
    // Orgs that are prefixes of one another stay apart.
    log.append(&[rec(13, "ab", "X"), rec(14, "", "")], &[])
        .unwrap();
    assert_eq!(
        seqs(&log.read(0, None, &filter(&["ab"], &[]), 10).unwrap()),
        vec![13]
    );
    assert_eq!(
        seqs(&log.read(0, None, &filter(&["a"], &[]), 10).unwrap()),
        vec![1, 4, 7, 10]
    );
    assert_eq!(
        seqs(&log.read(0, None, &filter(&[""], &[""]), 10).unwrap()),
        vec![14]
    );
}

fn suite_sparse_filter_over_many_records(log: &dyn Log) {
    // "rare" is every 100th record, type "T" every 7th. Records 1..=2000
    // arrive in one append (long posting lists), 2001..=4000 in 200 appends
    // of 10 (many short ones), so reads cross both shapes and have to skip
    // far ahead in one dimension to match the other.
    let org_of = |s: u64| if s % 100 == 0 { "rare" } else { "common" };
    let type_of = |s: u64| if s % 7 == 0 { "T" } else { "U" };
    let records: Vec<NewRecord> = (1..=4000u64)
        .map(|s| rec(s, org_of(s), type_of(s)))
        .collect();
    log.append(&records[..2000], &[]).unwrap();
    for chunk in records[2000..].chunks(10) {
        log.append(chunk, &[]).unwrap();
    }
    let expect = |orgs: &[&str], types: &[&str], from: u64, to: u64, limit: usize| -> Vec<u64> {
        (from.max(1)..=to.min(4000))
            .filter(|&s| orgs.is_empty() || orgs.contains(&org_of(s)))
            .filter(|&s| types.is_empty() || types.contains(&type_of(s)))
            .take(limit)
            .collect()
    };
    let cases: [(&[&str], &[&str]); 6] = [
        (&["rare"], &[]),
        (&[], &["T"]),
        (&["rare"], &["T"]),
        (&["common"], &["T"]),
        (&["rare", "common"], &["T"]),
        (&["rare"], &["T", "U"]),
    ];
    for (orgs, types) in cases {
        for (from, to, limit) in [
            (0, 4000, 10_000),
            (1500, 2600, 10_000),
            (1999, 2001, 10_000),
            (1234, 4000, 7),
            (3999, 9999, 10),
        ] {
            assert_eq!(
                seqs(
                    &log.read(from, Some(to), &filter(orgs, types), limit)
                        .unwrap()
                ),
                expect(orgs, types, from, to, limit),
                "orgs {orgs:?} types {types:?} from {from} to {to} limit {limit}"
            );
        }
    }
    assert_eq!(log.verify_chain().unwrap().sequence, 4000);
}

fn suite_many_ids_sharing_a_prefix(log: &dyn Log) {
    // 2 600 ids with identical first bytes (more than a backend may group
    // under one prefix), a few time-ordered v7 ids, and random v4 ids, all
    // interleaved across batches of uneven size.
    let mut records: Vec<NewRecord> = (1..=2600u64).map(|s| rec(s, "a", "X")).collect();
    for (i, record) in records.iter_mut().enumerate() {
        record.event_id = match i % 10 {
            0 => Uuid::now_v7(),
            1 => Uuid::new_v4(),
            _ => Uuid::from_u128(0xabcd_0000 + i as u128),
        };
    }
    let mut links = Vec::new();
    let mut start = 0;
    for size in [700usize, 1, 129, 1000, 770] {
        links.extend(log.append(&records[start..start + size], &[]).unwrap());
        start += size;
    }
    assert_eq!(start, records.len());
    for (record, (sequence, hash)) in records.iter().zip(&links) {
        assert_eq!(
            log.decision(&record.event_id).unwrap(),
            Some(Decision::Committed {
                sequence: *sequence,
                hash: *hash,
                submission: Some(submission(*sequence)),
            }),
            "{}",
            record.sequence
        );
    }
    let head = log.head().unwrap();
    for index in [0usize, 1, 2, 639, 700, 701, 829, 1500, 2047, 2400, 2599] {
        let mut again = rec(head.sequence + 1, "a", "X");
        again.event_id = records[index].event_id;
        assert!(is_conflict(log.append(&[again], &[])), "record {index}");
        assert!(is_conflict(
            log.append(&[], &[reject_id(records[index].event_id)])
        ));
    }
    assert_eq!(log.head().unwrap(), head);
    // Unknown ids next to known ones are unknown.
    assert_eq!(
        log.decision(&Uuid::from_u128(0xabcd_0000 + 5000)).unwrap(),
        None
    );
    assert_eq!(
        log.decision(&Uuid::from_u128(0xabcd_0000 + 10)).unwrap(),
        None
    );
    assert_eq!(log.decision(&Uuid::now_v7()).unwrap(), None);
    assert_eq!(log.verify_chain().unwrap(), head);
}

fn reject_id(event_id: Uuid) -> Rejection {
    Rejection {
        event_id,
        code: RefusalCode::InvalidArgument,
        message: "again".to_owned(),
        content: None,
    }
}

fn suite_label_limits(log: &dyn Log) {
    let long = "x".repeat(MAX_LABEL_LEN + 1);
    assert!(is_conflict(log.append(&[rec(1, &long, "X")], &[])));
    assert!(is_conflict(log.append(&[rec(1, "a", &long)], &[])));
    assert_eq!(log.head().unwrap(), Head::EMPTY);
    let longest = "y".repeat(MAX_LABEL_LEN);
    log.append(&[rec(1, &longest, "X")], &[]).unwrap();
    assert_eq!(
        seqs(&log.read(0, None, &filter(&[&longest], &[]), 10).unwrap()),
        vec![1]
    );
    assert!(log
        .read(0, None, &filter(&[&long], &[]), 10)
        .unwrap()
        .is_empty());
}

fn suite_meta(log: &dyn Log) {
    assert_eq!(log.meta_get("cursor/x").unwrap(), None);
    log.meta_put("cursor/x", b"42").unwrap();
    log.meta_put("cursor/y", b"").unwrap();
    assert_eq!(log.meta_get("cursor/x").unwrap(), Some(b"42".to_vec()));
    assert_eq!(log.meta_get("cursor/y").unwrap(), Some(Vec::new()));
    log.meta_put("cursor/x", b"43").unwrap();
    assert_eq!(log.meta_get("cursor/x").unwrap(), Some(b"43".to_vec()));
    // Metadata is not part of the log.
    assert_eq!(log.head().unwrap(), Head::EMPTY);
    assert!(log
        .read(0, None, &Filter::default(), 10)
        .unwrap()
        .is_empty());
}

fn put(key: &str, value: &[u8]) -> (String, Option<Vec<u8>>) {
    (key.to_owned(), Some(value.to_vec()))
}

fn suite_meta_scan_is_ordered_bounded_and_pages(log: &dyn Log) {
    // Written out of order, with neighbours on both sides of the prefix.
    log.meta_write(&[
        put("s/b", b"2"),
        put("s/a", b"1"),
        put("s/ab", b"x"),
        put("r", b"before"),
        put("s0", b"after"),
        put("s/\u{e9}", b"utf8"),
    ])
    .unwrap();
    let keys = |page: Vec<(String, Vec<u8>)>| page.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
    let all = log.meta_scan("s/", None, 100).unwrap();
    assert_eq!(
        keys(all.clone()),
        vec!["s/a", "s/ab", "s/b", "s/\u{e9}"],
        "ascending byte order, only the prefix"
    );
    assert_eq!(all[0].1, b"1".to_vec());
    assert_eq!(
        keys(log.meta_scan("s/", None, 2).unwrap()),
        vec!["s/a", "s/ab"]
    );
    assert_eq!(
        keys(log.meta_scan("s/", Some("s/ab"), 2).unwrap()),
        vec!["s/b", "s/\u{e9}"]
    );
    assert!(log.meta_scan("s/", Some("s/\u{e9}"), 2).unwrap().is_empty());
    // An `after` before the prefix starts at the prefix; one past it finds nothing.
    assert_eq!(log.meta_scan("s/", Some("a"), 100).unwrap(), all);
    assert!(log.meta_scan("s/", Some("t"), 100).unwrap().is_empty());
    assert!(log.meta_scan("nothing/", None, 100).unwrap().is_empty());
    assert!(log.meta_scan("s/", None, 0).unwrap().is_empty());
    log.meta_write(&[("s/ab".to_owned(), None)]).unwrap();
    assert_eq!(
        keys(log.meta_scan("s/", None, 100).unwrap()),
        vec!["s/a", "s/b", "s/\u{e9}"]
    );
}

fn suite_append_with_meta_is_atomic_with_the_records(log: &dyn Log) {
    log.meta_put("k/gone", b"old").unwrap();
    let links = log
        .append_with_meta(
            &[rec(1, "a", "X"), rec(2, "a", "Y")],
            &[],
            &[put("k/through", b"2"), ("k/gone".to_owned(), None)],
        )
        .unwrap();
    assert_eq!(links.len(), 2);
    assert_eq!(log.meta_get("k/through").unwrap(), Some(b"2".to_vec()));
    assert_eq!(log.meta_get("k/gone").unwrap(), None);
    // A conflicting append (a gap, a repeated id) writes no metadata either.
    assert!(is_conflict(log.append_with_meta(
        &[rec(4, "a", "X")],
        &[],
        &[put("k/through", b"4"), put("k/new", b"n")],
    )));
    let mut repeat = rec(3, "a", "X");
    repeat.event_id = id(1);
    assert!(is_conflict(log.append_with_meta(
        &[repeat],
        &[reject(50, RefusalCode::Aborted)],
        &[put("k/through", b"3")],
    )));
    assert_eq!(log.meta_get("k/through").unwrap(), Some(b"2".to_vec()));
    assert_eq!(log.meta_get("k/new").unwrap(), None);
    assert_eq!(log.head().unwrap().sequence, 2);
    assert_eq!(log.decision(&id(50)).unwrap(), None);
    // Rejections alone carry metadata too; metadata alone is written; empty is a no-op.
    log.append_with_meta(
        &[],
        &[reject(51, RefusalCode::FailedPrecondition)],
        &[put("k/r", b"r")],
    )
    .unwrap();
    assert_eq!(log.meta_get("k/r").unwrap(), Some(b"r".to_vec()));
    assert!(log
        .append_with_meta(&[], &[], &[put("k/only", b"o")])
        .unwrap()
        .is_empty());
    assert_eq!(log.meta_get("k/only").unwrap(), Some(b"o".to_vec()));
    assert!(log.append_with_meta(&[], &[], &[]).unwrap().is_empty());
    assert_eq!(log.head().unwrap().sequence, 2);
}

fn suite_verify_chain(log: &dyn Log) {
    assert_eq!(log.verify_chain().unwrap(), Head::EMPTY);
    seed(log);
    log.append(
        &[rec(13, "a", "X")],
        &[reject(99, RefusalCode::InvalidArgument)],
    )
    .unwrap();
    let head = log.head().unwrap();
    assert_eq!(head.sequence, 13);
    assert_eq!(log.verify_chain().unwrap(), head);
}

fn suite_large_and_empty_bytes(log: &dyn Log) {
    let mut big = rec(1, "a", "X");
    big.bytes = (0..200_000u32).map(|i| i as u8).collect();
    let mut empty = rec(2, "a", "X");
    empty.bytes = Vec::new();
    log.append(&[big.clone(), empty], &[]).unwrap();
    assert_eq!(log.get(1).unwrap().unwrap().bytes, big.bytes);
    assert!(log.get(2).unwrap().unwrap().bytes.is_empty());
    assert_eq!(log.verify_chain().unwrap().sequence, 2);
}

/// Roots and proofs at every size agree with an in-memory recomputation
/// and pass the RFC 9162 verifiers (the vectors are in `audit.rs`).
fn suite_merkle_roots_and_proofs(log: &dyn Log) {
    use wfl_store::merkle::{self, Frontier};
    assert_eq!(log.merkle_root(0).unwrap(), merkle::empty_root());
    let mut next = 1u64;
    for batch in [1u64, 2, 1, 5, 8, 3, 20] {
        let records: Vec<NewRecord> = (next..next + batch).map(|s| rec(s, "a", "X")).collect();
        log.append(&records, &[]).unwrap();
        next += batch;
    }
    let head = next - 1;
    let leaves: Vec<_> = log
        .read(1, None, &Filter::default(), 1000)
        .unwrap()
        .iter()
        .map(|r| merkle::leaf_hash(&r.bytes))
        .collect();
    let mut frontier = Frontier::new();
    let mut roots = vec![merkle::empty_root()];
    for leaf in &leaves {
        frontier.push(*leaf);
        roots.push(frontier.root());
    }
    for n in 1..=head {
        let root = log.merkle_root(n).unwrap();
        assert_eq!(root, roots[n as usize], "root at {n}");
        for s in 1..=n {
            let proof = log.inclusion_proof(s, n).unwrap();
            assert!(merkle::verify_inclusion(
                s - 1,
                n,
                &leaves[s as usize - 1],
                &proof,
                &root
            ));
        }
        for old in 1..=n {
            let proof = log.consistency_proof(old, n).unwrap();
            assert!(merkle::verify_consistency(
                old,
                n,
                &roots[old as usize],
                &root,
                &proof
            ));
        }
    }
    assert!(is_conflict(log.merkle_root(head + 1)));
    assert!(is_conflict(log.inclusion_proof(0, head)));
    assert!(is_conflict(log.inclusion_proof(head, head + 1)));
    assert!(is_conflict(log.consistency_proof(0, head)));
    assert!(is_conflict(log.consistency_proof(head, head - 1)));
    assert_eq!(log.verify_all(&mut |_| {}).unwrap().sequence, head);
}

fn suite_checkpoints(log: &dyn Log) {
    assert_eq!(log.latest_checkpoint().unwrap(), None);
    assert!(is_conflict(log.put_checkpoint(1, b"too early")));
    seed(log);
    assert!(is_conflict(log.put_checkpoint(0, b"zero")));
    assert!(is_conflict(log.put_checkpoint(13, b"beyond")));
    log.put_checkpoint(4, b"four").unwrap();
    log.put_checkpoint(12, b"twelve").unwrap();
    log.put_checkpoint(8, b"eight").unwrap();
    assert_eq!(
        log.latest_checkpoint().unwrap(),
        Some((12, b"twelve".to_vec()))
    );
    let sizes: Vec<u64> = log
        .checkpoints(5, 10)
        .unwrap()
        .iter()
        .map(|c| c.0)
        .collect();
    assert_eq!(sizes, vec![8, 12]);
    assert_eq!(log.checkpoints(0, 1).unwrap(), vec![(4, b"four".to_vec())]);
}

/// A checkpoint written with an append is stored as one put alone is, in the same batch: a
/// size beyond the head before the call writes nothing at all (not the records, not the
/// metadata), and a call without records or rejections puts it on its own.
fn suite_checkpoint_with_an_append(log: &dyn Log) {
    seed(log);
    let new = [rec(13, "a", "X"), rec(14, "b", "Y")];
    // The head before the call is 12: the records being appended cannot be checkpointed yet.
    assert!(is_conflict(log.append_with_checkpoint(
        &new,
        &[],
        &[put("k/through", b"14")],
        Some((13, b"thirteen")),
    )));
    assert!(is_conflict(log.append_with_checkpoint(
        &new,
        &[],
        &[],
        Some((0, b"zero")),
    )));
    assert_eq!(log.head().unwrap().sequence, 12);
    assert_eq!(log.decision(&id(13)).unwrap(), None);
    assert_eq!(log.meta_get("k/through").unwrap(), None);
    assert_eq!(log.latest_checkpoint().unwrap(), None);

    let links = log
        .append_with_checkpoint(&new, &[], &[put("k/through", b"14")], Some((12, b"twelve")))
        .unwrap();
    assert_eq!(links.iter().map(|l| l.0).collect::<Vec<_>>(), vec![13, 14]);
    assert_eq!(log.head().unwrap().sequence, 14);
    assert_eq!(log.meta_get("k/through").unwrap(), Some(b"14".to_vec()));
    assert_eq!(
        log.latest_checkpoint().unwrap(),
        Some((12, b"twelve".to_vec()))
    );
    // With rejections alone, and with nothing to append.
    log.append_with_checkpoint(
        &[],
        &[reject(60, RefusalCode::Aborted)],
        &[],
        Some((13, b"thirteen")),
    )
    .unwrap();
    assert!(log
        .append_with_checkpoint(&[], &[], &[put("k/only", b"o")], Some((14, b"fourteen")))
        .unwrap()
        .is_empty());
    assert_eq!(log.meta_get("k/only").unwrap(), Some(b"o".to_vec()));
    assert!(is_conflict(log.append_with_checkpoint(
        &[],
        &[],
        &[put("k/beyond", b"b")],
        Some((15, b"beyond")),
    )));
    assert_eq!(log.meta_get("k/beyond").unwrap(), None);
    // An append refused for its records (a gap) writes its checkpoint no more than them.
    assert!(is_conflict(log.append_with_checkpoint(
        &[rec(16, "a", "X")],
        &[],
        &[],
        Some((14, b"again")),
    )));
    let sizes: Vec<u64> = log
        .checkpoints(0, 10)
        .unwrap()
        .iter()
        .map(|c| c.0)
        .collect();
    assert_eq!(sizes, vec![12, 13, 14]);
    assert_eq!(
        log.latest_checkpoint().unwrap(),
        Some((14, b"fourteen".to_vec()))
    );
    assert_eq!(log.verify_all(&mut |_| {}).unwrap().sequence, 14);
}

macro_rules! conformance {
    ($($suite:ident),* $(,)?) => {
        mod mem_log {
            $(
                #[test]
                fn $suite() {
                    super::$suite(&wfl_store::MemLog::new());
                }
            )*
        }
        mod sled_log {
            $(
                #[test]
                fn $suite() {
                    let dir = tempfile::tempdir().unwrap();
                    let log = wfl_store::SledLog::open(dir.path()).unwrap();
                    super::$suite(&log);
                }
            )*
        }
    };
}

conformance!(
    suite_empty_log,
    suite_append_three_then_read_back,
    suite_chain_links,
    suite_non_contiguous_is_conflict_and_writes_nothing,
    suite_duplicate_event_ids_are_conflicts,
    suite_an_id_looked_up_as_new_is_refused_once_decided,
    suite_rejections_are_recorded,
    suite_read_ranges,
    suite_read_filtered,
    suite_sparse_filter_over_many_records,
    suite_many_ids_sharing_a_prefix,
    suite_label_limits,
    suite_meta,
    suite_meta_scan_is_ordered_bounded_and_pages,
    suite_append_with_meta_is_atomic_with_the_records,
    suite_verify_chain,
    suite_large_and_empty_bytes,
    suite_merkle_roots_and_proofs,
    suite_checkpoints,
    suite_checkpoint_with_an_append,
);
