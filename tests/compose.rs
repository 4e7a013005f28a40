//! docker-compose.yml and the Dockerfile cannot drift from the binaries (no Docker engine runs
//! here): every wfl service's command line uses only flags its binary has (`--help`), its
//! `WFL_*` variables are ones the binary reads, it has a health check on its own `/healthz`, the
//! services that need the ledger wait for it to be healthy, no key is given twice, and the image
//! gives its user a data dir it owns.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

fn repo_file(name: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// One service of the compose file: its keys (with the text under each), in file order.
#[derive(Debug, Default)]
struct Service {
    keys: Vec<(String, String)>,
}

impl Service {
    fn get(&self, key: &str) -> Option<&str> {
        self.keys
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// The `services:` section, read by indentation (two spaces a level; the file keeps to that).
fn services(text: &str) -> BTreeMap<String, Service> {
    let mut out: BTreeMap<String, Service> = BTreeMap::new();
    let mut in_services = false;
    let mut current: Option<String> = None;
    for line in text.lines() {
        if line.trim_start().starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        if indent == 0 {
            in_services = line.trim_end() == "services:";
            current = None;
            continue;
        }
        if !in_services {
            continue;
        }
        if indent == 2 {
            let name = line.trim().trim_end_matches(':').to_owned();
            out.entry(name.clone()).or_default();
            current = Some(name);
        } else if let Some(name) = &current {
            let service = out.get_mut(name).expect("service");
            let body = line.trim();
            if indent == 4 {
                let (key, rest) = body.split_once(':').expect("a key");
                service.keys.push((key.to_owned(), rest.trim().to_owned()));
            } else if let Some((_, v)) = service.keys.last_mut() {
                v.push('\n');
                v.push_str(body);
            }
        }
    }
    out
}

/// A YAML flow sequence of strings (`["a", "b"]`), which is JSON.
fn flow_list(text: &str) -> Vec<String> {
    serde_json::from_str(&text.replace('\n', " "))
        .unwrap_or_else(|e| panic!("not a flow list of strings ({e}): {text}"))
}

/// `environment:` as a block mapping: its keys.
fn env_keys(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.split_once(':').map(|(k, _)| k.trim().to_owned()))
        .filter(|k| !k.is_empty())
        .collect()
}

/// The long flags and the variables a binary's `--help` names.
fn help_of(bin: &str) -> (Vec<String>, Vec<String>) {
    let out = Command::new(common::bin(bin))
        .arg("--help")
        .output()
        .expect("binary runs");
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    let flags = help
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("--"))
        .map(|w| w.trim_end_matches([',', '.', ')', '`']).to_owned())
        .filter(|w| !w.is_empty())
        .collect();
    let envs = help
        .split("[env: ")
        .skip(1)
        .filter_map(|r| r.split(['=', ']']).next())
        .map(str::to_owned)
        .collect();
    (flags, envs)
}

#[test]
fn every_wfl_service_in_compose_matches_its_binary() {
    let text = repo_file("docker-compose.yml");
    let services = services(&text);
    let wfl: Vec<(&String, &Service)> = services
        .iter()
        .filter(|(_, s)| {
            s.get("command")
                .is_some_and(|c| flow_list(c).first().is_some_and(|b| b.starts_with("wfl")))
        })
        .collect();
    assert_eq!(
        wfl.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        [
            "gateway",
            "gateway-cluster",
            "ledger",
            "ledger-1",
            "ledger-2",
            "projector"
        ]
    );
    for (name, service) in &services {
        let mut seen = std::collections::HashSet::new();
        for (k, _) in &service.keys {
            assert!(
                seen.insert(k),
                "{name}: key {k:?} given twice (YAML keeps only the last)"
            );
        }
        assert!(
            service.get("healthcheck").is_some(),
            "{name} has no health check"
        );
    }
    for (name, service) in wfl {
        let command = flow_list(service.get("command").expect("command"));
        let bin = &command[0];
        let (flags, envs) = help_of(bin);
        for arg in &command[1..] {
            if let Some(flag) = arg.strip_prefix("--") {
                assert!(
                    flags.iter().any(|f| f == flag),
                    "{name}: {bin} has no --{flag} (its --help: {flags:?})"
                );
            }
        }
        for key in env_keys(service.get("environment").expect("environment")) {
            assert!(
                envs.contains(&key),
                "{name}: {bin} reads no {key} (it reads {envs:?})"
            );
        }
        // The health check asks this binary's own /healthz, on the HTTP address it serves.
        let http = command
            .iter()
            .position(|a| a == "--http-addr")
            .map(|i| command[i + 1].clone())
            .unwrap_or_else(|| panic!("{name}: give --http-addr so the health check matches"));
        let check = flow_list(
            service
                .get("healthcheck")
                .expect("healthcheck")
                .lines()
                .find_map(|l| l.strip_prefix("test:"))
                .expect("a test"),
        );
        assert!(
            check.iter().any(|a| a == &format!("http://{http}/healthz")),
            "{name}: the health check {check:?} does not ask http://{http}/healthz"
        );
        assert_eq!(check[0], "CMD");
        // Services that talk to the ledger start once it is healthy (in the cluster profile,
        // once the instances are).
        if !name.starts_with("ledger") {
            let deps = service.get("depends_on").expect("depends_on");
            assert!(
                deps.lines().any(|l| l.starts_with("ledger")
                    && l.split(':').next().is_some_and(|d| d.starts_with("ledger"))
                    && l.contains("service_healthy")),
                "{name} waits for a healthy ledger: {deps}"
            );
        }
        // Data dirs are volumes on /data, which the image's user owns.
        if command.iter().any(|a| a == "--data-dir") {
            assert!(
                command
                    .windows(2)
                    .any(|w| w[0] == "--data-dir" && w[1] == "/data"),
                "{name}: {command:?}"
            );
            assert!(
                service
                    .get("volumes")
                    .is_some_and(|v| v.contains(":/data\"")),
                "{name}: /data is a volume"
            );
        }
    }

    let dockerfile = repo_file("Dockerfile");
    let user = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("the image runs as a user")
        .trim()
        .to_owned();
    assert!(
        dockerfile.contains(&format!("chown {user}:{user} /data")),
        "the image gives user {user} its /data"
    );
    let (run_line, user_line) = (
        dockerfile.find("chown").expect("chown"),
        dockerfile.find("USER ").expect("USER"),
    );
    assert!(run_line < user_line, "/data is chowned before USER");
    assert!(
        dockerfile.contains("install -y --no-install-recommends curl"),
        "the health checks' curl is in the image"
    );
    for bin in ["wfl", "wfl-gateway", "wfl-ledger", "wfl-projector"] {
        assert!(
            dockerfile.contains(&format!("/src/target/release/{bin} ")),
            "the image holds {bin}"
        );
    }
}
