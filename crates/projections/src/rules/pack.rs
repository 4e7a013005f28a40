//! The rule-pack file format (one TOML file per pack), its parser and its validation.
//!
//! A pack is plain data: the Rust side holds no legal number. Every item that encodes law carries a
//! [`Confidence`] copied from domain-rules.md, so a reader can tell a verified statutory number from
//! a heuristic. Parsing refuses unknown fields and names the offending field path
//! (`thresholds[1].share`) in [`Error::RulePack`]. `rulepacks/README.md` documents the format.

use super::tomlpath;
use crate::Error;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use wfl_domain::{AiAttribution, ContractType, Date, EmploymentRelationship, EventType, Initiator};

/// How well an encoded item is backed (domain-rules.md confidence legend).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Confidence {
    /// ✅ statutory, regulatory or official text was seen.
    Verified,
    /// ◑ seen only in a secondary source, or a summary of a primary text.
    Secondary,
    /// ❓ not confirmed; recalled, inferred, or a heuristic the law does not state.
    Unconfirmed,
}

/// Whether the law a pack encodes is in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LawStatus {
    InForce,
    /// A draft (e.g. the CN 2014 draft provisions): evaluated for information only.
    DraftNotInForce,
}

/// The unit separations are grouped by and the headcount is measured over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// A single site of employment (US WARN).
    Site,
    /// An establishment: the unit the workers are assigned to (EU, DE, Cal-WARN); keyed by site id.
    Establishment,
    /// The legal entity, all sites together (CN).
    LegalEntity,
}

impl Unit {
    /// True when the unit is one site of the entity (site or establishment).
    #[must_use]
    pub fn is_site(self) -> bool {
        matches!(self, Unit::Site | Unit::Establishment)
    }

    /// The stable snake_case name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Site => "site",
            Unit::Establishment => "establishment",
            Unit::LegalEntity => "legal_entity",
        }
    }
}

/// One rule pack, as read from `rulepacks/<id>.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulePack {
    /// Stable id, also used as a NATS subject token: ASCII letters, digits, `-` and `_`.
    pub id: String,
    pub title: String,
    /// The statute as named in status labels (`PRC Labour Contract Law Art. 41`).
    pub statute: String,
    /// The pack's own version (e.g. the research date it was encoded from).
    pub version: String,
    pub status_of_law: LawStatus,
    /// Jurisdiction prefixes: `CN` matches events in `CN` and `CN-33`, not `CNX`.
    pub jurisdictions: Vec<String>,
    pub unit: Unit,
    pub unit_confidence: Confidence,
    #[serde(default)]
    pub unit_note: String,
    /// Employer-size test below which the law does not apply; `None`: no such test.
    #[serde(default)]
    pub coverage: Option<Coverage>,
    pub population: PopulationBasis,
    pub counts: Counts,
    /// Alternatives: the threshold is met when any one of them is.
    pub thresholds: Vec<Threshold>,
    pub windows: Vec<Window>,
    #[serde(default)]
    pub procedure: Vec<ProcedureStep>,
    /// Which date of a separation places it in a window and starts its procedure deadlines;
    /// absent: the effective date.
    #[serde(default)]
    pub count_date: Option<CountDateRule>,
    /// For a Directive pack: which Member States chose this variant; absent: every jurisdiction
    /// listed applies.
    #[serde(default)]
    pub member_states: Option<MemberStates>,
    pub sources: Vec<SourceRef>,
}

/// The date a separation is counted at.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum CountDate {
    /// The day the separation takes legal effect (the last day of employment).
    #[default]
    Effective,
    /// The day notice was given (`notice_given_on`), falling back to the effective date when the
    /// event names none (DE: the dismissal is the declaration of termination, C-188/03 Junk).
    Notice,
}

impl CountDate {
    /// The stable snake_case name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            CountDate::Effective => "effective",
            CountDate::Notice => "notice",
        }
    }
}

/// A pack's count date with the confidence of its source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountDateRule {
    pub basis: CountDate,
    pub confidence: Confidence,
    #[serde(default)]
    pub note: String,
}

/// The Member States a Directive variant applies to (each state transposed one variant, or a
/// stricter national rule).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberStates {
    /// States that chose this variant (ISO 3166-1 alpha-2).
    #[serde(default)]
    pub chose_this_variant: Vec<String>,
    /// States whose choice was not researched: evaluated under both variants, labelled so.
    #[serde(default)]
    pub choice_not_researched: Vec<String>,
    /// States with a national pack: this row is the Directive floor only (labelled `floor_only`).
    #[serde(default)]
    pub national_packs: Vec<NationalPack>,
    pub confidence: Confidence,
    #[serde(default)]
    pub note: String,
}

