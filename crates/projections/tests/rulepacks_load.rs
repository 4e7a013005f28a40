//! The shipped rule packs load and validate; malformed packs are refused with the file and the
//! field path named.

use std::path::{Path, PathBuf};
use wfl_projections::rules::{self, Confidence, RulePack, Unit};
use wfl_projections::Error;

fn shipped() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rulepacks")
}

fn load_shipped() -> Vec<RulePack> {
    rules::load_dir(&shipped()).expect("shipped packs load")
}

const MINIMAL: &str = r#"
id = "TEST-1"
title = "test"
statute = "Test Act s. 1"
version = "1"
status_of_law = "in_force"
jurisdictions = ["XX"]
unit = "site"
unit_confidence = "verified"

[population]
days_before_first_separation = 1
confidence = "verified"

[[counts.strict]]
name = "dismissals"
event_types = ["EconomicDismissal"]
confidence = "verified"

[[thresholds]]
name = "ten"
count = 10
inclusive = true
confidence = "verified"

[[windows]]
name = "rolling-30"
kind = "rolling"
days = 30
confidence = "verified"

[[sources]]
cite = "nowhere"
confidence = "verified"
"#;

/// Parses `text` as `name`, expecting a rule-pack error; returns (file, field, message).
fn refused(name: &str, text: &str) -> (String, String, String) {
    match rules::parse(name, text) {
        Err(Error::RulePack {
            file,
            field,
            message,
        }) => (file, field, message),
        other => panic!("expected a rule-pack error, got {other:?}"),
    }
}

#[test]
fn all_seven_shipped_packs_load_sorted_by_file_name() {
    let packs = load_shipped();
    let ids: Vec<&str> = packs.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "CN-LCL-41",
            "DE-KSchG-17",
            "EU-9859-30D",
            "EU-9859-90D",
            "US-CA-WARN",
            "US-NY-WARN",
            "US-WARN-FED"
        ]
    );
    for p in &packs {
        assert!(!p.sources.is_empty(), "{} cites sources", p.id);
        assert!(!p.procedure.is_empty(), "{} lists procedure steps", p.id);
    }
}

#[test]
fn shipped_packs_encode_the_documented_units_and_jurisdictions() {
    let packs = load_shipped();
    let by_id = |id: &str| packs.iter().find(|p| p.id == id).expect(id);
    assert_eq!(by_id("CN-LCL-41").unit, Unit::LegalEntity);
    assert_eq!(by_id("US-WARN-FED").unit, Unit::Site);
    assert_eq!(by_id("DE-KSchG-17").unit, Unit::Establishment);
    assert!(by_id("CN-LCL-41").applies_to("CN-33"));
    assert!(!by_id("CN-LCL-41").applies_to("CNX"));
    assert!(by_id("US-WARN-FED").applies_to("US-CA"));
    assert!(!by_id("US-CA-WARN").applies_to("US-NY"));
    assert!(by_id("EU-9859-30D").applies_to("FR"));
    // Germany transposed the 30-day variant: no 90-day row for a German establishment.
    assert!(!by_id("EU-9859-90D").applies_to("DE"));
    assert!(by_id("EU-9859-30D").applies_to("DE"));
    assert_eq!(
        by_id("EU-9859-30D").national_pack("DE"),
        Some("DE-KSchG-17")
    );
    assert!(
        by_id("EU-9859-90D").applies_to("FR"),
        "choice not researched: both variants"
    );
    assert_eq!(
        by_id("DE-KSchG-17").count_date(),
        wfl_projections::rules::CountDate::Notice
    );
    assert!(!by_id("EU-9859-30D").applies_to("GB"));
    assert!(by_id("DE-KSchG-17").applies_to("DE-BY"));
}

#[test]
fn heuristic_and_unconfirmed_items_say_so() {
    let packs = load_shipped();
    let cn = packs.iter().find(|p| p.id == "CN-LCL-41").unwrap();
    // The statute has no window: every CN window is a heuristic marked unconfirmed.
    assert!(cn
        .windows
        .iter()
        .all(|w| w.heuristic && w.confidence == Confidence::Unconfirmed));
    // The denominator is undefined in the statute.
    assert_eq!(cn.population.confidence, Confidence::Unconfirmed);
    // The numeric threshold is statutory.
    assert!(cn
        .thresholds
        .iter()
        .all(|t| t.confidence == Confidence::Verified));
    // Every window that counts planned events states how well that is backed.
    for p in &packs {
        for w in &p.windows {
            assert!(w.look_ahead_days == 0 || w.look_ahead_confidence.is_some());
        }
    }
}

