//! Audit guarantees of the store: RFC 9162 vectors, Merkle state that agrees
//! with a naive recomputation for both backends, tamper detection at open
//! (flip, delete, reorder, truncate) found through the store's own layout
//! (`wfl_store::forensic`), the verified marker and full verification.

// `u64::is_multiple_of` needs Rust 1.87; the workspace supports 1.85.
#![allow(clippy::manual_is_multiple_of)]

use std::path::Path;

use serde_json::Value;
use uuid::Uuid;
use wfl_store::forensic::Chunk;
use wfl_store::merkle::{self, Frontier, NodeSource};
use wfl_store::{Error, Hash, Log, MemLog, NewRecord, SledLog, TREE_NAME};

fn vectors() -> Value {
    let text = include_str!("data/rfc6962-vectors.json");
    serde_json::from_str(text).unwrap()
}

fn h(v: &Value) -> Hash {
    hex::decode(v.as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap()
}

fn hashes(v: &Value) -> Vec<Hash> {
    v.as_array().unwrap().iter().map(h).collect()
}

fn vector_leaves() -> Vec<Vec<u8>> {
    vectors()["leaves_hex"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| hex::decode(l.as_str().unwrap()).unwrap())
        .collect()
}

fn rec(sequence: u64, bytes: Vec<u8>) -> NewRecord {
    NewRecord {
        sequence,
        event_id: Uuid::from_u128(0xa0d1_7000_0000_0000_0000_0000_0000_0000 | u128::from(sequence)),
        org_id: "o".to_owned(),
        event_type: "T".to_owned(),
        bytes,
        submission: None,
    }
}

/// The vector leaves appended one per append (so the Merkle state crosses
/// every batch boundary).
fn vector_log(log: &dyn Log) {
    for (i, bytes) in vector_leaves().into_iter().enumerate() {
        log.append(&[rec(i as u64 + 1, bytes)], &[]).unwrap();
    }
}

fn check_vectors(log: &dyn Log) {
    let v = vectors();
    vector_log(log);
    for (size, root) in v["root_by_tree_size"].as_object().unwrap() {
        let size: u64 = size.parse().unwrap();
        assert_eq!(log.merkle_root(size).unwrap(), h(root), "root at {size}");
    }
    let leaves = vector_leaves();
    for case in v["inclusion_proofs"].as_array().unwrap() {
        let index = case["leaf_index"].as_u64().unwrap();
        let size = case["tree_size"].as_u64().unwrap();
        let expected = hashes(&case["proof"]);
        assert_eq!(log.inclusion_proof(index + 1, size).unwrap(), expected);
        let root = log.merkle_root(size).unwrap();
        let leaf = merkle::leaf_hash(&leaves[index as usize]);
        assert!(merkle::verify_inclusion(
            index, size, &leaf, &expected, &root
        ));
        reject_inclusion_mutations(index, size, &leaf, &expected, &root);
    }
    for case in v["consistency_proofs"].as_array().unwrap() {
        let old = case["old_size"].as_u64().unwrap();
        let new = case["new_size"].as_u64().unwrap();
        let expected = hashes(&case["proof"]);
        assert_eq!(
            log.consistency_proof(old, new).unwrap(),
            expected,
            "{old}->{new}"
        );
        let (r1, r2) = (log.merkle_root(old).unwrap(), log.merkle_root(new).unwrap());
        assert!(merkle::verify_consistency(old, new, &r1, &r2, &expected));
        reject_consistency_mutations(old, new, &r1, &r2, &expected);
    }
    // Sizes beyond the head are refused, not answered.
    assert!(matches!(log.merkle_root(9), Err(Error::Conflict(_))));
    assert!(matches!(log.inclusion_proof(9, 9), Err(Error::Conflict(_))));
    assert!(matches!(log.inclusion_proof(0, 8), Err(Error::Conflict(_))));
    assert!(matches!(
        log.consistency_proof(0, 8),
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        log.consistency_proof(5, 4),
        Err(Error::Conflict(_))
    ));
}

/// Every proof with one element's bit flipped, one removed or inserted, or an
/// extra hash at either end.
fn mutated_proofs(proof: &[Hash]) -> Vec<Vec<Hash>> {
    let mut out = Vec::new();
    for i in 0..proof.len() {
        for bit in [0u8, 3, 7] {
            let mut p = proof.to_vec();
            p[i][usize::from(bit) % 32] ^= 1 << bit;
            out.push(p);
        }
        let mut removed = proof.to_vec();
        removed.remove(i);
        out.push(removed);
        let mut inserted = proof.to_vec();
        inserted.insert(i, [0x42; 32]);
        out.push(inserted);
    }
    let mut trailing = proof.to_vec();
    trailing.push([7; 32]);
    out.push(trailing);
    let mut leading = vec![[7; 32]];
    leading.extend_from_slice(proof);
    out.push(leading);
    out
}

fn reject_inclusion_mutations(index: u64, size: u64, leaf: &Hash, proof: &[Hash], root: &Hash) {
    let ok =
        |i: u64, s: u64, l: &Hash, p: &[Hash], r: &Hash| merkle::verify_inclusion(i, s, l, p, r);
    for wrong in [index.wrapping_sub(1), index + 1, index ^ 2] {
        if wrong != index {
            assert!(
                !ok(wrong, size, leaf, proof, root),
                "index {wrong} accepted"
            );
        }
    }
    for wrong in [size * 2, size / 2] {
        if wrong != size {
            assert!(
                !ok(index, wrong, leaf, proof, root),
                "size {wrong} accepted"
            );
        }
    }
    assert!(!ok(index, size, &merkle::leaf_hash(b"other"), proof, root));
    assert!(!ok(index, size, leaf, proof, &merkle::empty_root()));
    assert!(!ok(index, size, leaf, proof, &[0x5a; 32]));
    for p in mutated_proofs(proof) {
        assert!(!ok(index, size, leaf, &p, root), "mutated proof accepted");
    }
}

fn reject_consistency_mutations(old: u64, new: u64, r1: &Hash, r2: &Hash, proof: &[Hash]) {
    let ok =
        |o: u64, n: u64, a: &Hash, b: &Hash, p: &[Hash]| merkle::verify_consistency(o, n, a, b, p);
    if old != new {
        assert!(!ok(old, new, r2, r1, proof), "swapped roots accepted");
        assert!(!ok(old, new, r1, r2, &[]), "empty proof accepted");
        if !proof.is_empty() {
            assert!(
                !ok(old, new, r1, r2, &proof[..proof.len() - 1]),
                "truncated proof accepted"
            );
        }
        for p in mutated_proofs(proof) {
            assert!(!ok(old, new, r1, r2, &p), "mutated proof accepted");
        }
    }
    assert!(!ok(new + 1, new, r1, r2, proof), "old > new accepted");
    assert!(!ok(old, new, &merkle::empty_root(), r2, proof));
}

#[test]
fn mem_log_reproduces_every_rfc6962_vector_and_rejects_every_mutation() {
    check_vectors(&MemLog::new());
}

#[test]
fn sled_log_reproduces_every_rfc6962_vector_and_rejects_every_mutation() {
    let dir = tempfile::tempdir().unwrap();
    let log = SledLog::open(dir.path()).unwrap();
    check_vectors(&log);
    drop(log);
    // And after a reopen (frontier reloaded from the stored tiles).
    let log = SledLog::open(dir.path()).unwrap();
    assert_eq!(
        log.merkle_root(8).unwrap(),
        h(&vectors()["root_by_tree_size"]["8"])
    );
}

/// Every node recomputed from the leaves.
struct Naive(Vec<Hash>);

impl NodeSource for Naive {
    fn node(&self, level: u32, index: u64) -> Result<Hash, Error> {
        let start = (index << level) as usize;
        let mut f = Frontier::new();
        for leaf in &self.0[start..start + (1usize << level)] {
            f.push(*leaf);
        }
        Ok(f.root())
    }
}

/// Across tile boundaries (256, 65 536 leaves are tile edges) and uneven
/// batches, roots and proofs equal a naive recomputation, for both backends
/// and after a reopen.
fn agrees_with_naive(log: &dyn Log, total: u64) {
    let mut leaves = Vec::new();
    let mut next = 1u64;
    let mut batch = 1u64;
    while next <= total {
        let upto = (next + batch).min(total + 1);
        let records: Vec<NewRecord> = (next..upto)
            .map(|s| rec(s, s.to_be_bytes().to_vec()))
            .collect();
        leaves.extend(records.iter().map(|r| merkle::leaf_hash(&r.bytes)));
        log.append(&records, &[]).unwrap();
        next = upto;
        batch = batch * 3 % 700 + 1;
    }
    let naive = Naive(leaves.clone());
    let mut f = Frontier::new();
    for (i, leaf) in leaves.iter().enumerate() {
        f.push(*leaf);
        let n = i as u64 + 1;
        if n % 97 == 0 || n.is_power_of_two() || (n + 1).is_power_of_two() || n == total {
            assert_eq!(log.merkle_root(n).unwrap(), f.root(), "root at {n}");
        }
    }
    for size in [1, 2, 3, 255, 256, 257, 511, 512, 513, 1000, total] {
        if size > total {
            continue;
        }
        for seq in [1, size / 2 + 1, size] {
            assert_eq!(
                log.inclusion_proof(seq, size).unwrap(),
                merkle::inclusion_proof(&naive, seq - 1, size).unwrap()
            );
        }
        for old in [1, size / 3 + 1, size] {
            assert_eq!(
                log.consistency_proof(old, size).unwrap(),
                merkle::consistency_proof(&naive, old, size).unwrap()
            );
        }
    }
    assert_eq!(log.verify_all(&mut |_| {}).unwrap().sequence, total);
}

#[test]
fn mem_log_merkle_state_agrees_with_a_naive_recomputation() {
    agrees_with_naive(&MemLog::new(), 3000);
}

#[test]
fn sled_log_merkle_state_agrees_with_a_naive_recomputation() {
    let dir = tempfile::tempdir().unwrap();
    let log = SledLog::open(dir.path()).unwrap();
    agrees_with_naive(&log, 3000);
    drop(log);
    let log = SledLog::open(dir.path()).unwrap();
    let mut f = Frontier::new();
    for s in 1..=3000u64 {
        f.push(merkle::leaf_hash(&s.to_be_bytes()));
    }
    assert_eq!(log.merkle_root(3000).unwrap(), f.root());
    // Appends after the reopen continue the same tree.
    log.append(&[rec(3001, 3001u64.to_be_bytes().to_vec())], &[])
        .unwrap();
    f.push(merkle::leaf_hash(&3001u64.to_be_bytes()));
    assert_eq!(log.merkle_root(3001).unwrap(), f.root());
}

// ---- tamper tests -------------------------------------------------------

const RECORDS: u64 = 300;

fn seed(dir: &Path) {
    let log = SledLog::open(dir).unwrap();
    let records: Vec<NewRecord> = (1..=RECORDS)
        .map(|s| rec(s, format!("stored event {s} with some body").into_bytes()))
        .collect();
    for part in records.chunks(50) {
        log.append(part, &[]).unwrap();
    }
}

/// Edit the chunk holding `sequence` with the store's own layout.
fn tamper(dir: &Path, sequence: u64, edit: impl FnOnce(&mut Chunk)) {
    let db = wfl_store::open_sled(&sled::Config::new().path(dir)).unwrap();
    let tree = db.open_tree(TREE_NAME).unwrap();
    let mut chunk = Chunk::holding(&tree, sequence).unwrap();
    edit(&mut chunk);
    if chunk.entries.is_empty() {
        tree.remove(&chunk.key).unwrap();
    } else {
        tree.insert(&chunk.key, chunk.encode().unwrap()).unwrap();
    }
    db.flush().unwrap();
}

fn open_fails_at(dir: &Path) -> u64 {
    match SledLog::open(dir) {
        Err(Error::Corrupt { sequence, .. }) => sequence,
        Err(other) => panic!("expected Corrupt, got {other}"),
        Ok(_) => panic!("a tampered store opened"),
    }
}

fn index_in(chunk: &Chunk, sequence: u64) -> usize {
    usize::try_from(sequence - chunk.first).unwrap()
}

#[test]
fn a_flipped_byte_in_a_stored_event_fails_the_open_at_that_sequence() {
    for sequence in [1, 10, 151, RECORDS] {
        let dir = tempfile::tempdir().unwrap();
        seed(dir.path());
        tamper(dir.path(), sequence, |c| {
            let i = index_in(c, sequence);
            c.entries[i].bytes[3] ^= 0x01;
        });
        assert_eq!(open_fails_at(dir.path()), sequence);
    }
}

#[test]
fn a_deleted_record_fails_the_open_at_that_sequence() {
    for sequence in [1, 10, 151] {
        let dir = tempfile::tempdir().unwrap();
        seed(dir.path());
        tamper(dir.path(), sequence, |c| {
            let i = index_in(c, sequence);
            c.entries.remove(i);
        });
        assert_eq!(open_fails_at(dir.path()), sequence);
    }
}

#[test]
fn two_reordered_records_fail_the_open_at_the_first_of_them() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path());
    tamper(dir.path(), 10, |c| {
        let i = index_in(c, 10);
        c.entries.swap(i, i + 2);
    });
    assert_eq!(open_fails_at(dir.path()), 10);
}

