//! Stateless validation of one event: required fields, identifier syntax, string lengths, dates
//! and cross-field rules. It reports every violation at once, each naming the field path as it is
//! spelled in the protobuf API (`payload.resignation.separation.worker_ref`), so a client can fix
//! its input in one round trip.
//!
//! Checks that need the ledger's state (is this worker employed?) live in [`crate::lifecycle`].

use crate::date::Date;
use crate::event::{
    ComplianceStep, Event, EventType, GraduateIntake, OfferTerms, Payload, PositionChange,
    Separation,
};
use crate::ids::WorkerRef;
use crate::SCHEMA_VERSION;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest free-text field (reasons, references, scopes).
pub const MAX_TEXT: usize = 256;
/// Longest identifier (org, site, worker, position, plan).
pub const MAX_ID: usize = 64;

/// One thing wrong with one field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldViolation {
    /// Path of the field in the API, dot-separated.
    pub field: String,
    /// What is wrong and what is expected.
    pub description: String,
}

/// Every violation found in one event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violations(pub Vec<FieldViolation>);

impl Violations {
    /// Records a violation of `field`.
    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(FieldViolation {
            field: field.into(),
            description: description.into(),
        });
    }

    /// True when nothing was found.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(())` when empty, the violations otherwise.
    ///
    /// # Errors
    /// When at least one violation was recorded.
    pub fn into_result(self) -> Result<(), Violations> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self)
        }
    }
}

impl fmt::Display for Violations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", v.field, v.description)?;
        }
        Ok(())
    }
}

impl std::error::Error for Violations {}

/// A field's path, spelled out only when a violation names it: a valid event builds no path
/// string. Shared with `wfl-proto`'s wire checks so both name fields alike; not a stable API.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub enum Field<'a> {
    /// A top-level name, or a dotted path written out (`source.system`).
    Top(&'a str),
    /// `parent.name`.
    In(&'a Field<'a>, &'a str),
    /// `parent[index]`.
    At(&'a Field<'a>, usize),
}

impl<'a> Field<'a> {
    /// The field `name` inside this one.
    #[must_use]
    pub fn child(&'a self, name: &'a str) -> Field<'a> {
        Field::In(self, name)
    }

    /// The list item `index` of this field.
    #[must_use]
    pub fn item(&'a self, index: usize) -> Field<'a> {
        Field::At(self, index)
    }
}

impl fmt::Display for Field<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Field::Top(name) => f.write_str(name),
            Field::In(parent, name) => {
                parent.fmt(f)?;
                f.write_str(".")?;
                f.write_str(name)
            }
            Field::At(parent, index) => write!(f, "{parent}[{index}]"),
        }
    }
}

/// Validates one event without looking at any state.
///
/// # Errors
/// Every field violation found, with its path.
pub fn validate(event: &Event) -> Result<(), Violations> {
    validate_with(event, &Limits::SCHEMA)
}

/// The free-text limit a deployment applies: at most the schema's [`MAX_TEXT`], tighter when an
/// operator asks for it (a gateway's `--max-text-chars`). Identifiers keep the schema's
/// [`MAX_ID`]: they are keys in the ledger and views.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest free-text field, in characters (reasons, references, scopes, correlation ids).
    pub text: usize,
}

impl Limits {
    /// The schema's own limits: what the ledger and every auditor accept.
    pub const SCHEMA: Limits = Limits { text: MAX_TEXT };

