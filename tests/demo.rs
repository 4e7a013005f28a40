//! `wfl demo` end to end: the seeded story recorded through a real node's gRPC API and read back
//! from the views, reproducible (same seed, same figures), with the figures the story tells; and
//! `examples/events.jsonl`, the sample the README imports.

mod common;

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn rulepacks() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../rulepacks")
        .display()
        .to_string()
}

/// Runs `wfl demo ARGS --format json` and parses its answer.
fn demo(args: &[&str]) -> Value {
    let out = Command::new(common::bin("wfl"))
        .arg("demo")
        .args(args)
        .args(["--format", "json", "--rulepacks", &rulepacks()])
        .output()
        .expect("wfl demo runs");
    assert!(
        out.status.success(),
        "wfl demo failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "wfl demo --format json is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn org<'a>(figures: &'a Value, id: &str) -> &'a Value {
    figures["orgs"]
        .as_array()
        .expect("orgs")
        .iter()
        .find(|o| o["org"] == id)
        .unwrap_or_else(|| panic!("no {id} in {figures}"))
}

fn alerts<'a>(org: &'a Value, pack: &str, count_type: &str) -> Vec<&'a Value> {
    org["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .filter(|a| a["pack"] == pack && a["count_type"] == count_type)
        .collect()
}

#[test]
fn the_same_seed_tells_the_same_story_and_the_story_holds() {
    // Two runs, each on a node of its own started by the demo (fresh data dirs).
    let first = demo(&["--seed", "42"]);
    let second = demo(&["--seed", "42"]);
    assert_eq!(
        first["figures"], second["figures"],
        "same seed, same figures"
    );
    let f = &first["figures"];
    assert!(f["events"].as_u64().expect("events") > 5_000, "{f}");

    // CN: a quiet reduction that reaches the Art. 41 size (shadow count MET) with no formal
    // procedure recorded, most of it gradual attrition.
    let cn = org(f, "cn-netco");
    let met: Vec<_> = alerts(cn, "CN-LCL-41", "shadow")
        .into_iter()
        .filter(|a| a["level"] == "MET")
        .collect();
    assert!(!met.is_empty(), "no MET shadow alert for cn-netco: {cn}");
    assert!(
        met.iter()
            .any(|a| a["count"].as_u64() >= a["threshold"].as_u64() && a["threshold"] == 20),
        "{met:?}"
    );
    assert_eq!(
        cn["procedure_steps_recorded"],
        serde_json::json!([]),
        "CN has no formal procedure"
    );
    let b = &cn["separations"]["by_bucket"];
    assert!(
        b["gradual_attrition"].as_u64() > b["formal_layoff"].as_u64(),
        "{b}"
    );
    // Contract workers and graduate trainees bear more than their share.
    for cohort in ["graduate_trainee", "entry_level"] {
        let row = cn["cohorts"]
            .as_array()
            .expect("cohorts")
            .iter()
            .find(|c| c["cohort"] == cohort)
            .unwrap_or_else(|| panic!("no {cohort} row"));
        assert!(row["exposure_ratio"].as_f64() > Some(1.0), "{row}");
    }
    assert_eq!(cn["hiring"]["pauses"], 1, "{cn}");
    assert!(cn["ai"]["roles_automated_with_separation"].as_u64() > Some(0));
    assert!(
        cn["ai"]["roles_automated"].as_u64() > cn["ai"]["roles_automated_with_separation"].as_u64()
    );

    // AI usage rises quarter by quarter.
    let trend: Vec<f64> = cn["ai"]["usage_by_quarter"]
        .as_array()
        .expect("usage by quarter")
        .iter()
        .map(|u| u["value"].as_f64().unwrap_or(0.0) / u["population"].as_f64().unwrap_or(1.0))
        .collect();
    assert!(trend.len() >= 4, "{trend:?}");
    assert!(trend.windows(2).all(|w| w[0] < w[1]), "{trend:?}");

    // US: the formal layoff, strict count MET, its WARN notice filed on time.
    let us = org(f, "us-freight");
    assert_eq!(us["separations"]["by_bucket"]["formal_layoff"], 70, "{us}");
    let strict = alerts(us, "US-CA-WARN", "strict");
    assert!(
        strict
            .iter()
            .any(|a| a["level"] == "MET" && a["steps"]["WarnNoticeFiled"] == "on_time"),
        "{strict:?}"
    );

    // DE: employer-induced terminations approaching the §17 count, procedure missing.
    let de = org(f, "de-maschinen");
    assert!(
        alerts(de, "DE-KSchG-17", "strict")
            .iter()
            .any(|a| a["level"] == "approaching" && a["steps"]["AuthorityReported"] == "missing"),
        "{de}"
    );

    // The ledger: head at the last event, verified in full.
    for run in [&first, &second] {
        let l = &run["ledger"];
        assert_eq!(l["head_sequence"], f["events"], "{l}");
        assert_eq!(l["verified"], true, "{l}");
        assert_eq!(l["verified_events"], f["events"], "{l}");
    }
}

#[test]
fn another_seed_tells_another_story_and_recording_twice_changes_nothing() {
    let node = common::Node::start(common::Mode::Memory);
    let addr = node.proc.grpc.as_str();
    let first = demo(&["--seed", "7", "--addr", addr]);
    // The same seed again on the same node: every event is a duplicate, the figures stand.
    let again = demo(&["--seed", "7", "--addr", addr]);
    assert_eq!(first["figures"], again["figures"]);
    assert_eq!(
        first["ledger"]["head_sequence"],
        again["ledger"]["head_sequence"]
    );
    let other = demo(&["--seed", "8"]);
    assert_ne!(first["figures"], other["figures"], "the seed matters");
}

#[test]
fn the_sample_events_import_cleanly() {
    let node = common::Node::start(common::Mode::Memory);
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/events.jsonl");
    let lines = std::fs::read_to_string(&file)
        .expect("examples/events.jsonl")
        .lines()
        .count();
    let out = Command::new(common::bin("wfl"))
        .args([
            "import",
            &file.display().to_string(),
            "--addr",
            &node.proc.grpc,
        ])
        .output()
        .expect("wfl import runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "imported {lines} lines: {lines} committed, 0 accepted, 0 duplicates, 0 rejected"
        )),
        "{stderr}"
    );
    // The sample has something to show: gradual separations for the README's org.
    let out = Command::new(common::bin("wfl"))
        .args([
            "report",
            "separations",
            "--org",
            "acme-cn",
            "--format",
            "json",
            // The views may still be folding the import: read our writes (a fresh node's head is
            // the number of lines).
            "--min-sequence",
            &lines.to_string(),
            "--addr",
            &node.proc.grpc,
        ])
        .output()
        .expect("wfl report runs");
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(v["view"]["total"].as_u64() >= Some(15), "{v}");
}
