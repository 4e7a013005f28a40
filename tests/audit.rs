//! Auditors: Merkle proofs over gRPC checked by an independent Python verifier (hashlib only),
//! `wfl export` / `wfl verify` with tampered exports, and a tampered data dir that the ledger
//! refuses to start on (or, below the last checkpoint, that the background verification reports
//! as NOT_SERVING).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{ledger, record_batch, replay, Proc};
use prost::Message;
use serde_json::json;
use tonic::Code;
use wfl_proto::pb;
use wfl_testkit::scenario;

fn up(data: &Path, extra: &[&str]) -> Proc {
    common::up(data, extra)
}

fn wfl(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(common::bin("wfl"))
        .args(args)
        .output()
        .expect("wfl runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Records `n` hires, in one batch.
async fn hires(ch: &tonic::transport::Channel, from: usize, n: usize) {
    let events: Vec<_> = (from..from + n)
        .map(|i| scenario::hire("audit-org", &format!("w-{i}")))
        .collect();
    let r = record_batch(ch, &events).await;
    for item in &r.results {
        common::ok(item);
    }
}

fn stored_bytes(c: &pb::CommittedEvent) -> Vec<u8> {
    let mut s = c.clone();
    s.prev_hash.clear();
    s.hash.clear();
    s.encode_to_vec()
}

fn violation_field(s: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    s.get_details_bad_request()
        .and_then(|b| b.field_violations.first().map(|v| v.field.clone()))
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proofs_over_grpc_verify_with_an_independent_python_verifier() {
    let dir = wfl_testkit::temp_dir();
    let node = up(dir.path(), &["--checkpoint-every-events", "1"]);
    let ch = common::connect(&node.grpc).await;
    // Uneven batches, so the tree grows across many appends.
    let mut recorded = 0;
    for n in [1, 1, 1, 2, 3, 8, 1, 15, 1, 32] {
        hires(&ch, recorded, n).await;
        recorded += n;
    }
    assert_eq!(recorded, 65);
    let events = replay(&ch).await;
    assert_eq!(events.len(), 65);
    let mut client = ledger(&ch);

    let sizes: [u64; 17] = [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65];
    let mut inclusion = Vec::new();
    let mut consistency = Vec::new();
    for &n in &sizes {
        let mut sequences = vec![1, n / 2 + 1, n];
        sequences.dedup();
        for s in sequences {
            let p = client
                .get_inclusion_proof(pb::InclusionProofRequest {
                    sequence: s,
                    tree_size: n,
                })
                .await
                .expect("inclusion proof")
                .into_inner();
            inclusion.push(json!({
                "sequence": p.sequence, "tree_size": p.tree_size,
                "leaf_hash": hex::encode(&p.leaf_hash), "root_hash": hex::encode(&p.root_hash),
                "proof": p.proof.iter().map(hex::encode).collect::<Vec<_>>(),
            }));
        }
        for &m in sizes.iter().filter(|&&m| m <= n) {
            let p = client
                .get_consistency_proof(pb::ConsistencyProofRequest {
                    old_size: m,
                    new_size: n,
                })
                .await
                .expect("consistency proof")
                .into_inner();
            consistency.push(json!({
                "old_size": p.old_size, "new_size": p.new_size,
                "old_root": hex::encode(&p.old_root), "new_root": hex::encode(&p.new_root),
                "proof": p.proof.iter().map(hex::encode).collect::<Vec<_>>(),
            }));
        }
    }

    // Checkpoints: signed by the served key, and (below) rooted in the same leaves.
    let key = client
        .get_public_key(pb::PublicKeyRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(key.algorithm, "ed25519");
    let key = wfl_ledger::checkpoint::public_key(&key.public_key).unwrap();
    let mut stream = client
        .list_checkpoints(pb::ListCheckpointsRequest { from_size: 0 })
        .await
        .unwrap()
        .into_inner();
    let mut checkpoints = Vec::new();
    while let Some(cp) = stream.message().await.unwrap() {
        let signed = wfl_ledger::checkpoint::SignedCheckpoint::from_pb(&cp).unwrap();
        assert!(signed.verify(&key), "checkpoint {} signature", cp.tree_size);
        assert_eq!(cp.signed_bytes, signed.checkpoint.signed_bytes());
        checkpoints.push(json!({
            "tree_size": cp.tree_size, "root_hash": hex::encode(&cp.root_hash),
            "head_hash": hex::encode(&cp.head_hash),
        }));
    }
    // One checkpoint per commit (every event), so at least one per batch but the last, which
    // may still be on its way.
    assert!(checkpoints.len() >= 9, "{checkpoints:?}");
    let latest = client
        .get_checkpoint(pb::GetCheckpointRequest { tree_size: 0 })
        .await
        .unwrap()
        .into_inner();
    assert!(latest.tree_size >= 33);

    let input = json!({
        "leaves": events.iter().map(|c| hex::encode(stored_bytes(c))).collect::<Vec<_>>(),
        "chain": events.iter().map(|c| hex::encode(&c.hash)).collect::<Vec<_>>(),
        "inclusion": inclusion,
        "consistency": consistency,
        "checkpoints": checkpoints,
    });
    let file = dir.path().join("proofs.json");
    std::fs::write(&file, serde_json::to_vec(&input).unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("audit/verify_proofs.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(&file)
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python verifier: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("ok "), "{stdout}");

    // Bad arguments name the field; sizes beyond the head are OUT_OF_RANGE.
    let e = client
        .get_inclusion_proof(pb::InclusionProofRequest {
            sequence: 0,
            tree_size: 5,
        })
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), violation_field(&e).as_str()),
        (Code::InvalidArgument, "sequence")
    );
    let e = client
        .get_inclusion_proof(pb::InclusionProofRequest {
            sequence: 6,
            tree_size: 5,
        })
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), violation_field(&e).as_str()),
        (Code::InvalidArgument, "sequence")
    );
    // At the head (tree size 0), a sequence not committed yet is beyond it, as a size would be.
    let e = client
        .get_inclusion_proof(pb::InclusionProofRequest {
            sequence: 66,
            tree_size: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), violation_field(&e).as_str()),
        (Code::OutOfRange, "sequence")
    );
    let e = client
        .get_inclusion_proof(pb::InclusionProofRequest {
            sequence: 1,
            tree_size: 66,
        })
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), violation_field(&e).as_str()),
        (Code::OutOfRange, "tree_size")
    );
    let e = client
        .get_consistency_proof(pb::ConsistencyProofRequest {
            old_size: 0,
            new_size: 5,
        })
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), violation_field(&e).as_str()),
        (Code::InvalidArgument, "old_size")
    );
    let e = client
        .get_consistency_proof(pb::ConsistencyProofRequest {
            old_size: 6,
            new_size: 5,
        })
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), violation_field(&e).as_str()),
        (Code::InvalidArgument, "old_size")
    );
    let e = client
        .get_consistency_proof(pb::ConsistencyProofRequest {
            old_size: 1,
            new_size: 1000,
        })
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), violation_field(&e).as_str()),
        (Code::OutOfRange, "new_size")
    );
    let e = client
        .get_checkpoint(pb::GetCheckpointRequest { tree_size: 1000 })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
}

