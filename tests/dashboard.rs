//! The dashboard in a real browser: `wfl up`, the demo recorded against it, then the page loaded
//! by headless Chromium (`--dump-dom` and `--screenshot`). The DOM must show the recorded figures;
//! the screenshot is kept under `target/dashboard/`. Chromium is required: `scripts/test.sh`
//! installs Debian's `chromium` when it is missing, and this test fails when it is not there.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn chromium() -> PathBuf {
    for name in ["chromium", "chromium-browser"] {
        if let Ok(out) = Command::new("sh")
            .args(["-c", &format!("command -v {name}")])
            .output()
        {
            let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            if out.status.success() && !path.is_empty() {
                return PathBuf::from(path);
            }
        }
    }
    panic!(
        "chromium is not installed: run `apt-get install -y chromium` (scripts/test.sh does it)"
    );
}

/// Headless Chromium with a profile of its own (removed with `profile`), offline.
fn browser(profile: &Path, args: &[&str]) -> std::process::Output {
    Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            &format!("--user-data-dir={}", profile.display()),
        ])
        .args(args)
        .output()
        .expect("chromium runs")
}

fn dump_dom(profile: &Path, url: &str) -> String {
    let out = browser(profile, &["--dump-dom", url]);
    assert!(
        out.status.success(),
        "chromium --dump-dom {url} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The section of one org in the dumped DOM.
fn section<'a>(dom: &'a str, org: &str) -> &'a str {
    let start = dom
        .find(&format!("data-org=\"{org}\""))
        .unwrap_or_else(|| panic!("no section for {org} in the page"));
    let rest = &dom[start..];
    &rest[..rest.find("</section>").unwrap_or(rest.len())]
}

#[test]
fn the_dashboard_shows_the_recorded_figures_in_a_browser() {
    let node = common::Node::start(common::Mode::Memory);
    let http = node.proc.http.clone().expect("an HTTP address");
    let rulepacks = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rulepacks");
    let out = Command::new(common::bin("wfl"))
        .args(["demo", "--format", "json", "--addr", &node.proc.grpc])
        .args(["--rulepacks", &rulepacks.display().to_string()])
        .output()
        .expect("wfl demo runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let story: Value = serde_json::from_slice(&out.stdout).expect("demo json");
    let figures = &story["figures"];
    let cn = figures["orgs"]
        .as_array()
        .expect("orgs")
        .iter()
        .find(|o| o["org"] == "cn-netco")
        .expect("cn-netco");

    let profile = tempfile::tempdir().expect("profile dir");
    let dom = dump_dom(profile.path(), &format!("{http}/"));
    assert!(
        dom.contains(&format!(
            "data-figure=\"head-sequence\">{}<",
            figures["events"]
        )),
        "ledger head not shown"
    );
    let cn_dom = section(&dom, "cn-netco");
    assert!(
        cn_dom.contains(&format!(
            "data-figure=\"separations-total\">{}<",
            cn["separations"]["total"]
        )),
        "CN separations total {} not in the page",
        cn["separations"]["total"]
    );
    for bucket in ["formal_layoff", "gradual_attrition", "neutral"] {
        assert!(
            cn_dom.contains(&format!(
                "data-figure=\"{bucket}\">{}<",
                cn["separations"]["by_bucket"][bucket]
            )),
            "CN {bucket} not in the page"
        );
    }
    assert!(cn_dom.contains("class=\"ai-trend\""), "no AI usage trend");
    assert!(cn_dom.contains("class=\"headcount\""), "no headcount chart");
    // The monthly bars add up to the total.
    let bars: u64 = cn_dom
        .split("class=\"bar-total\"")
        .skip(1)
        .filter_map(|s| s.split_once('>').and_then(|(_, r)| r.split('<').next()))
        .map(|n| n.parse::<u64>().expect("a bar total"))
        .sum();
    assert_eq!(Some(bars), cn["separations"]["total"].as_u64());
    // The CN gauge for the shadow count is at MET, and links to its events.
    let gauge = cn_dom
        .split("<tr class=\"alert\"")
        .find(|row| row.contains("data-pack=\"CN-LCL-41\" data-count-type=\"shadow\""))
        .expect("a CN-LCL-41 shadow gauge");
    assert!(gauge.contains("data-level=\"MET\""), "{gauge}");
    let href = gauge
        .split("href=\"")
        .nth(1)
        .and_then(|h| h.split('"').next())
        .expect("a link to the events")
        .replace("&amp;", "&");
    let explained = dump_dom(profile.path(), &format!("{http}{href}"));
    let listed = explained.matches("<tr class=\"event\"").count();
    assert!(listed >= 20, "{listed} events behind a MET Art. 41 gauge");
    assert!(
        explained.contains(&format!("data-figure=\"explained-total\">{listed}<")),
        "the explain page's total is its rows"
    );

    // A window that does not exist is the caller's mistake, named.
    let (code, body) = common::http_get_status(
        &http,
        "/explain?org=cn-netco&pack=CN-LCL-41&window_key=nope",
    );
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("no CN-LCL-41 window nope"), "{body}");

    // A screenshot for people, kept under target/.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/dashboard");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    let shot = dir.join("dashboard.png");
    let _ = std::fs::remove_file(&shot);
    let out = browser(
        profile.path(),
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1280,2000",
            &format!("{http}/"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 20_000,
        "screenshot {} is {size} bytes",
        shot.display()
    );
    println!("dashboard screenshot: {}", shot.display());
}
