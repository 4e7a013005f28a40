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
