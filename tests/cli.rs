//! The `wfl` command line against a running node: `record`, `import` and `replay`, including the
//! exit codes and the one-line reasons a script relies on.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{Mode, Node};
use wfl_testkit::scenario;

fn wfl(args: &[&str], stdin: Option<&str>) -> std::process::Output {
    let mut child = Command::new(common::bin("wfl"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("wfl runs");
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.unwrap_or("").as_bytes())
        .expect("write stdin");
    drop(input);
    child.wait_with_output().expect("wfl finishes")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn json(e: &wfl_domain::Event) -> String {
    serde_json::to_string(e).expect("event serialises")
}

#[test]
fn record_reads_json_from_stdin_and_reports_refusals_in_one_line() {
    let node = Node::start(Mode::Memory);
    let addr = node.proc.grpc.as_str();
    let hire = scenario::hire("acme", "w-1");
    let out = wfl(&["record", "--addr", addr], Some(&json(&hire)));
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(&format!("committed: event {} at sequence 1", hire.event_id)),
        "{}",
        text(&out.stdout)
    );

    // The same event again: the original sequence, flagged.
    let again = wfl(
        &["record", "--addr", addr, "--format", "json"],
        Some(&json(&hire)),
    );
    let v: serde_json::Value = serde_json::from_slice(&again.stdout).expect("json output");
    assert_eq!(v["sequence"], 1);
    assert_eq!(v["duplicate"], true);

    // Not JSON at all.
    let bad = wfl(&["record", "--addr", addr], Some("{ not json"));
    assert!(!bad.status.success());
    let err = text(&bad.stderr);
    assert!(err.starts_with("wfl: not a wfl event"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");

    // Valid JSON, invalid event: the field is named.
    let mut invalid = scenario::hire("acme", "w-2");
    invalid.org_id = wfl_domain::OrgId::from("acme corp");
    let bad = wfl(&["record", "--addr", addr], Some(&json(&invalid)));
    assert!(!bad.status.success());
    let err = text(&bad.stderr);
    assert!(
        err.contains("InvalidArgument") && err.contains("org_id"),
        "{err}"
    );

    // A lifecycle conflict.
    let bad = wfl(
        &["record", "--addr", addr],
        Some(&json(&scenario::resign("acme", "nobody"))),
    );
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("FailedPrecondition"),
        "{}",
        text(&bad.stderr)
    );
}

#[test]
fn import_reports_each_line_and_fails_when_any_line_is_refused() {
    let node = Node::start(Mode::Memory);
    let addr = node.proc.grpc.as_str();
    let dir = wfl_testkit::temp_dir();
    let file = dir.path().join("events.jsonl");
    let mut bad = scenario::hire("acme", "w-bad");
    bad.jurisdiction = "china".into();
    let lines = [
        json(&scenario::hire("acme", "w-1")),
        "this is not json".to_owned(),
        json(&scenario::hire("acme", "w-2")),
        json(&bad),
        json(&scenario::resign("acme", "w-1")),
        json(&scenario::resign("acme", "w-9")),
    ];
    std::fs::write(&file, lines.join("\n") + "\n").expect("write file");
    let out = wfl(
        &[
            "import",
            file.to_str().expect("path"),
            "--addr",
            addr,
            "--batch",
            "2",
        ],
        None,
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "refused lines make the exit code non-zero; stderr: {}",
        text(&out.stderr)
    );
    let stdout = text(&out.stdout);
    let report: Vec<&str> = stdout.lines().collect();
    // Only the refusals (and the summary on stderr); --verbose shows every line.
    assert_eq!(report.len(), 3, "{stdout}");
    assert!(!stdout.contains("line 1:"), "{stdout}");
    assert!(
        stdout.contains("line 2: rejected: not a wfl event"),
        "{stdout}"
    );
    assert!(
        stdout.contains("line 4: rejected: InvalidArgument: jurisdiction"),
        "{stdout}"
    );
    assert!(
        stdout.contains("line 6: rejected: FailedPrecondition"),
        "{stdout}"
    );
    assert!(
        text(&out.stderr).contains("6 lines: 3 committed, 0 accepted, 0 duplicates, 3 rejected"),
        "{}",
        text(&out.stderr)
    );

    // Importing the same file again commits nothing new.
    let again = wfl(
        &[
            "import",
            file.to_str().expect("path"),
            "--addr",
            addr,
            "--format",
            "json",
            "--verbose",
        ],
        None,
    );
    assert_eq!(again.status.code(), Some(2));
    let dups = text(&again.stdout)
        .lines()
        .filter(|l| l.contains("\"duplicate\":true"))
        .count();
    assert_eq!(dups, 3);

    // Replay: the three committed events as JSON lines, in order, each with its hash chain fields.
    let replay = wfl(&["replay", "--addr", addr], None);
    assert!(replay.status.success(), "{}", text(&replay.stderr));
    let events: Vec<serde_json::Value> = text(&replay.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("jsonl"))
        .collect();
    assert_eq!(events.len(), 3);
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["sequence"], i as u64 + 1);
        assert_eq!(e["hash"].as_str().map(str::len), Some(64));
    }
    assert_eq!(events[2]["event"]["payload"]["type"], "Resignation");
    assert_eq!(events[1]["prev_hash"], events[0]["hash"]);

    // tail: history then live, with a bucket filter (a resignation whose post stays open is neutral).
    let tail = wfl(&["tail", "--addr", addr, "--count", "3"], None);
    assert!(tail.status.success(), "{}", text(&tail.stderr));
    let seqs: Vec<u64> = text(&tail.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).expect("jsonl")["sequence"]
                .as_u64()
                .expect("seq")
        })
        .collect();
    assert_eq!(seqs, vec![1, 2, 3]);
    let neutral = wfl(
        &[
            "tail", "--addr", addr, "--bucket", "neutral", "--count", "1",
        ],
        None,
    );
    let line: serde_json::Value =
        serde_json::from_str(text(&neutral.stdout).trim()).expect("one event");
    assert_eq!(line["event"]["payload"]["type"], "Resignation");
    let bad = wfl(
        &["tail", "--addr", addr, "--bucket", "quiet", "--count", "1"],
        None,
    );
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("buckets[0]"),
        "{}",
        text(&bad.stderr)
    );

    // Filters and a bad filter.
    let filtered = wfl(&["replay", "--addr", addr, "--type", "Resignation"], None);
    assert_eq!(text(&filtered.stdout).lines().count(), 1);
    let bad = wfl(&["replay", "--addr", addr, "--type", "Layoff"], None);
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("event_types[0]"),
        "{}",
        text(&bad.stderr)
    );
}