/// Copy an export and apply `edit` to its event frames (length-delimited CommittedEvent).
fn tampered_copy(src: &Path, name: &str, edit: impl FnOnce(&mut Vec<Vec<u8>>)) -> PathBuf {
    let dst = src.with_file_name(name);
    std::fs::create_dir_all(&dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dst.join(entry.file_name())).unwrap();
    }
    let bytes = std::fs::read(dst.join("events.pb")).unwrap();
    let mut frames = split_frames(&bytes);
    edit(&mut frames);
    let mut out = Vec::new();
    for f in &frames {
        prost::encoding::encode_varint(f.len() as u64, &mut out);
        out.extend_from_slice(f);
    }
    std::fs::write(dst.join("events.pb"), out).unwrap();
    dst
}

fn split_frames(mut bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        let len = prost::encoding::decode_varint(&mut bytes).unwrap() as usize;
        frames.push(bytes[..len].to_vec());
        bytes = &bytes[len..];
    }
    frames
}

fn checkpoint_frames(dir: &Path) -> Vec<pb::SignedCheckpoint> {
    split_frames(&std::fs::read(dir.join("checkpoints.pb")).unwrap())
        .iter()
        .map(|f| pb::SignedCheckpoint::decode(f.as_slice()).unwrap())
        .collect()
}