    /// Limits with free text capped at `text` characters (clamped to `1..=MAX_TEXT`).
    #[must_use]
    pub fn with_text(text: usize) -> Limits {
        Limits {
            text: text.clamp(1, MAX_TEXT),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::SCHEMA
    }
}

/// Validates one event under `limits` (see [`validate`]).
///
/// # Errors
/// Every field violation found, with its path.
pub fn validate_with(event: &Event, limits: &Limits) -> Result<(), Violations> {
    let mut v = Check {
        found: Violations::default(),
        text_max: limits.text.min(MAX_TEXT),
    };
    if event.event_id.0.is_nil() {
        v.add(
            Field::Top("event_id"),
            "must be a non-nil UUID (v7 recommended)",
        );
    }
    token(&mut v, Field::Top("org_id"), event.org_id.as_str(), false);
    token(&mut v, Field::Top("site_id"), event.site_id.as_str(), true);
    if !is_jurisdiction(&event.jurisdiction) {
        v.add(Field::Top("jurisdiction"), "must be ISO 3166: two capital letters, optionally '-' and a 1-3 character subdivision (CN, CN-33, US-CA, DE)");
    }
    required_text(
        &mut v,
        Field::Top("source.system"),
        &event.source.system,
        Len::Id,
    );
    text(
        &mut v,
        Field::Top("source.reference"),
        &event.source.reference,
        Len::Text,
    );
    if let Some(c) = &event.correlation_id {
        required_text(&mut v, Field::Top("correlation_id"), c, Len::Text);
    }
    if let Some(c) = &event.causation_id {
        required_text(&mut v, Field::Top("causation_id"), c, Len::Text);
    }
    if event.schema_version != SCHEMA_VERSION {
        v.add(
            Field::Top("schema_version"),
            format!(
                "unsupported schema version {}; this ledger accepts {SCHEMA_VERSION}",
                event.schema_version
            ),
        );
    }
    if event.expected_version.is_some() && event.payload.worker_effect().is_none() {
        v.add(
            Field::Top("expected_version"),
            format!(
                "only events that name a worker have a version; {} does not",
                event.event_type()
            ),
        );
    }
    let top = Field::Top("payload");
    payload(
        &mut v,
        top.child(event.event_type().field_name()),
        &event.payload,
        event,
    );
    v.found.into_result()
}

/// Which length limit a text field has.
#[derive(Clone, Copy)]
enum Len {
    /// An identifier: [`MAX_ID`].
    Id,
    /// Free text: the deployment's [`Limits::text`].
    Text,
}

/// The violations found so far, and the limits they are checked against.
struct Check {
    found: Violations,
    text_max: usize,
}

impl Check {
    /// Records a violation; the only place a path is spelled out.
    fn add(&mut self, field: Field<'_>, description: impl Into<String>) {
        self.found.add(field.to_string(), description);
    }
}

fn payload(v: &mut Check, p: Field<'_>, body: &Payload, event: &Event) {
    match body {
        Payload::WorkerHired(h) => {
            worker(v, p.child("worker_ref"), &h.worker_ref);
            opt_id(v, p.child("position_id"), h.position_id.as_deref());
            hours_and_months(v, p, h.avg_weekly_hours, h.months_employed_last_12);
            contract_end(v, p, h.contract_type, h.contract_end);
            if let Some(end) = h.contract_end.filter(|_| !h.baseline) {
                if end < event.effective_date {
                    v.add(
                        p.child("contract_end"),
                        "must not be before the hire's effective_date",
                    );
                }
            }
        }
        Payload::ContractRenewed(r) => {
            worker(v, p.child("worker_ref"), &r.worker_ref);
            if let Some(end) = r.new_contract_end {
                if end <= event.effective_date {
                    v.add(p.child("new_contract_end"), "must be after effective_date");
                }
            }
        }
        Payload::GraduateIntakeSet(g) | Payload::GraduateIntakeReduced(g) => graduate(v, p, g),
        Payload::HiringPaused(h) => {
            required_text(v, p.child("scope"), &h.scope, Len::Text);
            if let Some(until) = h.until {
                if until < event.effective_date {
                    v.add(p.child("until"), "must not be before effective_date");
                }
            }
        }
        Payload::HiringResumed(h) => required_text(v, p.child("scope"), &h.scope, Len::Text),
        Payload::PositionBackfilled(c) | Payload::PositionClosed(c) => position(v, p, c, event),
        Payload::ContractNotRenewed(c) => {
            separation(v, p.child("separation"), &c.separation);
            if c.employee_refused && !c.renewal_offered {
                v.add(
                    p.child("employee_refused"),
                    "the employee can only refuse a renewal that was offered (set renewal_offered)",
                );
            }
            // `no_offer` is how a client says no renewal was offered, so it goes with
            // renewal_offered = false; terms of an offer need an offer.
            if matches!(
                c.offer_terms,
                Some(OfferTerms::SameOrBetter | OfferTerms::Worse)
            ) && !c.renewal_offered
            {
                v.add(
                    p.child("offer_terms"),
                    "same_or_better or worse terms need renewal_offered = true",
                );
            }
        }
        Payload::EconomicDismissal(d) => {
            separation(v, p.child("separation"), &d.separation);
            opt_text(
                v,
                p.child("selection_criteria"),
                d.selection_criteria.as_deref(),
                Len::Text,
            );
            opt_id(v, p.child("plan_id"), d.plan_id.as_deref());
        }
        Payload::RoleAutomated(r) => {
            required_text(v, p.child("role_id"), &r.role_id, Len::Id);
            required_text(v, p.child("ai_system"), &r.ai_system, Len::Text);
            if let Some(s) = &r.separation {
                separation(v, p.child("separation"), s);
            }
        }
        Payload::MutualTerminationEmployerProposed(m) => {
            separation(v, p.child("separation"), &m.separation);
            if let Some(money) = &m.package {
                money_field(v, p.child("package"), money);
            }
        }
        Payload::AdverseChangeRefusedExit(a) => {
            separation(v, p.child("separation"), &a.separation);
            if a.change_magnitude_pct.is_some_and(|m| m > 100) {
                v.add(p.child("change_magnitude_pct"), "must be between 0 and 100");
            }
        }
        Payload::Resignation(r) => separation(v, p.child("separation"), &r.separation),
        Payload::DeathOrDisability(d) => separation(v, p.child("separation"), &d.separation),
        Payload::Retirement(r) => separation(v, p.child("separation"), &r.separation),
        Payload::DismissalForCause(d) => {
            separation(v, p.child("separation"), &d.separation);
            required_text(v, p.child("cause_code"), &d.cause_code, Len::Id);
        }
        Payload::ContractorReleased(a) | Payload::DispatchedWorkerReturned(a) => {
            separation(v, p.child("separation"), &a.separation);
            opt_id(v, p.child("agency_id"), a.agency_id.as_deref());
            opt_id(v, p.child("ground"), a.ground.as_deref());
        }
        Payload::TemporaryLayoff(t) => {
            worker(v, p.child("worker_ref"), &t.worker_ref);
            if t.expected_duration_days == 0 {
                v.add(p.child("expected_duration_days"), "must be at least 1");
            }
        }
        Payload::HoursReduced(h) => {
            worker(v, p.child("worker_ref"), &h.worker_ref);
            if h.hours_before > 168 {
                v.add(p.child("hours_before"), "must be at most 168 hours a week");
            }
            if h.hours_after >= h.hours_before {
                v.add(p.child("hours_after"), "must be less than hours_before");
            }
        }
        Payload::SiteClosed(c) => {
            opt_id(v, p.child("operating_unit"), c.operating_unit.as_deref());
        }
        Payload::SiteRelocated(r) => {
            if r.distance_km == 0 {
                v.add(
                    p.child("distance_km"),
                    "must be at least 1 (a relocation moves the operations away)",
                );
            }
            if let Some(s) = &r.to_site {
                token(v, p.child("to_site"), s.as_str(), true);
                if s == &event.site_id {
                    v.add(
                        p.child("to_site"),
                        "must differ from the event's site_id (the site the operations leave)",
                    );
                }
            }
        }
        Payload::RestructuringPlanAnnounced(r) => {
            required_text(v, p.child("plan_id"), &r.plan_id, Len::Id);
            list(v, p.child("stated_grounds"), &r.stated_grounds);
            list(v, p.child("units"), &r.units);
        }
        Payload::UnionBriefed(c) | Payload::AuthorityReported(c) | Payload::WarnNoticeFiled(c) => {
            compliance(v, p, c);
        }
        Payload::InternalRedeployment(r) => {
            worker(v, p.child("worker_ref"), &r.worker_ref);
            required_text(v, p.child("to_position"), &r.to_position, Len::Id);
            opt_id(v, p.child("from_position"), r.from_position.as_deref());
            if let Some(s) = &r.from_site {
                token(v, p.child("from_site"), s.as_str(), true);
            }
            if let Some(s) = &r.to_site {
                token(v, p.child("to_site"), s.as_str(), true);
            }
            if r.pay_change_pct
                .is_some_and(|c| !(-100..=1000).contains(&c))
            {
                v.add(p.child("pay_change_pct"), "must be between -100 and 1000");
            }
        }
        Payload::AiToolRolledOut(a) => {
            required_text(v, p.child("tool"), &a.tool, Len::Text);
            required_text(v, p.child("scope"), &a.scope, Len::Text);
        }
        Payload::AiUsageMeasured(a) => {
            required_text(v, p.child("scope"), &a.scope, Len::Text);
            if a.period_end < a.period_start {
                v.add(p.child("period_end"), "must not be before period_start");
            }
            if let Some(pop) = a.population {
                if pop == 0 {
                    v.add(p.child("population"), "must be at least 1 when given");
                } else if a.metric == crate::event::AiMetric::ActiveUsers && a.value > pop {
                    v.add(
                        p.child("value"),
                        "active users cannot exceed the population",
                    );
                }
            }
        }
        Payload::EventCorrected(c) => {
            if c.original_event_id.0.is_nil() {
                v.add(p.child("original_event_id"), "must be a non-nil UUID");
            }
            if c.original_event_id == event.event_id {
                v.add(
                    p.child("original_event_id"),
                    "an event cannot correct itself",
                );
            }
            required_text(v, p.child("reason"), &c.reason, Len::Text);
            let rt = c.replacement.event_type();
            if matches!(rt, EventType::EventCorrected | EventType::EventRetracted) {
                v.add(
                    p.child("replacement"),
                    "a correction cannot replace with another correction or retraction",
                );
            } else {
                payload(
                    v,
                    p.child("replacement").child(rt.field_name()),
                    &c.replacement,
                    event,
                );
            }
        }
        Payload::EventRetracted(r) => {
            if r.original_event_id.0.is_nil() {
                v.add(p.child("original_event_id"), "must be a non-nil UUID");
            }
            if r.original_event_id == event.event_id {
                v.add(
                    p.child("original_event_id"),
                    "an event cannot retract itself",
                );
            }
            required_text(v, p.child("reason"), &r.reason, Len::Text);
        }
    }
}

/// WARN part-time inputs: at most 168 hours a week, at most 12 months of the last 12.
fn hours_and_months(v: &mut Check, p: Field<'_>, hours: Option<u32>, months: Option<u32>) {
    if hours.is_some_and(|h| h > 168) {
        v.add(
            p.child("avg_weekly_hours"),
            "must be at most 168 (hours in a week)",
        );
    }
    if months.is_some_and(|m| m > 12) {
        v.add(p.child("months_employed_last_12"), "must be at most 12");
    }
}

/// Only a contract with an agreed end (fixed-term, task, or part-time) may state one.
fn contract_end(v: &mut Check, p: Field<'_>, t: crate::event::ContractType, end: Option<Date>) {
    if end.is_some() && t == crate::event::ContractType::OpenEnded {
        v.add(
            p.child("contract_end"),
            "an open-ended contract has no agreed end date (give one for fixed-term, task or part-time contracts)",
        );
    }
}

fn separation(v: &mut Check, p: Field<'_>, s: &Separation) {
    worker(v, p.child("worker_ref"), &s.worker_ref);
    contract_end(v, p, s.contract_type, s.contract_end);
    hours_and_months(v, p, s.avg_weekly_hours, s.months_employed_last_12);
    opt_id(v, p.child("position_id"), s.position_id.as_deref());
    if let Some(g) = &s.legal_ground {
        if !is_code(g) {
            v.add(p.child("legal_ground"), "must be a jurisdiction code of capitals, digits and '-', starting with the country (CN-LCL-40-3, US-INVOL-RIF), at most 32 characters");
        }
    }
    opt_text(v, p.child("ai_system"), s.ai_system.as_deref(), Len::Text);
    if s.ai_attributed == crate::event::AiAttribution::None && s.ai_system.is_some() {
        v.add(
            p.child("ai_attributed"),
            "ai_system is given but ai_attributed is none",
        );
    }
    if s.tenure_months.is_some_and(|t| t > 1200) {
        v.add(p.child("tenure_months"), "must be at most 1200");
    }
    for (i, f) in s.protected_flags.iter().enumerate() {
        if !is_code(f) {
            v.add(
                p.child("protected_flags").item(i),
                "must be a code such as CN-LCL-42-4",
            );
        }
    }
    if let Some(m) = &s.severance {
        money_field(v, p.child("severance"), m);
    }
}

fn graduate(v: &mut Check, p: Field<'_>, g: &GraduateIntake) {
    if !(1900..=2200).contains(&g.cohort_year) {
        v.add(
            p.child("cohort_year"),
            "must be a year between 1900 and 2200",
        );
    }
    if g.baseline == 0 {
        v.add(
            p.child("baseline"),
            "must be at least 1 (the prior cohort or the plan)",
        );
    }
}

fn position(v: &mut Check, p: Field<'_>, c: &PositionChange, event: &Event) {
    required_text(v, p.child("position_id"), &c.position_id, Len::Id);
    if let Some(id) = c.linked_separation_id {
        if id.0.is_nil() || id == event.event_id {
            v.add(
                p.child("linked_separation_id"),
                "must name another event by its non-nil UUID",
            );
        }
    }
}

fn compliance(v: &mut Check, p: Field<'_>, c: &ComplianceStep) {
    required_text(v, p.child("plan_id"), &c.plan_id, Len::Id);
    text(v, p.child("recipient"), &c.recipient, Len::Text);
    text(v, p.child("document_ref"), &c.document_ref, Len::Text);
}

fn money_field(v: &mut Check, p: Field<'_>, m: &crate::event::Money) {
    if m.amount_minor < 0 {
        v.add(p.child("amount_minor"), "must not be negative");
    }
    if m.currency.len() != 3 || !m.currency.bytes().all(|b| b.is_ascii_uppercase()) {
        v.add(
            p.child("currency"),
            "must be an ISO 4217 code such as CNY, USD, EUR",
        );
    }
}

fn worker(v: &mut Check, field: Field<'_>, w: &WorkerRef) {
    let s = w.as_str();
    if s.is_empty() {
        v.add(field, "required: a pseudonymous worker reference");
    } else if s.len() > MAX_ID
        || !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
    {
        v.add(field, format!("must be a pseudonymous reference of at most {MAX_ID} characters from A-Z a-z 0-9 . _ : - (no names, no spaces)"));
    }
}

/// An identifier that may appear in a NATS subject token (org) or a key (site).
fn token(v: &mut Check, field: Field<'_>, s: &str, allow_dot: bool) {
    if let Err(why) = check_token(s, allow_dot) {
        v.add(field, why);
    }
}

/// The rule for an identifier that may appear in a NATS subject token (an org id, with
/// `allow_dot` false) or a key (a site): what is wrong with `s`, in the words a refusal uses.
///
/// # Errors
/// Empty, longer than [`MAX_ID`], or a character outside `A-Z a-z 0-9 _ -` (and `.`).
pub fn check_token(s: &str, allow_dot: bool) -> Result<(), String> {
    if s.is_empty() {
        Err("required".to_owned())
    } else if s.len() > MAX_ID
        || !s.bytes().all(|b| {
            b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (allow_dot && b == b'.')
        })
    {
        let dot = if allow_dot { " ." } else { "" };
        Err(format!(
            "must be at most {MAX_ID} characters from A-Z a-z 0-9 _ -{dot}"
        ))
    } else {
        Ok(())
    }
}

fn required_text(v: &mut Check, field: Field<'_>, s: &str, max: Len) {
    if s.trim().is_empty() {
        v.add(field, "required");
    } else {
        text(v, field, s, max);
    }
}

fn text(v: &mut Check, field: Field<'_>, s: &str, len: Len) {
    let max = match len {
        Len::Id => MAX_ID,
        Len::Text => v.text_max,
    };
    // Most text is printable ASCII within the limit: one pass over the bytes says so (a byte
    // count within the limit bounds the character count; no control character is in 0x20..0x7f).
    if s.len() <= max && s.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return;
    }
    if s.chars().count() > max {
        let named = if max < MAX_TEXT {
            " (this deployment's max_text_chars)"
        } else {
            ""
        };
        v.add(field, format!("must be at most {max} characters{named}"));
    } else if s.chars().any(char::is_control) {
        v.add(field, "must not contain control characters");
    }
}