/// A Member State whose national law has its own pack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NationalPack {
    pub state: String,
    pub pack: String,
}

/// How a Directive pack applies to one Member State.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VariantChoice {
    /// Not a Directive pack, or the state chose this variant.
    Applies,
    /// The state's choice was not researched.
    NotResearched,
}

/// Whether the headcount of an employer-size test is the whole entity's or the unit's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CoverageScope {
    LegalEntity,
    Unit,
}

/// An employer-size test (US WARN: 100 employees excluding part-time).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Coverage {
    /// Covered when the headcount (population basis exclusions applied) is at least this.
    pub min_headcount: u64,
    pub scope: CoverageScope,
    /// Covered when the headcount reached `min_headcount` on any day of this many days up to the
    /// snapshot (Cal-WARN: 365, "employs or has employed in the preceding 12 months").
    #[serde(default)]
    pub look_back_days: Option<u32>,
    /// Only workers at sites in this jurisdiction count (NY WARN: `US-NY`, employees in the state).
    #[serde(default)]
    pub within_jurisdiction: Option<String>,
    /// The test counts every person employed, part-time and short-tenure workers too: the
    /// basis's contract-type exclusions and its hours and months limbs do not apply to it
    /// (Cal-WARN: 75 "persons", full- and part-time). Relationship exclusions still apply.
    #[serde(default)]
    pub every_person: bool,
    pub confidence: Confidence,
    #[serde(default)]
    pub note: String,
}

/// Who is counted, in the denominator and in the numerator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PopulationBasis {
    /// Not the employer's staff (CN: dispatched workers and contractors). Separations of these
    /// workers are not counted either.
    #[serde(default)]
    pub exclude_relationships: Vec<EmploymentRelationship>,
    /// Contract types outside the basis (US WARN: part-time), excluded from both sides.
    #[serde(default)]
    pub exclude_contract_types: Vec<ContractType>,
    /// Workers averaging fewer than this many hours a week are outside the basis, on both sides
    /// (US WARN part-time: 20).
    #[serde(default)]
    pub part_time_below_weekly_hours: Option<u32>,
    /// Workers employed fewer than this many of the last 12 months are outside the basis, on
    /// both sides (US WARN part-time: 6).
    #[serde(default)]
    pub part_time_below_months_of_12: Option<u32>,
    /// Said of every worker left out by the basis (e.g. that they are still owed notice).
    #[serde(default)]
    pub exclusion_note: String,
    /// Workers left out as part-time (contract type, hours or months) who would otherwise count
    /// are still owed notice: each row lists them in `notice_only` (US WARN).
    #[serde(default)]
    pub part_time_owed_notice: Option<Sourced>,
    /// The headcount is taken at the end of the day this many days before the window's first
    /// counted separation (1: the day before; US WARN: the date the first notice is required).
    pub days_before_first_separation: i64,
    /// More than 1: the mean of this many snapshots, `sample_step_days` apart, going back from
    /// that day ("normally employed").
    #[serde(default = "one")]
    pub average_samples: i64,
    #[serde(default)]
    pub sample_step_days: i64,
    pub confidence: Confidence,
    #[serde(default)]
    pub note: String,
}

fn one() -> i64 {
    1
}

/// The counting rules. Count types nest: assimilated = strict + assimilated rules (after the gate);
/// shadow = strict + assimilated rules (ungated) + shadow rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Counts {
    /// Separations the statute itself counts.
    #[serde(default)]
    pub strict: Vec<MatchRule>,
    /// Separations that are dismissals in substance (analytic unless the law says otherwise).
    #[serde(default)]
    pub assimilated: Vec<MatchRule>,
    /// Further economic reductions (not a legal count).
    #[serde(default)]
    pub shadow: Vec<MatchRule>,
    /// Never in the strict or assimilated count, whatever else matches (the shadow count ignores it).
    #[serde(default)]
    pub exclude: Vec<MatchRule>,
    /// Assimilated terminations count only once there are this many strict ones (EU: five).
    #[serde(default)]
    pub assimilated_gate: Option<Gate>,
}