#[test]
fn a_truncated_tail_fails_the_open_at_the_first_missing_sequence() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path());
    tamper(dir.path(), RECORDS, |c| {
        let keep = index_in(c, RECORDS - 5);
        c.entries.truncate(keep);
    });
    assert_eq!(open_fails_at(dir.path()), RECORDS - 5);
}

/// Put on its own, or written with an append (the ledger's writer does that): a checkpoint
/// moves the verified marker either way.
#[test]
fn the_verified_marker_bounds_the_open_and_verify_all_still_finds_old_damage() {
    for with_an_append in [false, true] {
        the_verified_marker_bounds_the_open(with_an_append);
    }
}

fn the_verified_marker_bounds_the_open(with_an_append: bool) {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path());
    {
        let log = SledLog::open(dir.path()).unwrap();
        if with_an_append {
            let next = rec(RECORDS + 1, b"one more".to_vec());
            log.append_with_checkpoint(&[next], &[], &[], Some((200, b"checkpoint 200")))
                .unwrap();
        } else {
            log.put_checkpoint(200, b"checkpoint 200").unwrap();
        }
        assert_eq!(
            log.latest_checkpoint().unwrap(),
            Some((200, b"checkpoint 200".to_vec()))
        );
        assert_eq!(log.checkpoints(0, 10).unwrap().len(), 1);
    }
    // Damage after the marker: the open refuses.
    tamper(dir.path(), 250, |c| {
        let i = index_in(c, 250);
        c.entries[i].bytes[0] ^= 0x80;
    });
    assert_eq!(open_fails_at(dir.path()), 250);
    tamper(dir.path(), 250, |c| {
        let i = index_in(c, 250);
        c.entries[i].bytes[0] ^= 0x80;
    });
    // Damage below the marker: the open is bounded and does not see it, the
    // full verification does.
    tamper(dir.path(), 20, |c| {
        let i = index_in(c, 20);
        c.entries[i].bytes[0] ^= 0x80;
    });
    let log = SledLog::open(dir.path()).unwrap();
    let mut seen = 0;
    match log.verify_all(&mut |s| seen = s) {
        Err(Error::Corrupt { sequence, .. }) => assert_eq!(sequence, 20),
        other => panic!("expected Corrupt at 20, got {other:?}"),
    }
    assert!(seen < 20);
}