fn opt_text(v: &mut Check, field: Field<'_>, s: Option<&str>, max: Len) {
    if let Some(s) = s {
        required_text(v, field, s, max);
    }
}

fn opt_id(v: &mut Check, field: Field<'_>, s: Option<&str>) {
    opt_text(v, field, s, Len::Id);
}

fn list(v: &mut Check, field: Field<'_>, items: &[String]) {
    if items.len() > 1000 {
        v.add(field, "at most 1000 entries");
    }
    for (i, s) in items.iter().enumerate() {
        required_text(v, field.item(i), s, Len::Id);
    }
}

fn is_jurisdiction(s: &str) -> bool {
    let b = s.as_bytes();
    let country = b.len() >= 2 && b[..2].iter().all(u8::is_ascii_uppercase);
    match b.len() {
        2 => country,
        4..=6 => {
            country
                && b[2] == b'-'
                && b[3..]
                    .iter()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        }
        _ => false,
    }
}

fn is_code(s: &str) -> bool {
    let b = s.as_bytes();
    (4..=32).contains(&b.len())
        && b[..2].iter().all(u8::is_ascii_uppercase)
        && b[2] == b'-'
        && b.iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == b'-')
        && !s.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::Field;

    #[test]
    fn a_field_path_is_spelled_with_dots_and_indices() {
        let payload = Field::Top("payload");
        let kind = payload.child("economic_dismissal");
        let separation = kind.child("separation");
        assert_eq!(
            separation.child("contract_end").to_string(),
            "payload.economic_dismissal.separation.contract_end"
        );
        assert_eq!(
            separation.child("protected_flags").item(2).to_string(),
            "payload.economic_dismissal.separation.protected_flags[2]"
        );
        assert_eq!(Field::Top("source.system").to_string(), "source.system");
    }
}