/// The minimum strict count before assimilated terminations are added.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gate {
    pub min_strict: u64,
    pub confidence: Confidence,
    #[serde(default)]
    pub note: String,
}

/// One counting rule: a separation matches when every condition given holds. A rule with no
/// condition is refused, since it would match everything.
///
/// Conditions on the separation block (`legal_ground_prefixes`, `initiators`, `reason_personal`,
/// `ai_attributed`, `contract_types`) fail for payloads without one (`TemporaryLayoff`,
/// `HoursReduced`). Payload flags (`employee_refused`, `pressured`) read as false on payloads that
/// do not carry them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchRule {
    pub name: String,
    #[serde(default)]
    pub event_types: Vec<EventType>,
    /// Segment prefixes: `CN-LCL-41` matches `CN-LCL-41` and `CN-LCL-41-3`, not `CN-LCL-410`.
    #[serde(default)]
    pub legal_ground_prefixes: Vec<String>,
    #[serde(default)]
    pub initiators: Vec<Initiator>,
    #[serde(default)]
    pub reason_personal: Option<bool>,
    /// The position is closed (after `PositionClosed` links).
    #[serde(default)]
    pub position_closed: Option<bool>,
    /// The position was back-filled (after `PositionBackfilled` links).
    #[serde(default)]
    pub backfilled: Option<bool>,
    /// `ContractNotRenewed.employee_refused`.
    #[serde(default)]
    pub employee_refused: Option<bool>,
    /// `Resignation.pressured`.
    #[serde(default)]
    pub pressured: Option<bool>,
    /// `DismissalForCause.summary`: dismissed without notice (DE §17(4) s.2: not counted).
    #[serde(default)]
    pub summary: Option<bool>,
    #[serde(default)]
    pub ai_attributed: Vec<AiAttribution>,
    #[serde(default)]
    pub contract_types: Vec<ContractType>,
    /// The contract's agreed end is known and the separation takes effect before it (true);
    /// false: at or after it, or no end known (Directive 98/59/EC Art. 1(2)(a): an expiry is not
    /// counted, an end "before the expiry" is). The end is the separation's `contract_end`, else
    /// the one the population knows from the hire and its renewals (`WorkerProfile`).
    #[serde(default)]
    pub before_contract_end: Option<bool>,
    /// `TemporaryLayoff` expected to last more than this many days.
    #[serde(default)]
    pub layoff_days_over: Option<u64>,
    /// `HoursReduced` by more than this percentage...
    #[serde(default)]
    pub hours_cut_pct_over: Option<u64>,
    /// ...for at least this many months.
    #[serde(default)]
    pub hours_cut_months_at_least: Option<u64>,
    pub confidence: Confidence,
    #[serde(default)]
    pub note: String,
}

impl MatchRule {
    fn has_condition(&self) -> bool {
        !self.event_types.is_empty()
            || !self.legal_ground_prefixes.is_empty()
            || !self.initiators.is_empty()
            || self.reason_personal.is_some()
            || self.position_closed.is_some()
            || self.backfilled.is_some()
            || self.employee_refused.is_some()
            || self.pressured.is_some()
            || self.summary.is_some()
            || self.before_contract_end.is_some()
            || !self.ai_attributed.is_empty()
            || !self.contract_types.is_empty()
            || self.layoff_days_over.is_some()
            || self.hours_cut_pct_over.is_some()
            || self.hours_cut_months_at_least.is_some()
    }
}

/// One alternative of a threshold. Its conditions (count, share) must all hold; a headcount band
/// restricts it to units of that size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Threshold {
    pub name: String,
    #[serde(default)]
    pub count: Option<u64>,
    /// Share of the headcount basis, in (0, 1]; compared exactly to six decimal places.
    #[serde(default)]
    pub share: Option<f64>,
    /// True where the law says "or more" (≥); false where it says "more than" (>).
    pub inclusive: bool,
    /// The alternative applies only where the unit closed or moved away (WARN plant closing,
    /// NY and Cal-WARN relocation): a `SiteClosed` / `SiteRelocated` of the unit near the window.
    #[serde(default)]
    pub site_event: Option<SiteEventRule>,
    /// Band bounds, both inclusive; absent: unbounded.
    #[serde(default)]
    pub headcount_min: Option<u64>,
    #[serde(default)]
    pub headcount_max: Option<u64>,
    pub confidence: Confidence,
    #[serde(default)]
    pub note: String,
}

