//! The subscribers in `examples/` run as an analytics team would run them, against a real node:
//! the Rust one over gRPC with its checkpoint file, the Python one (nats-py) on WFL_LEDGER with
//! decoding generated from `proto/`.

mod common;

use std::process::Command;

use common::{record_batch, replay, Mode, Node};
use wfl_testkit::scenario;

fn hires(n: usize, offset: usize) -> Vec<wfl_domain::Event> {
    (offset..offset + n)
        .map(|i| scenario::hire("acme", &format!("w-{i}")))
        .collect()
}

fn repo() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_subscriber_resumes_from_its_checkpoint() {
    let node = Node::start(Mode::Memory);
    let ch = node.channel().await;
    record_batch(&ch, &hires(300, 0)).await;
    let checkpoint = node.dir.path().join("position");
    let run = |count: u64| {
        let out = Command::new(common::bin("wfl-example-subscriber"))
            .args([
                "--addr",
                &node.proc.grpc,
                "--checkpoint",
                checkpoint.to_str().expect("path"),
                "--count",
                &count.to_string(),
            ])
            .output()
            .expect("example runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.split(' ').next().expect("seq").parse::<u64>().expect("n"))
            .collect::<Vec<u64>>()
    };
    assert_eq!(run(100), (1..=100).collect::<Vec<_>>());
    assert_eq!(
        std::fs::read_to_string(&checkpoint)
            .expect("checkpoint")
            .trim(),
        "100"
    );
    assert_eq!(
        run(200),
        (101..=300).collect::<Vec<_>>(),
        "resumes right after the checkpoint"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_subscriber_decodes_the_committed_stream_and_resumes_durably() {
    let here = repo().join("examples/python-subscriber");
    let gen = Command::new("bash")
        .arg(here.join("generate.sh"))
        .output()
        .expect("bash runs");
    assert!(
        gen.status.success(),
        "generating the Python decoding failed (scripts/test.sh installs examples/python-subscriber/requirements.txt): {}",
        String::from_utf8_lossy(&gen.stderr)
    );
    let node = Node::start(Mode::Nats);
    let url = node.nats.as_ref().expect("nats").url();
    let ch = node.channel().await;
    record_batch(&ch, &hires(200, 0)).await;
    let run = |count: usize| {
        let out = Command::new("python3")
            .arg(here.join("subscriber.py"))
            .args([
                "--nats-url",
                &url,
                "--durable",
                "py-test",
                "--count",
                &count.to_string(),
            ])
            .output()
            .expect("python3 runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json line"))
            .collect::<Vec<_>>()
    };
    let first = run(200);
    let ledger = replay(&ch).await;
    assert_eq!(first.len(), 200);
    for (line, c) in first.iter().zip(&ledger) {
        assert_eq!(line["sequence"], c.sequence);
        assert_eq!(line["hash"], hex::encode(&c.hash));
        assert_eq!(line["event_type"], "WorkerHired");
        assert_eq!(line["payload_kind"], "worker_hired");
        assert_eq!(
            line["event_id"].as_str(),
            c.event.as_ref().map(|e| e.event_id.as_str())
        );
    }
    record_batch(&ch, &hires(50, 200)).await;
    let second = run(50);
    let seqs: Vec<u64> = second
        .iter()
        .map(|l| l["sequence"].as_u64().expect("seq"))
        .collect();
    assert_eq!(
        seqs,
        (201..=250).collect::<Vec<_>>(),
        "the durable consumer resumes after its last ack"
    );
}