fn write_checkpoints(dir: &Path, list: &[pb::SignedCheckpoint]) {
    let mut out = Vec::new();
    for cp in list {
        out.extend(cp.encode_length_delimited_to_vec());
    }
    std::fs::write(dir.join("checkpoints.pb"), out).unwrap();
}

fn verify_fails_at(target: &Path, extra: &[&str], sequence: u64) {
    let mut args = vec!["verify", target.to_str().unwrap()];
    args.extend_from_slice(extra);
    let (ok, stdout, stderr) = wfl(&args);
    assert!(!ok, "verify of {} passed: {stdout}", target.display());
    assert!(
        stdout.contains(&format!("FAILED: first bad sequence {sequence}:")),
        "{}: expected first bad sequence {sequence}, got {stdout} {stderr}",
        target.display()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_is_resumable_verifies_and_every_tamper_names_the_first_bad_sequence() {
    let dir = wfl_testkit::temp_dir();
    let mut node = up(
        dir.path(),
        &[
            "--checkpoint-every-events",
            "50",
            "--checkpoint-interval-secs",
            "3600",
        ],
    );
    let ch = common::connect(&node.grpc).await;
    for b in 0..6 {
        hires(&ch, b * 50, 50).await;
    }
    let export = dir.path().join("export");
    let (ok, _, err) = wfl(&[
        "export",
        "--to",
        export.to_str().unwrap(),
        "--addr",
        &node.grpc,
    ]);
    assert!(ok, "{err}");
    let (ok, stdout, err) = wfl(&["verify", export.to_str().unwrap()]);
    assert!(ok, "{stdout} {err}");
    assert!(stdout.starts_with("OK: 300 events"), "{stdout}");

    // The key the export carries is the one `wfl key` prints for the node's data dir.
    let data = dir.path().join("data");
    let (ok, key, _) = wfl(&["key", "--data-dir", data.to_str().unwrap()]);
    assert!(ok);
    let key = key.trim().to_owned();
    assert_eq!(
        std::fs::read_to_string(export.join("public_key.hex"))
            .unwrap()
            .trim(),
        key
    );
    let (ok, stdout, _) = wfl(&["verify", export.to_str().unwrap(), "--key", &key]);
    assert!(ok, "{stdout}");
    // A running ledger, verified through a temporary export.
    let (ok, stdout, _) = wfl(&["verify", "--addr", &node.grpc, "--key", &key]);
    assert!(ok && stdout.starts_with("OK: 300 events"), "{stdout}");

    // Resume: an interrupted export (torn last frame) continues where the good part ends.
    hires(&ch, 300, 20).await;
    let events = std::fs::read(export.join("events.pb")).unwrap();
    std::fs::write(export.join("events.pb"), &events[..events.len() - 7]).unwrap();
    std::fs::remove_file(export.join("manifest.json")).unwrap();
    verify_fails_at(&export, &[], 0);
    let (ok, _, err) = wfl(&[
        "export",
        "--to",
        export.to_str().unwrap(),
        "--addr",
        &node.grpc,
    ]);
    assert!(ok, "{err}");
    assert!(
        err.contains("exported 320 events (299 already there)"),
        "{err}"
    );
    let (ok, stdout, _) = wfl(&["verify", export.to_str().unwrap(), "--key", &key]);
    assert!(ok && stdout.starts_with("OK: 320 events"), "{stdout}");
    assert!(stdout.contains("6 signed checkpoints"), "{stdout}");

    // Tampered copies.
    let flipped = tampered_copy(&export, "flip", |f| {
        let stored_len = f[9].len() - 68; // prev_hash and hash fields: 2 × (tag, len, 32 bytes)
        f[9][stored_len / 2] ^= 0x01;
    });
    verify_fails_at(&flipped, &[], 10);
    let deleted = tampered_copy(&export, "delete", |f| {
        f.remove(9);
    });
    verify_fails_at(&deleted, &[], 10);
    let reordered = tampered_copy(&export, "reorder", |f| f.swap(9, 10));
    verify_fails_at(&reordered, &[], 10);
    let truncated = tampered_copy(&export, "truncate", |f| f.truncate(315));
    verify_fails_at(&truncated, &[], 316);
    // Truncated below a signed checkpoint: caught even with the manifest rewritten to match.
    let below = tampered_copy(&export, "truncate-below-checkpoint", |f| f.truncate(280));
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(below.join("manifest.json")).unwrap()).unwrap();
    manifest["events"] = json!(280);
    std::fs::write(below.join("manifest.json"), manifest.to_string()).unwrap();
    verify_fails_at(&below, &[], 281);

    let swapped = tampered_copy(&export, "swap-signature", |_| {});
    let mut list = checkpoint_frames(&swapped);
    let first = list[1].signature.clone();
    list[1].signature = list[2].signature.clone();
    list[2].signature = first;
    write_checkpoints(&swapped, &list);
    verify_fails_at(&swapped, &[], 100);

    // Another key: with the key pinned the export is refused outright; trusting the export's own
    // (replaced) key, the checkpoints do not verify.
    let rekeyed = tampered_copy(&export, "replace-key", |_| {});
    let other =
        wfl_ledger::checkpoint::Signer::load_or_create(&dir.path().join("other.key")).unwrap();
    std::fs::write(
        rekeyed.join("public_key.hex"),
        hex::encode(other.public().as_bytes()),
    )
    .unwrap();
    verify_fails_at(&rekeyed, &["--key", &key], 0);
    verify_fails_at(&rekeyed, &[], 50);

    // The data dir verifies too (node stopped).
    assert!(node.terminate().success());
    let (ok, stdout, _) = wfl(&["verify", data.to_str().unwrap()]);
    assert!(ok && stdout.starts_with("OK: 320 events"), "{stdout}");
    drop(node);
}

/// Edits the stored record at `sequence` in a stopped node's store, through the store's layout.
fn tamper_store(data: &Path, sequence: u64, edit: impl FnOnce(&mut wfl_store::forensic::Entry)) {
    let db = sled::open(data.join("ledger")).unwrap();
    let tree = db.open_tree(wfl_store::TREE_NAME).unwrap();
    let mut chunk = wfl_store::forensic::Chunk::holding(&tree, sequence).unwrap();
    let index = usize::try_from(sequence - chunk.first).unwrap();
    edit(&mut chunk.entries[index]);
    tree.insert(&chunk.key, chunk.encode().unwrap()).unwrap();
    db.flush().unwrap();
}

async fn wait_not_serving(addr: &str) {
    use tonic_health::pb::health_check_response::ServingStatus;
    let ch = common::connect(addr).await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(ch);
    let mut watch = health
        .watch(tonic_health::pb::HealthCheckRequest {
            service: "wfl.v1.Ledger".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let deadline = std::time::Duration::from_secs(30);
    tokio::time::timeout(deadline, async {
        while let Some(status) = watch.message().await.unwrap() {
            if status.status == ServingStatus::NotServing as i32 {
                return;
            }
        }
        panic!("health stream ended");
    })
    .await
    .expect("health turns NOT_SERVING");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_data_dir_stops_the_start_or_turns_health_not_serving() {
    let dir = wfl_testkit::temp_dir();
    let args = [
        "--checkpoint-every-events",
        "100",
        "--checkpoint-interval-secs",
        "3600",
    ];
    let mut node = up(dir.path(), &args);
    let ch = common::connect(&node.grpc).await;
    for b in 0..3 {
        hires(&ch, b * 100, 100).await;
    }
    hires(&ch, 300, 20).await;
    let http = node.http.clone().unwrap();
    let metrics = common::http_get(&http, "/metrics");
    assert!(metrics.contains("wfl_ledger_verify_failed 0"), "{metrics}");
    assert!(node.terminate().success());
    let data = dir.path().join("data");

    // After the last checkpoint (300): the ledger refuses to start and names the sequence and the
    // command that shows it; `wfl verify` names it too.
    tamper_store(&data, 310, |e| e.bytes[4] ^= 0x20);
    let mut refused = up(dir.path(), &args);
    let status = refused.child.wait().unwrap();
    assert!(!status.success());
    let log = refused.log_text();
    assert!(log.contains("first bad sequence 310"), "{log}");
    assert!(log.contains("wfl verify"), "{log}");
    verify_fails_at(&data, &[], 310);
    tamper_store(&data, 310, |e| e.bytes[4] ^= 0x20);

    // A forged latest checkpoint (signature bit flipped) also stops the start.
    {
        let db = sled::open(data.join("ledger")).unwrap();
        let tree = db.open_tree(wfl_store::TREE_NAME).unwrap();
        let (key, value) = tree.scan_prefix(b"c").next_back().unwrap().unwrap();
        let mut forged = value.to_vec();
        *forged.last_mut().unwrap() ^= 1;
        tree.insert(&key, forged.clone()).unwrap();
        db.flush().unwrap();
        drop(tree);
        drop(db);
        let mut refused = up(dir.path(), &args);
        assert!(!refused.child.wait().unwrap().success());
        let log = refused.log_text();
        assert!(log.contains("not signed by this ledger's key"), "{log}");
        verify_fails_at(&data, &[], 300);
        let db = sled::open(data.join("ledger")).unwrap();
        let tree = db.open_tree(wfl_store::TREE_NAME).unwrap();
        *forged.last_mut().unwrap() ^= 1;
        tree.insert(&key, forged).unwrap();
        db.flush().unwrap();
    }

    // Below the checkpoint: the open is bounded and does not see it; the background verification
    // does, and health goes NOT_SERVING with the sequence in the log and the gauge in /metrics.
    tamper_store(&data, 42, |e| e.bytes[4] ^= 0x20);
    let damaged = up(dir.path(), &args);
    wait_not_serving(&damaged.grpc).await;
    let metrics = common::http_get(damaged.http.as_deref().unwrap(), "/metrics");
    assert!(metrics.contains("wfl_ledger_verify_failed 1"), "{metrics}");
    assert!(damaged.log_text().contains("first bad sequence 42"));
    drop(damaged);
    verify_fails_at(&data, &[], 42);
}

/// Proof-carrying views: `wfl verify EXPORT --views ADDR` re-derives every view of every org from
/// the export and finds the projector's answers at the export's size equal, naming that sequence
/// and its chain hash; the same export against a projector over another history fails, naming
/// the view, the org and why, with a non-zero exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_views_re_derives_the_served_views_and_refuses_another_history() {
    let dir = wfl_testkit::temp_dir();
    let node = up(&dir.path().join("a"), &[]);
    let ch = common::connect(&node.grpc).await;
    hires(&ch, 0, 40).await;
    let exits: Vec<_> = (0..15)
        .map(|i| scenario::resign("audit-org", &format!("w-{i}")))
        .chain([scenario::hire("other-org", "x-1")])
        .collect();
    let r = record_batch(&ch, &exits).await;
    for item in &r.results {
        common::ok(item);
    }
    let export = dir.path().join("export");
    let (ok, _, err) = wfl(&[
        "export",
        "--to",
        export.to_str().unwrap(),
        "--addr",
        &node.grpc,
    ]);
    assert!(ok, "{err}");
    // Events recorded after the export do not matter: the answers are asked at its size.
    hires(&ch, 100, 5).await;
    let (ok, stdout, err) = wfl(&["verify", export.to_str().unwrap(), "--views", &node.grpc]);
    assert!(ok, "{stdout} {err}");
    assert!(
        stdout.contains(
            "views OK: 10 answers (2 orgs x 5 views) at sequence 56 name its chain hash and Merkle root"
        ),
        "{stdout}"
    );

    // Another node with a history of the same length: its answers name another chain hash.
    let other = up(&dir.path().join("b"), &[]);
    let och = common::connect(&other.grpc).await;
    hires(&och, 1000, 56).await;
    let (ok, stdout, _) = wfl(&[
        "verify",
        export.to_str().unwrap(),
        "--views",
        &other.grpc,
        "--org",
        "audit-org",
    ]);
    assert!(!ok, "{stdout}");
    assert!(
        stdout.contains("views FAILED at sequence 56: separations of audit-org")
            && stdout.contains("another history"),
        "{stdout}"
    );
}