/// Which site event a threshold alternative needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SiteEventKind {
    /// `SiteClosed`: the site, or a facility or operating unit within it, shut down.
    Closed,
    /// `SiteRelocated`: the operations moved away.
    Relocated,
}

impl SiteEventKind {
    /// The stable snake_case name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            SiteEventKind::Closed => "closed",
            SiteEventKind::Relocated => "relocated",
        }
    }
}

/// A threshold alternative's site-event condition: a site event of the unit dated from the
/// window's start to `days_after_window` days after its end (losses come at and before a
/// closing; the ledger links them by date, not by cause).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteEventRule {
    pub kind: SiteEventKind,
    /// Relocations: at least this far, in kilometres (NY: 50 miles; Cal-WARN: 100 miles).
    #[serde(default)]
    pub min_distance_km: Option<u32>,
    pub days_after_window: i64,
    pub confidence: Confidence,
    #[serde(default)]
    pub note: String,
}

/// A pack rule with no parameters but a source: its confidence and a note.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sourced {
    pub confidence: Confidence,
    #[serde(default)]
    pub note: String,
}

/// A waiting period after a procedure step before the dismissals may take effect (§18(1) KSchG:
/// one month after the notification reaches the employment agency; Directive 98/59/EC Art. 4(1):
/// 30 days). Exactly one of `months` and `days`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EffectBlock {
    #[serde(default)]
    pub months: Option<u32>,
    #[serde(default)]
    pub days: Option<i64>,
    pub confidence: Confidence,
    #[serde(default)]
    pub note: String,
}

impl EffectBlock {
    /// The first day a dismissal may take effect after a step dated `step`: the same day number
    /// `months` later (the month's last day where it has none), or `days` later.
    #[must_use]
    pub fn earliest_effective(&self, step: Date) -> Date {
        match (self.months, self.days) {
            (Some(m), _) => step.add_months(m),
            (None, Some(d)) => step.add_days(i32::try_from(d).unwrap_or(0)),
            (None, None) => step,
        }
    }
}

/// How separations are grouped into windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowKind {
    /// Any `days` consecutive days; the window with the most weight is reported (C-300/19).
    Rolling,
    /// All separations sharing a `correlation_id` (restructuring plan), whatever their dates.
    Correlation,
}

/// One window specification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    /// Reported in [`super::ThresholdStatus::window`].
    pub name: String,
    pub kind: WindowKind,
    /// Length, for rolling windows (at least 1).
    #[serde(default)]
    pub days: Option<i64>,
    /// Planned (future-dated) separations up to this many days after `as_of` count; 0: none.
    #[serde(default)]
    pub look_ahead_days: i64,
    /// How well counting planned separations is backed; required when `look_ahead_days` > 0.
    #[serde(default)]
    pub look_ahead_confidence: Option<Confidence>,
    /// Not a statutory window (labelled as such).
    #[serde(default)]
    pub heuristic: bool,
    pub confidence: Confidence,
    #[serde(default)]
    pub note: String,
}

/// A procedure step that must precede the first separation of a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcedureStep {
    pub name: String,
    /// `UnionBriefed`, `AuthorityReported` or `WarnNoticeFiled`.
    pub event_type: EventType,
    /// The step's effective date must be at least this many days before the first separation.
    pub min_lead_days: i64,
    /// Dismissals take effect no earlier than this after the step.
    #[serde(default)]
    pub blocks_effect: Option<EffectBlock>,
    pub confidence: Confidence,
    #[serde(default)]
    pub note: String,
}

/// A source the pack was encoded from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceRef {
    pub cite: String,
    pub confidence: Confidence,
    #[serde(default)]
    pub note: String,
}

impl RulePack {
    /// Whether the pack covers an event in `jurisdiction` (segment prefix: `CN` matches `CN-33`),
    /// and, for a Directive pack, whether the Member State chose this variant.
    #[must_use]
    pub fn applies_to(&self, jurisdiction: &str) -> bool {
        self.variant_choice(jurisdiction).is_some()
    }

    /// How the pack applies in `jurisdiction`; `None`: it does not.
    #[must_use]
    pub fn variant_choice(&self, jurisdiction: &str) -> Option<VariantChoice> {
        if !self
            .jurisdictions
            .iter()
            .any(|j| segment_prefix(j, jurisdiction))
        {
            return None;
        }
        let Some(m) = &self.member_states else {
            return Some(VariantChoice::Applies);
        };
        let within = |list: &[String]| list.iter().any(|j| segment_prefix(j, jurisdiction));
        if within(&m.chose_this_variant) {
            Some(VariantChoice::Applies)
        } else if within(&m.choice_not_researched) {
            Some(VariantChoice::NotResearched)
        } else {
            None
        }
    }

