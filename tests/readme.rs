//! The README cannot rot: its run command and its "Using it" commands are taken literally from
//! README.md (the fenced blocks after the `<!-- readme-test: ... -->` markers) and run against the
//! built `wfl` binary, in a directory laid out like a clone (`rulepacks/`, `examples/`), and their
//! output is checked. `cargo run --release --` is replaced by the binary's path; `wfl up` gets free
//! ports (`--grpc-addr`/`--http-addr 127.0.0.1:0`) and the commands find it through `WFL_ADDR`.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CARGO_RUN: &str = "cargo run --release --";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn readme() -> String {
    std::fs::read_to_string(repo().join("README.md")).expect("README.md")
}

/// The fenced block that follows `<!-- readme-test: NAME` (exactly one such marker).
fn block(readme: &str, name: &str) -> String {
    let marker = format!("<!-- readme-test: {name}");
    assert_eq!(
        readme.matches(&marker).count(),
        1,
        "README.md must mark exactly one block with {marker:?}"
    );
    let after = &readme[readme.find(&marker).expect("marker")..];
    let mut lines = after.lines().skip(1);
    let fence = lines.next().expect("a line after the marker");
    assert!(
        fence.starts_with("```"),
        "the line after {marker:?} must open a fenced block, got {fence:?}"
    );
    let body: Vec<&str> = lines.take_while(|l| !l.starts_with("```")).collect();
    body.join("\n") + "\n"
}

/// `pattern` with `...` as a wildcard matches the whole of `line`.
fn matches(pattern: &str, line: &str) -> bool {
    let parts: Vec<&str> = pattern.split("...").collect();
    let mut rest = line;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
    }
    rest.is_empty()
}

/// A directory laid out like a clone, where the README's relative paths resolve.
fn clone_like() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in ["rulepacks", "examples"] {
        std::os::unix::fs::symlink(repo().join(name), dir.path().join(name)).expect("symlink");
    }
    dir
}