#[test]
fn the_minimal_pack_parses() {
    let p = rules::parse("minimal.toml", MINIMAL).unwrap();
    assert_eq!(p.id, "TEST-1");
    assert_eq!(p.population.average_samples, 1);
}

#[test]
fn bad_field_type_is_refused_with_its_path() {
    let text = MINIMAL.replace("count = 10", "count = \"ten\"");
    let (file, field, message) = refused("bad.toml", &text);
    assert_eq!(file, "bad.toml");
    assert_eq!(field, "thresholds[0].count");
    assert!(message.contains("invalid type"), "{message}");
}

#[test]
fn unknown_field_is_refused_with_its_path() {
    let text = MINIMAL.replace("days = 30", "days = 30\nlength = 30");
    let (_, field, message) = refused("bad.toml", &text);
    assert_eq!(field, "windows[0].length");
    assert!(message.contains("unknown field"), "{message}");
    let text = MINIMAL.replace("id = \"TEST-1\"", "id = \"TEST-1\"\nauthor = \"x\"");
    assert_eq!(refused("bad.toml", &text).1, "author");
}

#[test]
fn missing_field_is_refused_with_its_path() {
    let text = MINIMAL.replace("inclusive = true\n", "");
    assert_eq!(refused("bad.toml", &text).1, "thresholds[0].inclusive");
}

#[test]
fn out_of_range_values_are_refused() {
    let cases = [
        (
            MINIMAL.replace("count = 10", "share = 1.5"),
            "thresholds[0].share",
        ),
        (
            MINIMAL.replace("count = 10", "share = 0.0"),
            "thresholds[0].share",
        ),
        (
            MINIMAL.replace("jurisdictions = [\"XX\"]", "jurisdictions = []"),
            "jurisdictions",
        ),
        (
            MINIMAL.replace("days = 30", "days = -30"),
            "windows[0].days",
        ),
        (
            MINIMAL.replace("days = 30", "days = 30\nlook_ahead_days = -1"),
            "windows[0].look_ahead_days",
        ),
        (
            MINIMAL.replace("days = 30", "days = 30\nlook_ahead_days = 30"),
            "windows[0].look_ahead_confidence",
        ),
        (MINIMAL.replace("count = 10\n", ""), "thresholds[0]"),
        (
            MINIMAL.replace(
                "event_types = [\"EconomicDismissal\"]",
                "event_types = [\"HiringPaused\"]",
            ),
            "counts.strict[0].event_types",
        ),
        (
            MINIMAL.replace("event_types = [\"EconomicDismissal\"]\n", ""),
            "counts.strict[0]",
        ),
        (
            MINIMAL.replace(
                "days_before_first_separation = 1",
                "days_before_first_separation = -1",
            ),
            "population.days_before_first_separation",
        ),
        (
            MINIMAL.replace("unit = \"site\"", "unit = \"galaxy\""),
            "unit",
        ),
        (
            format!(
                "{MINIMAL}\n[member_states]\nchose_this_variant = [\"YY\"]\nconfidence = \"secondary\"\n"
            ),
            "member_states.chose_this_variant[0]",
        ),
        (
            format!("{MINIMAL}\n[count_date]\nbasis = \"hire\"\nconfidence = \"secondary\"\n"),
            "count_date.basis",
        ),
    ];
    for (text, want) in cases {
        let (_, field, message) = refused("bad.toml", &text);
        assert_eq!(field, want, "{message}");
    }
    // A threshold list with no alternative at all.
    let start = MINIMAL.find("[[thresholds]]").unwrap();
    let end = MINIMAL.find("[[windows]]").unwrap();
    let text = format!("{}{}", &MINIMAL[..start], &MINIMAL[end..]);
    assert_eq!(refused("bad.toml", &text).1, "thresholds");
}