    /// The national pack that holds the Member State's own rule, where this pack is only the
    /// Directive floor for `jurisdiction`.
    #[must_use]
    pub fn national_pack(&self, jurisdiction: &str) -> Option<&str> {
        self.member_states.as_ref().and_then(|m| {
            m.national_packs
                .iter()
                .find(|n| segment_prefix(&n.state, jurisdiction))
                .map(|n| n.pack.as_str())
        })
    }

    /// The date separations are counted at.
    #[must_use]
    pub fn count_date(&self) -> CountDate {
        self.count_date
            .as_ref()
            .map_or(CountDate::Effective, |c| c.basis)
    }
}

/// `prefix` equals `code` or is followed in it by `-`.
pub(crate) fn segment_prefix(prefix: &str, code: &str) -> bool {
    code.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('-'))
}

/// Event types a counting rule may name: payloads that end employment, plus the two WARN also
/// counts as employment losses (long temporary layoffs, deep hours cuts).
pub(crate) fn countable(t: EventType) -> bool {
    wfl_domain::lifecycle::is_separation(t)
        || matches!(t, EventType::TemporaryLayoff | EventType::HoursReduced)
}

fn compliance_kind(t: EventType) -> bool {
    matches!(
        t,
        EventType::UnionBriefed | EventType::AuthorityReported | EventType::WarnNoticeFiled
    )
}

/// Parses and validates one pack; `file_name` only names the file in errors.
///
/// # Errors
/// [`Error::RulePack`] naming `file_name` and the field path when the text is not TOML, a field is
/// unknown, missing or of the wrong type, or a value is out of range (see [`load_dir`]).
pub fn parse(file_name: &str, text: &str) -> Result<RulePack, Error> {
    let pack: RulePack = toml::from_str(text).map_err(|e| {
        // Some syntax errors carry no message of their own (found by tests/fuzz_rulepack.rs);
        // the full report then says where the text stopped being TOML.
        let full = e.to_string();
        let message = if e.message().trim().is_empty() {
            full.as_str()
        } else {
            e.message()
        };
        let (field, message) = tomlpath::describe(text, message, e.span());
        Error::RulePack {
            file: file_name.to_owned(),
            field,
            message,
        }
    })?;
    validate(&pack).map_err(|(field, message)| Error::RulePack {
        file: file_name.to_owned(),
        field,
        message,
    })?;
    Ok(pack)
}

/// Reads every `*.toml` file of `path`, sorted by file name, and validates each.
///
/// Validation refuses, besides TOML and type errors and unknown fields: an empty or malformed id,
/// no jurisdictions, a threshold list with no alternative or an alternative with neither count nor
/// share, a share outside (0, 1], an empty headcount band, a window with a negative or missing
/// length, a negative look-ahead or lead time, a counting rule with no condition or naming an event
/// type that separates nobody, a procedure step that is not a compliance event, and the same id in
/// two files. A directory with no pack gives an empty list.
///
/// # Errors
/// [`Error::Io`] when the directory or a file cannot be read; [`Error::RulePack`] naming the file
/// and the field path for the first invalid pack.
pub fn load_dir(path: &Path) -> Result<Vec<RulePack>, Error> {
    let io = |p: &Path, e: std::io::Error| Error::Io {
        path: p.display().to_string(),
        message: e.to_string(),
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).map_err(|e| io(path, e))? {
        let entry = entry.map_err(|e| io(path, e))?;
        let p = entry.path();
        if p.extension().is_some_and(|x| x == "toml") && p.is_file() {
            files.push(p);
        }
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    let mut packs = Vec::with_capacity(files.len());
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(|e| io(&file, e))?;
        let name = file.display().to_string();
        let pack = parse(&name, &text)?;
        if let Some(first) = seen.insert(pack.id.clone(), name.clone()) {
            return Err(Error::RulePack {
                file: name,
                field: "id".into(),
                message: format!("duplicate id {:?}, also defined in {first}", pack.id),
            });
        }
        packs.push(pack);
    }
    Ok(packs)
}

type Invalid = (String, String);

/// Sanity bound on every day count in a pack (a century); not a legal number.
const MAX_DAYS: i64 = 36_500;

