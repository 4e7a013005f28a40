//! Logs: `--log-format json` (or `WFL_LOG_FORMAT=json`) makes every binary write one JSON object
//! per line on stderr, with no ANSI escapes.

mod common;

use common::Proc;
use wfl_testkit::NatsServer;

/// Every line of a process's log is a JSON object with a level and a message.
fn assert_json_log(name: &str, p: &Proc) {
    let text = p.log_text();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "{name} logged nothing");
    for line in lines {
        assert!(!line.contains('\u{1b}'), "{name}: ANSI in {line:?}");
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("{name}: not a JSON log line ({e}): {line}"));
        assert!(v["level"].is_string(), "{name}: {line}");
        assert!(v["fields"].is_object(), "{name}: {line}");
        assert!(v["timestamp"].is_string(), "{name}: {line}");
    }
}

#[test]
fn every_binary_logs_json_lines_when_asked() {
    let dir = wfl_testkit::temp_dir();
    let logs = dir.path().join("logs");
    let up = common::up(&dir.path().join("up"), &["--log-format", "json"]);
    // The startup line says what listens where.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !up.log_text().contains("\"wfl up\"") {
        assert!(
            std::time::Instant::now() < deadline,
            "no startup line: {}",
            up.log_text()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // A refused event is a WARN line naming it (a resignation of a worker never hired).
    let refused = r#"{"event_id":"0192f0c4-8a7e-7cc0-9a51-3000000000ff","org_id":"acme","site_id":"s-1",
 "jurisdiction":"CN-33","effective_date":"2026-07-01","source":{"system":"hris","reference":"R-1"},
 "payload":{"type":"Resignation","separation":{"worker_ref":"w-never","employment_relationship":"employee",
 "contract_type":"open_ended","initiator":"employee"}}}"#;
    let file = dir.path().join("refused.json");
    std::fs::write(&file, refused).expect("write");
    let out = std::process::Command::new(common::bin("wfl"))
        .args(["record", "--addr", &up.grpc])
        .arg(&file)
        .output()
        .expect("wfl runs");
    assert!(!out.status.success(), "the resignation is refused");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let warned = loop {
        let text = up.log_text();
        if let Some(line) = text.lines().find(|l| l.contains("event refused")) {
            break serde_json::from_str::<serde_json::Value>(line).expect("json");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no WARN for the refused event: {text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(warned["level"], "WARN");
    assert_eq!(
        warned["fields"]["event_id"],
        "0192f0c4-8a7e-7cc0-9a51-3000000000ff"
    );
    assert_eq!(warned["fields"]["code"], "FailedPrecondition");
    assert_json_log("wfl up", &up);

    let nats = NatsServer::start();
    let json = ["--log-format".to_owned(), "json".to_owned()];
    let with =
        |args: Vec<String>| -> Vec<String> { args.into_iter().chain(json.clone()).collect() };
    let ledger = Proc::start(
        "wfl-ledger",
        &with(vec![
            "--data-dir".into(),
            dir.path().join("ledger").display().to_string(),
            "--grpc-addr".into(),
            "127.0.0.1:0".into(),
            "--nats-url".into(),
            nats.url(),
        ]),
        &logs,
    );
    let gateway = Proc::start(
        "wfl-gateway",
        &with(vec![
            "--grpc-addr".into(),
            "127.0.0.1:0".into(),
            "--nats-url".into(),
            nats.url(),
        ]),
        &logs,
    );
    let projector = Proc::start(
        "wfl-projector",
        &with(vec![
            "--data-dir".into(),
            dir.path().join("views").display().to_string(),
            "--grpc-addr".into(),
            "127.0.0.1:0".into(),
            "--ledger".into(),
            ledger.grpc.clone(),
            "--nats-url".into(),
            nats.url(),
            "--rulepacks".into(),
            concat!(env!("CARGO_MANIFEST_DIR"), "/../rulepacks").into(),
        ]),
        &logs,
    );
    for (name, p) in [
        ("wfl-ledger", &ledger),
        ("wfl-gateway", &gateway),
        ("wfl-projector", &projector),
    ] {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while p.log_text().trim().is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "{name} logged nothing"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert_json_log(name, p);
    }
}
