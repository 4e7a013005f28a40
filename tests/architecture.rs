//! Architecture invariants checked against `cargo metadata`: which crate may depend on which
//! (ARCHITECTURE.md, "Dependency rules"). A forbidden edge fails the build's tests.

use std::collections::BTreeMap;
use std::process::Command;

/// Declared dependencies (all kinds) of each workspace package.
fn workspace_deps() -> BTreeMap<String, Vec<(String, Option<String>)>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON");
    let mut map = BTreeMap::new();
    for p in meta["packages"].as_array().expect("packages") {
        let name = p["name"].as_str().expect("name").to_owned();
        let deps = p["dependencies"]
            .as_array()
            .expect("dependencies")
            .iter()
            .map(|d| {
                (
                    d["name"].as_str().unwrap_or_default().to_owned(),
                    d["kind"].as_str().map(str::to_owned),
                )
            })
            .collect();
        map.insert(name, deps);
    }
    map
}

fn normal_deps<'a>(
    deps: &'a BTreeMap<String, Vec<(String, Option<String>)>>,
    pkg: &str,
) -> Vec<&'a str> {
    deps.get(pkg)
        .unwrap_or_else(|| panic!("{pkg} is not a workspace package"))
        .iter()
        .filter(|(_, kind)| kind.is_none())
        .map(|(n, _)| n.as_str())
        .collect()
}

const SERVICES: &[&str] = &["wfl-gateway", "wfl-ledger", "wfl-projector"];
const LIBS: &[&str] = &["wfl-store", "wfl-bus", "wfl-proto", "wfl-projections"];

#[test]
fn domain_is_pure() {
    let deps = workspace_deps();
    for d in normal_deps(&deps, "wfl-domain") {
        assert!(
            !d.starts_with("wfl-"),
            "wfl-domain must not depend on workspace crate {d}"
        );
        for forbidden in [
            "tokio",
            "sled",
            "async-nats",
            "tonic",
            "prost",
            "prost-types",
            "futures",
        ] {
            assert_ne!(d, forbidden, "wfl-domain must stay pure: it depends on {d}");
        }
    }
}

#[test]
fn library_crates_depend_only_on_domain() {
    let deps = workspace_deps();
    for lib in LIBS {
        for d in normal_deps(&deps, lib) {
            if d.starts_with("wfl-") {
                assert_eq!(
                    d, "wfl-domain",
                    "{lib} may depend only on wfl-domain among workspace crates, not {d}"
                );
            }
        }
    }
}

#[test]
fn services_do_not_depend_on_services() {
    let deps = workspace_deps();
    for svc in SERVICES {
        for d in normal_deps(&deps, svc) {
            assert!(
                !SERVICES.contains(&d),
                "{svc} must not depend on service {d}"
            );
            assert_ne!(
                d, "wfl-testkit",
                "{svc} must not depend on the testkit outside dev-dependencies"
            );
        }
    }
}

#[test]
fn nothing_depends_on_cli_or_tests() {
    let deps = workspace_deps();
    for (pkg, list) in &deps {
        for (d, _) in list {
            assert!(d != "wfl-cli" && d != "wfl-tests", "{pkg} depends on {d}");
        }
    }
}

#[test]
fn testkit_is_dev_only() {
    let deps = workspace_deps();
    for (pkg, list) in &deps {
        for (d, kind) in list {
            if d == "wfl-testkit" {
                assert_eq!(
                    kind.as_deref(),
                    Some("dev"),
                    "{pkg} uses wfl-testkit outside dev-dependencies"
                );
            }
        }
    }
}

#[test]
fn auth_depends_on_no_workspace_crate() {
    // Who may do what is decided without the event model, the store or the bus.
    let deps = workspace_deps();
    for pkg in ["wfl-auth", "wfl-metrics"] {
        for d in normal_deps(&deps, pkg) {
            assert!(
                !d.starts_with("wfl-"),
                "{pkg} must not depend on workspace crate {d}"
            );
        }
    }
}

#[test]
fn the_ledger_does_not_depend_on_the_views_and_the_gateway_not_on_the_store() {
    // The writer's crate stays apart from the views (classification is pure domain), and the
    // gateway learns everything from the ledger over the bus, never from the store.
    let deps = workspace_deps();
    for (pkg, forbidden) in [
        ("wfl-ledger", "wfl-projections"),
        ("wfl-gateway", "wfl-store"),
    ] {
        for (d, _) in deps.get(pkg).map(Vec::as_slice).unwrap_or_default() {
            assert_ne!(d, forbidden, "{pkg} must not depend on {forbidden}");
        }
    }
}