fn days_in_range(field: String, value: i64, min: i64) -> Result<(), Invalid> {
    if value < min {
        let message = if min == 0 {
            format!("must not be negative, got {value}")
        } else {
            format!("must be at least {min}, got {value}")
        };
        return Err((field, message));
    }
    if value > MAX_DAYS {
        return Err((
            field,
            format!("must be at most {MAX_DAYS} days, got {value}"),
        ));
    }
    Ok(())
}

fn bad(field: impl Into<String>, message: impl Into<String>) -> Invalid {
    (field.into(), message.into())
}

fn validate(p: &RulePack) -> Result<(), Invalid> {
    if p.id.is_empty()
        || !p
            .id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(bad(
            "id",
            "must be non-empty ASCII letters, digits, '-' or '_'",
        ));
    }
    if p.statute.trim().is_empty() {
        return Err(bad("statute", "must not be empty"));
    }
    if p.jurisdictions.is_empty() {
        return Err(bad("jurisdictions", "must list at least one jurisdiction"));
    }
    for (i, j) in p.jurisdictions.iter().enumerate() {
        if j.is_empty()
            || !j
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(bad(
                format!("jurisdictions[{i}]"),
                format!("{j:?} is not an ISO 3166 code or prefix (e.g. CN, US-CA)"),
            ));
        }
    }
    validate_population(&p.population)?;
    if let Some(c) = &p.coverage {
        if let Some(d) = c.look_back_days {
            days_in_range("coverage.look_back_days".into(), i64::from(d), 1)?;
        }
        if let Some(j) = &c.within_jurisdiction {
            if !p.jurisdictions.iter().any(|k| segment_prefix(k, j)) {
                return Err(bad(
                    "coverage.within_jurisdiction",
                    format!("{j:?} is not within the pack's jurisdictions"),
                ));
            }
        }
    }
    validate_counts(&p.counts)?;
    if p.thresholds.is_empty() {
        return Err(bad("thresholds", "must list at least one alternative"));
    }
    for (i, t) in p.thresholds.iter().enumerate() {
        validate_threshold(&format!("thresholds[{i}]"), t)?;
    }
    if p.windows.is_empty() {
        return Err(bad("windows", "must list at least one window"));
    }
    for (i, w) in p.windows.iter().enumerate() {
        let at = format!("windows[{i}]");
        match (w.kind, w.days) {
            (WindowKind::Rolling, None) => {
                return Err(bad(format!("{at}.days"), "a rolling window needs a length"))
            }
            (WindowKind::Rolling, Some(d)) => days_in_range(format!("{at}.days"), d, 1)?,
            (WindowKind::Correlation, Some(_)) => {
                return Err(bad(
                    format!("{at}.days"),
                    "a correlation window has no length",
                ))
            }
            _ => {}
        }
        days_in_range(format!("{at}.look_ahead_days"), w.look_ahead_days, 0)?;
        if w.look_ahead_days > 0 && w.look_ahead_confidence.is_none() {
            return Err(bad(
                format!("{at}.look_ahead_confidence"),
                "state how well counting planned separations is backed",
            ));
        }
    }
    for (i, s) in p.procedure.iter().enumerate() {
        let at = format!("procedure[{i}]");
        if !compliance_kind(s.event_type) {
            return Err(bad(
                format!("{at}.event_type"),
                format!(
                    "{} is not a compliance step (UnionBriefed, AuthorityReported, WarnNoticeFiled)",
                    s.event_type
                ),
            ));
        }
        days_in_range(format!("{at}.min_lead_days"), s.min_lead_days, 0)?;
        if let Some(b) = &s.blocks_effect {
            match (b.months, b.days) {
                (Some(m), None) if (1..=120).contains(&m) => {}
                (None, Some(d)) => days_in_range(format!("{at}.blocks_effect.days"), d, 1)?,
                (Some(_), None) => {
                    return Err(bad(
                        format!("{at}.blocks_effect.months"),
                        "must be between 1 and 120",
                    ))
                }
                _ => {
                    return Err(bad(
                        format!("{at}.blocks_effect"),
                        "give exactly one of months and days",
                    ))
                }
            }
        }
    }
    if let Some(m) = &p.member_states {
        let lists = [
            ("chose_this_variant", &m.chose_this_variant),
            ("choice_not_researched", &m.choice_not_researched),
        ];
        for (name, list) in lists {
            for (i, state) in list.iter().enumerate() {
                if !p.jurisdictions.iter().any(|j| segment_prefix(j, state)) {
                    return Err(bad(
                        format!("member_states.{name}[{i}]"),
                        format!("{state:?} is not among the pack's jurisdictions"),
                    ));
                }
            }
        }
        if let Some(s) = m
            .chose_this_variant
            .iter()
            .find(|s| m.choice_not_researched.contains(s))
        {
            return Err(bad(
                "member_states.choice_not_researched",
                format!("{s:?} is also listed as having chosen this variant"),
            ));
        }
    }
    if p.sources.is_empty() {
        return Err(bad("sources", "must cite at least one source"));
    }
    Ok(())
}