#[test]
fn unreachable_server_is_a_one_line_error() {
    let port = wfl_testkit::free_port();
    let out = wfl(&["replay", "--addr", &format!("127.0.0.1:{port}")], None);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.starts_with("wfl: cannot reach wfl at"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

/// Values out of range are refused before anything is sent, naming the flag; `tail` gives up at
/// once on an address that can never work (it waits only for a ledger it cannot reach yet).
#[test]
fn out_of_range_flags_and_a_malformed_address_are_one_line_errors() {
    let port = wfl_testkit::free_port();
    let addr = format!("127.0.0.1:{port}");
    for (args, flag) in [
        (
            vec!["import", "--batch", "0", "--addr", &addr, "x.jsonl"],
            "--batch",
        ),
        (
            vec![
                "import",
                "--batch",
                "18446744073709551615",
                "--addr",
                &addr,
                "x.jsonl",
            ],
            "--batch",
        ),
        (vec!["tail", "--count", "0", "--addr", &addr], "--count"),
    ] {
        let out = wfl(&args, None);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            text(&out.stderr).contains(flag),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    let out = wfl(&["tail", "--addr", "http://[not an address"], None);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.starts_with("wfl: bad address"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

#[test]
fn a_ledger_cache_below_its_floor_is_refused_before_anything_starts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let out = wfl(
        &[
            "up",
            "--ledger-cache-mb",
            "2",
            "--data-dir",
            data.to_str().expect("utf8 path"),
        ],
        None,
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("--ledger-cache-mb"), "{err}");
    assert!(err.contains("2 is not in 8.."), "{err}");
    assert!(!data.exists(), "nothing was created");
}

/// The README's run command is `cargo run --release -- up`: every `cargo run -- …` in it must reach
/// `wfl` without naming a binary (the workspace has four). Checked with the debug profile the
/// test run has already built, so nothing is compiled here.
#[test]
fn the_readmes_cargo_run_commands_reach_wfl() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    assert!(
        readme.contains("cargo run --release -- up"),
        "the README gives the run command"
    );
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut run = Command::new(cargo);
    run.args(["run", "--quiet", "--", "up", "--help"])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    // As in common::bin: the test runner's package variables would make ring's build script
    // rerun and rebuild the whole TLS stack (minutes on a busy machine).
    common::without_package_env(&mut run);
    let out = run.output().expect("cargo runs");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("--data-dir"),
        "{}",
        text(&out.stdout)
    );
}