#[test]
fn load_dir_names_the_malformed_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a-good.toml"), MINIMAL).unwrap();
    std::fs::write(
        dir.path().join("b-bad.toml"),
        MINIMAL
            .replace("TEST-1", "TEST-2")
            .replace("count = 10", "share = 1.5"),
    )
    .unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a pack").unwrap();
    match rules::load_dir(dir.path()) {
        Err(Error::RulePack { file, field, .. }) => {
            assert!(file.ends_with("b-bad.toml"), "{file}");
            assert_eq!(field, "thresholds[0].share");
        }
        other => panic!("expected a rule-pack error, got {other:?}"),
    }
}

#[test]
fn load_dir_refuses_duplicate_ids_across_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("one.toml"), MINIMAL).unwrap();
    std::fs::write(dir.path().join("two.toml"), MINIMAL).unwrap();
    match rules::load_dir(dir.path()) {
        Err(Error::RulePack {
            file,
            field,
            message,
        }) => {
            assert!(file.ends_with("two.toml"), "{file}");
            assert_eq!(field, "id");
            assert!(message.contains("one.toml"), "{message}");
        }
        other => panic!("expected a duplicate-id error, got {other:?}"),
    }
}

#[test]
fn load_dir_reports_an_unreadable_directory() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    assert!(matches!(rules::load_dir(&missing), Err(Error::Io { .. })));
}

#[test]
fn the_readme_example_is_a_valid_pack() {
    let readme = std::fs::read_to_string(shipped().join("README.md")).unwrap();
    let start = readme.find("```toml\n").expect("a toml example") + "```toml\n".len();
    let end = start + readme[start..].find("```").unwrap();
    let pack = rules::parse("README.md", &readme[start..end]).unwrap();
    assert_eq!(pack.id, "US-WARN-FED");
    assert_eq!(pack.thresholds.len(), 3);
    assert!(pack.thresholds[0].site_event.is_some(), "the plant closing");
    assert!(pack.population.part_time_owed_notice.is_some());
}

/// The issue-9 pack fields are validated with their paths: a distance only on a relocation, a
/// waiting period of exactly one of months and days, a non-negative link to a site event.
#[test]
fn site_events_and_waiting_periods_are_validated() {
    let with_site_event = |body: &str| {
        MINIMAL.replace(
            "inclusive = true\nconfidence = \"verified\"\n",
            &format!(
                "inclusive = true\nconfidence = \"verified\"\n\n[thresholds.site_event]\n{body}\nconfidence = \"unconfirmed\"\n"
            ),
        )
    };
    let ok = with_site_event("kind = \"relocated\"\nmin_distance_km = 81\ndays_after_window = 90");
    let pack = rules::parse("ok.toml", &ok).unwrap();
    assert_eq!(
        pack.thresholds[0].site_event.as_ref().unwrap().kind,
        rules::SiteEventKind::Relocated
    );
    let (_, field, _) = refused(
        "bad.toml",
        &with_site_event("kind = \"closed\"\nmin_distance_km = 81\ndays_after_window = 90"),
    );
    assert_eq!(field, "thresholds[0].site_event.min_distance_km");
    let (_, field, _) = refused(
        "bad.toml",
        &with_site_event("kind = \"closed\"\ndays_after_window = -1"),
    );
    assert_eq!(field, "thresholds[0].site_event.days_after_window");

    let with_step = |block: &str| {
        format!(
            "{MINIMAL}\n[[procedure]]\nname = \"notify\"\nevent_type = \"AuthorityReported\"\nmin_lead_days = 0\nconfidence = \"verified\"\n\n[procedure.blocks_effect]\n{block}\nconfidence = \"unconfirmed\"\n"
        )
    };
    let pack = rules::parse("ok.toml", &with_step("months = 1")).unwrap();
    let block = pack.procedure[0].blocks_effect.as_ref().unwrap();
    assert_eq!(
        block.earliest_effective(wfl_domain::Date::parse("2026-01-31").unwrap()),
        wfl_domain::Date::parse("2026-02-28").unwrap()
    );
    for (bad, path) in [
        ("months = 1\ndays = 30", "procedure[0].blocks_effect"),
        ("months = 0", "procedure[0].blocks_effect.months"),
        ("days = 0", "procedure[0].blocks_effect.days"),
    ] {
        assert_eq!(refused("bad.toml", &with_step(bad)).1, path, "{bad}");
    }
}