#[test]
fn records_missing_below_a_checkpoint_fail_the_open() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path());
    {
        let log = SledLog::open(dir.path()).unwrap();
        log.put_checkpoint(RECORDS, b"cp").unwrap();
    }
    // Remove the last chunk and rewrite the head as if nothing happened.
    let db = wfl_store::open_sled(&sled::Config::new().path(dir.path())).unwrap();
    let tree = db.open_tree(TREE_NAME).unwrap();
    let chunk = Chunk::holding(&tree, RECORDS).unwrap();
    tree.remove(&chunk.key).unwrap();
    let mut head = (chunk.first - 1).to_be_bytes().to_vec();
    head.extend_from_slice(
        &Chunk::holding(&tree, chunk.first - 1)
            .unwrap()
            .entries
            .last()
            .unwrap()
            .hash,
    );
    tree.insert(b"h", head).unwrap();
    db.flush().unwrap();
    drop(tree);
    drop(db);
    assert_eq!(open_fails_at(dir.path()), chunk.first);
}

#[test]
fn a_damaged_merkle_tile_is_found_by_the_open_and_by_verify_all() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path());
    {
        let db = wfl_store::open_sled(&sled::Config::new().path(dir.path())).unwrap();
        let tree = db.open_tree(TREE_NAME).unwrap();
        // The level-0 tile of leaves 0..256 (see layout.rs: `n` level index).
        let mut key = vec![b'n', 0];
        key.extend_from_slice(&0u64.to_be_bytes());
        let mut value = tree.get(&key).unwrap().unwrap().to_vec();
        value[32 * 41] ^= 1; // leaf of sequence 42
        tree.insert(&key, value).unwrap();
        db.flush().unwrap();
    }
    assert_eq!(open_fails_at(dir.path()), 42);
}

#[test]
fn a_version_1_store_gets_its_merkle_tiles_at_open() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path());
    let expected = SledLog::open(dir.path())
        .unwrap()
        .merkle_root(RECORDS)
        .unwrap();
    {
        // Back to layout version 1: no tiles.
        let db = wfl_store::open_sled(&sled::Config::new().path(dir.path())).unwrap();
        let tree = db.open_tree(TREE_NAME).unwrap();
        for key in tree.scan_prefix(b"n").keys() {
            tree.remove(key.unwrap()).unwrap();
        }
        tree.insert(b"v", &[1u8][..]).unwrap();
        db.flush().unwrap();
    }
    let log = SledLog::open(dir.path()).unwrap();
    assert_eq!(log.merkle_root(RECORDS).unwrap(), expected);
    assert_eq!(log.verify_all(&mut |_| {}).unwrap().sequence, RECORDS);
    log.append(&[rec(RECORDS + 1, b"after".to_vec())], &[])
        .unwrap();
    drop(log);
    let log = SledLog::open(dir.path()).unwrap();
    assert_eq!(log.verify_all(&mut |_| {}).unwrap().sequence, RECORDS + 1);
}