/// `wfl up` as the README says, on free ports, until dropped.
struct Up {
    child: std::process::Child,
    grpc: String,
    http: String,
    log: PathBuf,
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_up(dir: &Path) -> Up {
    let run = block(&readme(), "run");
    let command = run.trim();
    let args = command
        .strip_prefix(CARGO_RUN)
        .unwrap_or_else(|| panic!("the run command should start with {CARGO_RUN:?}: {command:?}"));
    let log = dir.join("up.log");
    let mut child = Command::new(common::bin("wfl"))
        .args(args.split_whitespace())
        .args(["--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
        .current_dir(dir)
        .env_remove("WFL_DATA_DIR")
        .env_remove("WFL_RULEPACKS")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(std::fs::File::create(&log).expect("log")))
        .spawn()
        .expect("wfl up starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = match lines.next() {
        Some(Ok(l)) => l,
        _ => {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "`{command}` exited before listening:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let field = |key: &str| {
        first
            .split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in {first:?}"))
            .to_owned()
    };
    let up = Up {
        grpc: field("grpc="),
        http: field("http="),
        child,
        log,
    };
    // The README says: HTTP `/healthz` answers; wait for readiness with a deadline.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (code, body) = common::http_get_status(&up.http, "/healthz");
        if code == 200 {
            assert_eq!(body.trim(), "ok");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "/healthz never turned 200: {code} {body}\n{}",
            std::fs::read_to_string(&up.log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        dir.join("wfl-data").is_dir(),
        "the node keeps its data in ./wfl-data"
    );
    up
}

/// What one command of the block printed.
#[derive(Debug, Default)]
struct Said {
    stdout: String,
    stderr: String,
}

/// Runs the block with bash (`set -euo pipefail`), the wfl binary in place of `cargo run`, and
/// returns the output of each wfl command keyed by its arguments (`record hire.json`).
fn run_block(script: &str, dir: &Path, grpc: &str) -> BTreeMap<String, Said> {
    let wfl = common::bin("wfl").display().to_string();
    let mut out = String::from("set -euo pipefail\n");
    for line in script.lines() {
        if let Some(rest) = line.strip_prefix(CARGO_RUN) {
            let args = rest.split('#').next().unwrap_or("").trim();
            out.push_str(&format!(
                "echo '@@@ {args}'; echo '@@@ {args}' >&2\n'{wfl}'{rest}\n"
            ));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    let result = Command::new("bash")
        .arg("-c")
        .arg(&out)
        .current_dir(dir)
        .env("WFL_ADDR", grpc)
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&result.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&result.stderr).into_owned();
    assert!(
        result.status.success(),
        "the README's commands failed ({}):\n--- script\n{out}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        result.status
    );
    let mut said: BTreeMap<String, Said> = BTreeMap::new();
    let split = |text: &str, f: &mut dyn FnMut(&str, &str)| {
        let mut current = String::new();
        for line in text.lines() {
            if let Some(cmd) = line.strip_prefix("@@@ ") {
                current = cmd.to_owned();
            } else {
                f(&current, line);
            }
        }
    };
    split(&stdout, &mut |cmd, line| {
        let s = said.entry(cmd.to_owned()).or_default();
        s.stdout.push_str(line);
        s.stdout.push('\n');
    });
    split(&stderr, &mut |cmd, line| {
        let s = said.entry(cmd.to_owned()).or_default();
        s.stderr.push_str(line);
        s.stderr.push('\n');
    });
    said
}

/// The `# expected output` lines the README puts right after a command, per command.
fn promised_output(script: &str) -> Vec<(String, String)> {
    let mut promised = Vec::new();
    let mut last: Option<String> = None;
    for line in script.lines() {
        if let Some(rest) = line.strip_prefix(CARGO_RUN) {
            last = Some(rest.split('#').next().unwrap_or("").trim().to_owned());
        } else if let (Some(pattern), Some(cmd)) = (line.strip_prefix("# "), &last) {
            promised.push((cmd.clone(), pattern.to_owned()));
        } else {
            last = None;
        }
    }
    promised
}

#[test]
fn the_readme_run_command_and_its_using_it_commands_work_as_written() {
    let dir = clone_like();
    let up = start_up(dir.path());
    let script = block(&readme(), "using");
    assert!(
        script.lines().filter(|l| l.starts_with(CARGO_RUN)).count() >= 7,
        "the Using it block should hold the record, import, replay and report commands:\n{script}"
    );
    let said = run_block(&script, dir.path(), &up.grpc);
    let get = |cmd: &str| {
        said.get(cmd)
            .unwrap_or_else(|| panic!("the README no longer runs `{cmd}`: {:?}", said.keys()))
    };

    // What the README promises in its comments, literally (`...` stands for what varies).
    let promised = promised_output(&script);
    assert!(!promised.is_empty(), "the README shows what record prints");
    for (cmd, pattern) in &promised {
        assert!(
            get(cmd).stdout.lines().any(|l| matches(pattern, l)),
            "`{cmd}` should print a line like {pattern:?}; it printed:\n{}",
            get(cmd).stdout
        );
    }

    // The two events, at sequences 1 and 2, with their hashes.
    let hash_of = |cmd: &str, id: &str, seq: u64| {
        let text = &get(cmd).stdout;
        let prefix = format!("committed: event {id} at sequence {seq} hash ");
        let line = text
            .lines()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("`{cmd}` should print {prefix:?}...; it printed {text}"));
        let hash = line[prefix.len()..].trim().to_owned();
        assert_eq!(hash.len(), 64, "a SHA-256 in hex: {line}");
        hash
    };
    let h1 = hash_of(
        "record hire.json",
        "0192f0c4-8a7e-7cc0-9a51-000000000001",
        1,
    );
    let h2 = hash_of(
        "record exit.json",
        "0192f0c4-8a7e-7cc0-9a51-000000000002",
        2,
    );

    // The sample file imports without a refusal.
    let import_cmd = said
        .keys()
        .find(|k| k.starts_with("import "))
        .expect("an import command")
        .clone();
    let file = import_cmd.trim_start_matches("import ").trim();
    let lines = std::fs::read_to_string(dir.path().join(file))
        .unwrap_or_else(|e| panic!("the README imports {file}, which must exist: {e}"))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count();
    assert!(lines > 0, "{file} holds events");
    let summary =
        format!("imported {lines} lines: {lines} committed, 0 accepted, 0 duplicates, 0 rejected");
    assert!(
        get(&import_cmd).stderr.contains(&summary),
        "`{import_cmd}` should say {summary:?}; it said:\n{}",
        get(&import_cmd).stderr
    );

    // Replay: every committed event, in order, with the hashes record printed.
    let replayed: Vec<serde_json::Value> = get("replay --from 1")
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let total = 2 + lines as u64;
    assert_eq!(replayed.len() as u64, total, "replay shows every event");
    for (i, r) in replayed.iter().enumerate() {
        assert_eq!(r["sequence"], i as u64 + 1, "{r}");
    }
    assert_eq!(replayed[0]["hash"], h1.as_str());
    assert_eq!(replayed[1]["hash"], h2.as_str());
    assert!(get("replay --from 1")
        .stderr
        .contains(&format!("replayed {total} events")));

    // The reports answer for acme-cn; the JSON one is JSON naming the sequence it reflects.
    let separations = &get("report separations --org acme-cn").stdout;
    assert!(!separations.trim().is_empty(), "separations prints a table");
    assert!(
        separations.contains("acme-cn") || separations.contains("sequence"),
        "{separations}"
    );
    let headcount = &get("report headcount --org acme-cn --period quarter --format json").stdout;
    let json: serde_json::Value = serde_json::from_str(headcount.trim())
        .unwrap_or_else(|e| panic!("headcount --format json is not JSON ({e}): {headcount}"));
    assert!(json.is_object(), "{json}");
    assert!(said.contains_key("report thresholds --org acme-cn --alerts-only"));

    // In text, the headcount shows its figures (the quarter's closing headcount, as an integer).
    let text = Command::new(common::bin("wfl"))
        .args([
            "report",
            "headcount",
            "--org",
            "acme-cn",
            "--period",
            "quarter",
            "--addr",
            &up.grpc,
        ])
        .output()
        .expect("wfl runs");
    let text = String::from_utf8_lossy(&text.stdout);
    let rows = json["view"]["rows"].as_array().expect("rows");
    let closing = rows[0]["total"]["closing"].as_u64().expect("an integer");
    let header = text
        .lines()
        .find(|l| l.contains("total.closing"))
        .unwrap_or_else(|| panic!("headcount text shows the totals: {text}"));
    let at = header
        .split_whitespace()
        .position(|c| c == "total.closing")
        .expect("column");
    let first = text
        .lines()
        .skip_while(|l| *l != header)
        .nth(1)
        .expect("a row");
    assert_eq!(
        first.split_whitespace().nth(at),
        Some(closing.to_string().as_str()),
        "{text}"
    );

    // On a terminal, import draws a progress line on stderr (a pty through `script`); redirected,
    // it prints the summary alone (checked above).
    // (`script` is util-linux's, present wherever bash is.)
    {
        let wfl = common::bin("wfl").display().to_string();
        let tty = Command::new("script")
            .args(["-qec"])
            .arg(format!(
                "'{wfl}' import --verbose examples/events.jsonl --addr {}",
                up.grpc
            ))
            .arg("/dev/null")
            .current_dir(dir.path())
            .output()
            .expect("script runs");
        let seen = String::from_utf8_lossy(&tty.stdout);
        assert!(
            seen.contains("importing: "),
            "progress on a terminal: {seen:?}"
        );
        assert!(
            seen.contains(&format!(
                "imported {lines} lines: 0 committed, 0 accepted, {lines} duplicates, 0 rejected"
            )),
            "{seen:?}"
        );
    }

    // What the block wrote stays in the working directory, as a user would see it.
    assert!(dir.path().join("hire.json").is_file());
    drop(up);
}

#[test]
fn the_readme_marks_its_blocks_and_names_files_that_exist() {
    let text = readme();
    assert_eq!(block(&text, "run").trim(), "cargo run --release -- up");
    // Every relative markdown link of the README resolves in a clone.
    let mut rest = text.as_str();
    while let Some(at) = rest.find("](") {
        rest = &rest[at + 2..];
        let target = rest.split(')').next().unwrap_or("");
        let path = target.split('#').next().unwrap_or("");
        if path.is_empty() || path.contains("://") {
            continue;
        }
        assert!(
            repo().join(path).exists(),
            "README.md links to {path}, which is not in the repository"
        );
    }
}

#[test]
fn expected_output_patterns_match_as_documented() {
    assert!(matches(
        "committed: event 0192f0c4-... at sequence 1 hash ...",
        "committed: event 0192f0c4-8a7e-7cc0-9a51-000000000001 at sequence 1 hash abcd"
    ));
    assert!(!matches(
        "committed: event 0192f0c4-... at sequence 1 hash ...",
        "committed: event 0192f0c4-8a7e-7cc0-9a51-000000000001 at sequence 2 hash abcd"
    ));
    assert!(matches("exact", "exact"));
    assert!(!matches("exact", "exactly"));
}

/// The fenced blocks of `lang` (`json`, `jsonl`) in a markdown text, in order.
fn fenced(text: &str, langs: &[&str]) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        match &mut current {
            None => {
                if let Some(lang) = line.strip_prefix("```") {
                    if langs.contains(&lang.trim()) {
                        current = Some(String::new());
                    }
                }
            }
            Some(body) => {
                if line.starts_with("```") {
                    blocks.push(std::mem::take(body));
                    current = None;
                } else {
                    body.push_str(line);
                    body.push('\n');
                }
            }
        }
    }
    blocks
}

#[test]
fn docs_events_shows_every_payload_kind_and_every_example_commits() {
    let text = std::fs::read_to_string(repo().join("docs/events.md")).expect("docs/events.md");
    let mut events: Vec<serde_json::Value> = Vec::new();
    for block in fenced(&text, &["json"]) {
        events.push(
            serde_json::from_str(&block)
                .unwrap_or_else(|e| panic!("a json block of docs/events.md ({e}):\n{block}")),
        );
    }
    let mut setup: Vec<serde_json::Value> = Vec::new();
    for block in fenced(&text, &["jsonl"]) {
        for line in block.lines().filter(|l| !l.trim().is_empty()) {
            setup.push(serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")));
        }
    }
    // One example per kind, for every kind of the API.
    let shown: Vec<String> = events
        .iter()
        .map(|e| {
            e["payload"]["type"]
                .as_str()
                .expect("payload.type")
                .to_owned()
        })
        .collect();
    let all: Vec<&str> = wfl_domain::EventType::ALL
        .iter()
        .map(|t| t.as_str())
        .collect();
    for kind in &all {
        assert_eq!(
            shown.iter().filter(|s| s == kind).count(),
            1,
            "docs/events.md shows {kind} exactly once"
        );
        assert!(
            text.contains(&format!("### {kind}\n")),
            "docs/events.md has a section for {kind}"
        );
    }
    assert_eq!(shown.len(), all.len(), "no kind the API lacks: {shown:?}");

    // Imported in the page's order into a fresh node, every example commits.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut node = common::up(dir.path(), &[]);
    let file = dir.path().join("events.jsonl");
    let jsonl: String = setup
        .iter()
        .chain(&events)
        .map(|e| format!("{e}\n"))
        .collect();
    std::fs::write(&file, jsonl).expect("write");
    let out = Command::new(common::bin("wfl"))
        .args(["import", "--addr", &node.grpc])
        .arg(&file)
        .output()
        .expect("wfl import runs");
    let n = setup.len() + events.len();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success()
            && stderr.contains(&format!(
                "imported {n} lines: {n} committed, 0 accepted, 0 duplicates, 0 rejected"
            )),
        "every example of docs/events.md commits: {}\n{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );

    // Every kind read back from the projector's store: after a restart the views come from
    // their stored form (binary entries, payloads as protobuf), and each example is explained
    // exactly as it was before.
    let ids: Vec<String> = setup
        .iter()
        .chain(&events)
        .map(|e| e["event_id"].as_str().expect("event_id").to_owned())
        .collect();
    let explain = |grpc: &str| -> serde_json::Value {
        let mut cmd = Command::new(common::bin("wfl"));
        cmd.args(["report", "explain", "--addr", grpc, "--format", "json"])
            .args(["--min-sequence", &n.to_string()]);
        for id in &ids {
            cmd.args(["--event-id", id]);
        }
        let out = cmd.output().expect("wfl report runs");
        assert!(
            out.status.success(),
            "explain: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("explain prints JSON")
    };
    let before = explain(&node.grpc);
    let text = before.to_string();
    for id in &ids {
        assert!(text.contains(id.as_str()), "{id} is explained: {text}");
    }
    // Stopped cleanly, so that everything folded is read back from the store, none re-folded.
    assert!(node.terminate().success(), "wfl up stops cleanly");
    let node = common::up(dir.path(), &[]);
    assert_eq!(
        explain(&node.grpc),
        before,
        "explained alike after a restart"
    );
    assert_eq!(
        node.metric("wfl_views_folded_total"),
        0,
        "read back from the store, none folded again"
    );
}

/// `(flag, variable, default)` of every option `wfl up --help` lists.
fn up_flags() -> Vec<(String, String, String)> {
    let out = Command::new(common::bin("wfl"))
        .args(["up", "--help"])
        .output()
        .expect("wfl runs");
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut flags = Vec::new();
    let mut current: Option<(String, String)> = None;
    let push = |flag: Option<(String, String)>, flags: &mut Vec<(String, String, String)>| {
        if let Some((flag, text)) = flag {
            let pick = |key: &str| {
                text.split(key)
                    .nth(1)
                    .and_then(|r| r.split(']').next())
                    .map(|v| v.trim_end_matches('=').to_owned())
                    .unwrap_or_default()
            };
            flags.push((flag, pick("[env: "), pick("[default: ")));
        }
    };
    for line in help.lines() {
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix("--").or_else(|| {
            t.strip_prefix("-h, --")
                .filter(|_| t.starts_with("-h"))
                .map(|_| "help")
        }) {
            push(current.take(), &mut flags);
            let name = rest.split_whitespace().next().unwrap_or("").to_owned();
            current = Some((name, line.to_owned()));
        } else if let Some((_, text)) = &mut current {
            text.push(' ');
            text.push_str(t);
        }
    }
    push(current.take(), &mut flags);
    flags.retain(|(f, _, _)| f != "help");
    flags
}

#[test]
fn the_readme_lists_every_flag_of_wfl_up_with_its_variable_and_default() {
    let text = readme();
    let section = text
        .split("### Configuration")
        .nth(1)
        .expect("a Configuration section")
        .split("\n### ")
        .next()
        .expect("section");
    let flags = up_flags();
    assert!(flags.len() > 20, "{flags:?}");
    for (flag, env, default) in flags {
        let row = section
            .lines()
            .find(|l| l.starts_with(&format!("| `--{flag}` |")))
            .unwrap_or_else(|| panic!("README's Configuration table lacks --{flag}"));
        assert!(
            !env.is_empty() && row.contains(&format!("| `{env}` |")),
            "--{flag}: every server flag has a WFL_* variable ({env:?}), and the README names it: {row}"
        );
        if !default.is_empty() {
            assert!(
                row.contains(&format!("| `{default}` |")),
                "--{flag}: the README gives the default {default:?}: {row}"
            );
        }
    }
}

#[test]
fn wfl_up_reads_a_toml_config_file_and_names_an_unknown_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("configured-data");
    let config = dir.path().join("wfl.toml");
    std::fs::write(
        &config,
        format!(
            "data-dir = {:?}\ngrpc_addr = \"127.0.0.1:0\"\nhttp-addr = \"127.0.0.1:0\"\nrulepacks = {:?}\nlog-format = \"json\"\nmin-free-mb = 1\n",
            data.display().to_string(),
            repo().join("rulepacks").display().to_string()
        ),
    )
    .expect("write");
    let log = dir.path().join("up.log");
    let mut command = Command::new(common::bin("wfl"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("WFL_") {
            command.env_remove(name);
        }
    }
    let mut child = command
        .args(["up", "--config"])
        .arg(&config)
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(std::fs::File::create(&log).expect("log")))
        .spawn()
        .expect("wfl up starts");
    let first = BufReader::new(child.stdout.take().expect("stdout"))
        .lines()
        .next();
    // The node opens its data dir after printing where it listens.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !data.join("ledger-signing.key").exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    let first = first.and_then(Result::ok).unwrap_or_else(|| {
        panic!(
            "wfl up --config did not start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    });
    assert!(
        first.starts_with("wfl listening grpc=127.0.0.1:") && !first.contains(":50051"),
        "the configured free port is used: {first}"
    );
    assert!(data.is_dir(), "the configured data dir is used");
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    let line = logged.lines().next().expect("a log line");
    assert!(
        serde_json::from_str::<serde_json::Value>(line).is_ok(),
        "log-format = json from the file: {line}"
    );

    std::fs::write(&config, "grpc-adr = \"127.0.0.1:0\"\n").expect("write");
    let out = Command::new(common::bin("wfl"))
        .args(["up", "--config"])
        .arg(&config)
        .current_dir(dir.path())
        .output()
        .expect("wfl runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unknown key \"grpc-adr\"") && stderr.contains("wfl.toml"),
        "{stderr}"
    );
}