fn validate_population(b: &PopulationBasis) -> Result<(), Invalid> {
    if b.part_time_below_weekly_hours
        .is_some_and(|h| h == 0 || h > 168)
    {
        return Err(bad(
            "population.part_time_below_weekly_hours",
            "must be between 1 and 168",
        ));
    }
    if b.part_time_below_months_of_12
        .is_some_and(|m| m == 0 || m > 12)
    {
        return Err(bad(
            "population.part_time_below_months_of_12",
            "must be between 1 and 12",
        ));
    }
    days_in_range(
        "population.days_before_first_separation".into(),
        b.days_before_first_separation,
        0,
    )?;
    if !(1..=1000).contains(&b.average_samples) {
        return Err(bad(
            "population.average_samples",
            format!("must be between 1 and 1000, got {}", b.average_samples),
        ));
    }
    let min_step = i64::from(b.average_samples > 1);
    days_in_range(
        "population.sample_step_days".into(),
        b.sample_step_days,
        min_step,
    )?;
    Ok(())
}

fn validate_counts(c: &Counts) -> Result<(), Invalid> {
    if c.strict.is_empty() && c.assimilated.is_empty() && c.shadow.is_empty() {
        return Err(bad("counts", "must define at least one counting rule"));
    }
    for (kind, rules) in [
        ("strict", &c.strict),
        ("assimilated", &c.assimilated),
        ("shadow", &c.shadow),
        ("exclude", &c.exclude),
    ] {
        for (i, r) in rules.iter().enumerate() {
            let at = format!("counts.{kind}[{i}]");
            if !r.has_condition() {
                return Err(bad(
                    at,
                    "a rule with no condition would match every separation",
                ));
            }
            if let Some(t) = r.event_types.iter().find(|t| !countable(**t)) {
                return Err(bad(
                    format!("{at}.event_types"),
                    format!("{t} does not separate anyone and cannot be counted"),
                ));
            }
            if r.legal_ground_prefixes.iter().any(String::is_empty) {
                return Err(bad(
                    format!("{at}.legal_ground_prefixes"),
                    "an empty prefix would match every legal ground",
                ));
            }
        }
    }
    if let Some(g) = &c.assimilated_gate {
        if g.min_strict == 0 {
            return Err(bad(
                "counts.assimilated_gate.min_strict",
                "must be at least 1 (omit the gate for none)",
            ));
        }
    }
    Ok(())
}

fn validate_threshold(at: &str, t: &Threshold) -> Result<(), Invalid> {
    if t.count.is_none() && t.share.is_none() {
        return Err(bad(at, "an alternative needs a count, a share, or both"));
    }
    if let Some(s) = t.share {
        if !s.is_finite() || s <= 0.0 || s > 1.0 {
            return Err(bad(
                format!("{at}.share"),
                format!("must be a fraction in (0, 1], got {s}"),
            ));
        }
    }
    if t.inclusive && t.count == Some(0) && t.share.is_none() {
        return Err(bad(
            format!("{at}.count"),
            "0 or more is always met; use a positive count",
        ));
    }
    if let Some(e) = &t.site_event {
        days_in_range(
            format!("{at}.site_event.days_after_window"),
            e.days_after_window,
            0,
        )?;
        if e.min_distance_km.is_some() && e.kind != SiteEventKind::Relocated {
            return Err(bad(
                format!("{at}.site_event.min_distance_km"),
                "only a relocation has a distance",
            ));
        }
    }
    if let (Some(lo), Some(hi)) = (t.headcount_min, t.headcount_max) {
        if lo > hi {
            return Err(bad(
                format!("{at}.headcount_min"),
                format!("band is empty: headcount_min {lo} > headcount_max {hi}"),
            ));
        }
    }
    Ok(())
}
