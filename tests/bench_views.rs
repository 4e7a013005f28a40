//! The short mode of `wfl bench views` (20,000 restructuring events, the debug build CI runs):
//! fails when the views' disk per event or their catch-up rate from sequence 1 is more than 2×
//! worse than the figures recorded in `tests/data/views-baseline-debug.json` (measured with the
//! same command on the 2-core development machine; the release figures are in BENCHMARKS.md).

mod common;

use std::path::Path;
use std::process::Command;

#[test]
fn views_disk_and_catch_up_have_not_regressed() {
    let dir = wfl_testkit::temp_dir();
    let baseline = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/views-baseline-debug.json");
    let rulepacks = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rulepacks");
    let out = Command::new(common::bin("wfl"))
        .args([
            "bench",
            "views",
            "--events",
            "20000",
            "--as-of-queries",
            "1",
        ])
        .arg("--data-dir")
        .arg(dir.path().join("bench"))
        .arg("--rulepacks")
        .arg(&rulepacks)
        .arg("--check")
        .arg(&baseline)
        .args(["--format", "json"])
        .output()
        .expect("wfl bench runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).expect("a JSON report");
    assert_eq!(report["events"], 20000);
    assert!(
        !dir.path().join("bench").exists(),
        "the benchmark removes its scratch data"
    );
}

/// `wfl bench ingest --quick` (the CI mode) measures every row — ceilings, wfl in process and over
/// a private nats-server (in one process and as the three service binaries), single-Record
/// latency, replay and the PostgreSQL baseline — and removes its scratch data. Figures are not
/// asserted here (they belong in BENCHMARKS.md); that each row exists and is positive keeps the
/// command from rotting.
#[test]
fn bench_ingest_quick_measures_every_row() {
    let dir = wfl_testkit::temp_dir();
    let rulepacks = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rulepacks");
    let out = Command::new(common::bin("wfl"))
        .args(["bench", "ingest", "--quick", "--format", "json"])
        .args([
            "--postgres-url",
            "postgresql://postgres@127.0.0.1:5432/test",
        ])
        .arg("--data-dir")
        .arg(dir.path().join("bench"))
        .arg("--rulepacks")
        .arg(&rulepacks)
        .output()
        .expect("wfl bench runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).expect("a JSON report");
    assert_eq!(report["skipped"], serde_json::json!([]), "{report}");
    let rows = report["rows"].as_array().expect("rows");
    let figures: Vec<&str> = rows.iter().filter_map(|r| r["figure"].as_str()).collect();
    for want in [
        "raw JetStream publish, ids, pipelined 1,000",
        "raw sled batch insert, 1 flush per 1,000",
        "raw sled scan + decode",
        "wfl ingest COMMITTED, in process",
        "wfl ingest ACCEPTED, in process",
        "wfl ingest COMMITTED, over NATS",
        "wfl ingest ACCEPTED, over NATS",
        "wfl ingest COMMITTED, over NATS, separate processes",
        "wfl ingest COMMITTED, in process, until drained",
        "wfl ingest COMMITTED, over NATS, until drained",
        "wfl ingest COMMITTED, separate processes, until drained",
        "single Record COMMITTED p99 at 1000/s offered",
        "wfl gRPC Read replay",
        "wfl replay to JSON lines",
        "PostgreSQL, one transaction per command",
        "PostgreSQL, 1,000 rows per transaction",
    ] {
        assert!(figures.contains(&want), "no row {want:?} in {report}");
    }
    for r in rows {
        assert!(r["value"].as_f64().unwrap_or(0.0) > 0.0, "{r}");
        // Every rate except PostgreSQL's (its server's CPU is not the bench's to read) says the
        // CPU it used; the ingest rows run for seconds, so theirs cannot round to nothing.
        if r["unit"] == "events/s" && !r["figure"].as_str().unwrap_or("").starts_with("PostgreSQL")
        {
            let cpu = &r["cpu"];
            assert!(cpu["cores"].as_f64().is_some(), "no CPU figure: {r}");
            if r["figure"].as_str().unwrap_or("").starts_with("wfl ingest") {
                assert!(cpu["us_per_event"].as_f64().unwrap_or(0.0) > 0.0, "{r}");
            }
        }
    }
    let split = rows
        .iter()
        .find(|r| r["figure"] == "wfl ingest COMMITTED, over NATS, separate processes")
        .expect("the separate-processes row");
    let processes: Vec<&str> = split["cpu"]["by_process"]
        .as_array()
        .expect("CPU by process")
        .iter()
        .filter_map(|p| p[0].as_str())
        .collect();
    assert_eq!(
        processes,
        [
            "wfl bench",
            "nats-server",
            "wfl-ledger",
            "wfl-gateway",
            "wfl-projector"
        ],
        "{split}"
    );
    assert!(
        stderr.contains("ceilings: sled"),
        "progress is shown: {stderr}"
    );
    assert!(
        !dir.path().join("bench").exists(),
        "the benchmark removes its scratch data"
    );
}

/// `wfl bench fold` (the pure fold, its encoding and the threshold watch), small: it runs, and
/// its second tenant's watch over a copy of that tenant alone gave the rows the whole state
/// gives for it, and its separations read through its runs the view a walk of every entry
/// gives (the bench fails otherwise).
#[test]
fn bench_fold_small_times_a_second_tenants_watch() {
    let rulepacks = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rulepacks");
    let out = Command::new(common::bin("wfl"))
        .args(["bench", "fold", "--events", "20000", "--format", "json"])
        .arg("--rulepacks")
        .arg(&rulepacks)
        .output()
        .expect("wfl bench runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).expect("a JSON report");
    assert_eq!(report["events"], 20_000);
    assert_eq!(report["small_tenant_events"], 1_000);
    assert!(report["small_tenant_watch_ms"]
        .as_f64()
        .is_some_and(|ms| ms > 0.0));
    assert!(report["small_tenant_whole_copy_ms"]
        .as_f64()
        .is_some_and(|ms| ms > 0.0));
    assert!(report["small_tenant_evidence_ms"]
        .as_f64()
        .is_some_and(|ms| ms > 0.0));
}
