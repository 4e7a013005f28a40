//! Conversions between the `wfl.v1` wire messages ([`pb`]) and the `wfl-domain` types.
//!
//! This module owns the mapping of every field, enum value and payload kind between the protobuf and
//! the domain, and the *structural* checks that only the wire needs: UUID and date syntax, enum
//! values the domain does not know, `UNSPECIFIED` where a value is required, and missing messages
//! or oneof kinds. Everything else (identifier syntax, lengths, cross-field rules) is
//! [`wfl_domain::validate`]'s, which [`event_from_pb`] runs after a successful conversion.
//!
//! Wire conventions it applies:
//! - an empty string is "absent": `None` for optional fields, `required` for required ids and dates;
//! - `schema_version` 0 means the current [`wfl_domain::SCHEMA_VERSION`];
//! - `UNSPECIFIED` means the domain default where there is one (`REPORTED`, `AI_ATTRIBUTION_NONE`,
//!   `BACKFILL_STATUS_UNKNOWN`), `None` for optional enums (cohort, offer terms), and is refused for
//!   required enums;
//! - [`event_to_pb`] always writes the explicit value (never `UNSPECIFIED` except for `None`), so
//!   `event_from_pb(event_to_pb(&e)) == Ok(e)` for every valid `e`.
//!
//! Violation paths use the proto field names, as [`wfl_domain::validate`] does:
//! `payload.event_corrected.replacement.resignation.separation.worker_ref`.

use crate::pb;
use crate::pb::payload::Kind;
use wfl_domain as d;
use wfl_domain::validate::Field;
use wfl_domain::{Date, EventId, EventType, FieldViolation, Violations};

const NO_KIND: &str = "required: exactly one event kind";
const NOT_A_UUID: &str = "must be a UUID (36-character hyphenated or 32 hex digits)";
const NOT_A_DATE: &str = "must be a date YYYY-MM-DD between 1900-01-01 and 2200-12-31 that exists";
const NESTED_CORRECTION: &str = "a correction cannot replace with another correction or retraction";

// ---------------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------------

/// Wire -> domain.
///
/// Collects every structural problem (not just the first) as field violations named by their proto
/// path (`event_id`, `effective_date`, `source`, `payload`,
/// `payload.contract_not_renewed.separation.employment_relationship`, ...). When the structure is
/// sound it runs [`wfl_domain::validate`] and returns its violations, if any.
///
/// When the structure is broken there is no domain event to validate in full; the envelope's own
/// domain checks (`org_id`, `site_id`, `jurisdiction`, `source.*`, `correlation_id`,
/// `causation_id`, `schema_version`, and `event_id` when it parsed) are still run and reported with
/// the structural violations, so a client sees every envelope problem at once. The payload's domain
/// checks run once its structure is fixed.
///
/// # Errors
/// Every violation found, ordered by the envelope field they belong to.
pub fn event_from_pb(e: pb::Event) -> Result<d::Event, Violations> {
    let mut cx = Cx::default();
    let event_id = cx.required_id(Field::Top("event_id"), &e.event_id);
    let effective_date = cx.required_date(Field::Top("effective_date"), &e.effective_date);
    let source = cx
        .required_message(Field::Top("source"), e.source)
        .map(|s| d::Source {
            system: s.system,
            reference: s.reference,
        });
    let evidence_confidence = cx.defaulted_enum(
        Field::Top("evidence_confidence"),
        evidence_confidence_from(e.evidence_confidence),
        d::EvidenceConfidence::Reported,
    );
    let payload = match e.payload {
        Some(p) => payload_from(&mut cx, Field::Top("payload"), p),
        None => cx.refuse(Field::Top("payload"), NO_KIND),
    };
    let schema_version = if e.schema_version == 0 {
        d::SCHEMA_VERSION
    } else {
        e.schema_version
    };
    let org_id = d::OrgId(e.org_id);
    let site_id = d::SiteId(e.site_id);
    let correlation_id = non_empty(e.correlation_id);
    let causation_id = non_empty(e.causation_id);

    // The source moves into the event when the structure is sound, and comes back out for the
    // stand-in below when it is not (no copy of it on the valid path).
    let source = match (
        cx.found.is_empty(),
        event_id,
        effective_date,
        source,
        evidence_confidence,
        payload,
    ) {
        (
            true,
            Some(event_id),
            Some(effective_date),
            Some(source),
            Some(evidence_confidence),
            Some(payload),
        ) => {
            let event = d::Event {
                event_id,
                org_id,
                site_id,
                jurisdiction: e.jurisdiction,
                effective_date,
                source,
                correlation_id,
                causation_id,
                schema_version,
                evidence_confidence,
                expected_version: e.expected_version,
                payload,
            };
            return d::validate(&event).map(|()| event);
        }
        (_, _, _, source, _, _) => source,
    };

    // The structure is broken. Run the domain checks of the envelope fields, which depend on
    // nothing else, on a stand-in event; keep only those not already covered by a structural
    // violation (the stand-in's placeholders would otherwise be reported).
    let mut found = cx.found;
    if let Some(date) = effective_date.or_else(|| Date::from_ymd(1970, 1, 1).ok()) {
        let stand_in = d::Event {
            event_id: event_id.unwrap_or(EventId(uuid::Uuid::nil())),
            org_id,
            site_id,
            jurisdiction: e.jurisdiction,
            effective_date: date,
            source: source.unwrap_or_default(),
            correlation_id,
            causation_id,
            schema_version,
            evidence_confidence: d::EvidenceConfidence::Reported,
            expected_version: None,
            payload: d::Payload::HiringResumed(d::HiringResumed {
                scope: String::new(),
                reqs_reopened: 0,
            }),
        };
        if let Err(domain) = d::validate(&stand_in) {
            let envelope: Vec<FieldViolation> = domain
                .0
                .into_iter()
                .filter(|v| is_envelope_check(&v.field) && !covered(&found, &v.field))
                .collect();
            found.0.extend(envelope);
        }
    }
    found.0.sort_by_key(|v| envelope_rank(&v.field));
    Err(found)
}

/// Wire -> domain for one payload (as `Explain` answers carry them). Structural checks only: the
/// payload of a committed event was validated when it was recorded.
///
/// # Errors
/// Every structural violation found (fields named from `payload`).
pub fn payload_from_pb(p: pb::Payload) -> Result<d::Payload, Violations> {
    let mut cx = Cx::default();
    match payload_from(&mut cx, Field::Top("payload"), p) {
        Some(payload) if cx.found.is_empty() => Ok(payload),
        _ => Err(cx.found),
    }
}

/// Domain -> wire. Total: never fails, and writes explicit enum values (`UNSPECIFIED` only for an
/// absent optional enum), so that `event_from_pb(event_to_pb(&e)) == Ok(e)` for every valid `e`.
#[must_use]
pub fn event_to_pb(e: &d::Event) -> pb::Event {
    pb::Event {
        event_id: e.event_id.to_string(),
        org_id: e.org_id.0.clone(),
        site_id: e.site_id.0.clone(),
        jurisdiction: e.jurisdiction.clone(),
        effective_date: e.effective_date.to_string(),
        source: Some(pb::Source {
            system: e.source.system.clone(),
            reference: e.source.reference.clone(),
        }),
        correlation_id: e.correlation_id.clone().unwrap_or_default(),
        causation_id: e.causation_id.clone().unwrap_or_default(),
        schema_version: e.schema_version,
        evidence_confidence: evidence_confidence_to(e.evidence_confidence),
        expected_version: e.expected_version,
        payload: Some(payload_to_pb(&e.payload)),
    }
}

/// Domain -> wire for one payload (also the nested `EventCorrected.replacement`).
#[must_use]
pub fn payload_to_pb(p: &d::Payload) -> pb::Payload {
    use d::Payload as P;
    let kind = match p {
        P::WorkerHired(h) => Kind::WorkerHired(pb::WorkerHired {
            worker_ref: h.worker_ref.0.clone(),
            employment_relationship: employment_relationship_to(h.employment_relationship),
            contract_type: contract_type_to(h.contract_type),
            cohort: h.cohort.map_or(0, cohort_to),
            position_id: h.position_id.clone().unwrap_or_default(),
            baseline: h.baseline,
            avg_weekly_hours: h.avg_weekly_hours,
            months_employed_last_12: h.months_employed_last_12,
            contract_end: opt_date_to(h.contract_end),
        }),
        P::ContractRenewed(r) => Kind::ContractRenewed(pb::ContractRenewed {
            worker_ref: r.worker_ref.0.clone(),
            new_contract_end: opt_date_to(r.new_contract_end),
            consecutive_fixed_terms: r.consecutive_fixed_terms,
        }),
        P::GraduateIntakeSet(g) => Kind::GraduateIntakeSet(graduate_to(g)),
        P::GraduateIntakeReduced(g) => Kind::GraduateIntakeReduced(graduate_to(g)),
        P::HiringPaused(h) => Kind::HiringPaused(pb::HiringPaused {
            scope: h.scope.clone(),
            reqs_frozen: h.reqs_frozen,
            reqs_cancelled: h.reqs_cancelled,
            until: opt_date_to(h.until),
        }),
        P::HiringResumed(h) => Kind::HiringResumed(pb::HiringResumed {
            scope: h.scope.clone(),
            reqs_reopened: h.reqs_reopened,
        }),
        P::PositionBackfilled(c) => Kind::PositionBackfilled(position_to(c)),
        P::PositionClosed(c) => Kind::PositionClosed(position_to(c)),
        P::ContractNotRenewed(c) => Kind::ContractNotRenewed(pb::ContractNotRenewed {
            separation: Some(separation_to(&c.separation)),
            renewal_offered: c.renewal_offered,
            offer_terms: c.offer_terms.map_or(0, offer_terms_to),
            employee_refused: c.employee_refused,
            would_trigger_open_ended: c.would_trigger_open_ended,
            consecutive_fixed_terms: c.consecutive_fixed_terms,
        }),
        P::EconomicDismissal(x) => Kind::EconomicDismissal(pb::EconomicDismissal {
            separation: Some(separation_to(&x.separation)),
            selection_criteria: x.selection_criteria.clone().unwrap_or_default(),
            plan_id: x.plan_id.clone().unwrap_or_default(),
        }),
        P::RoleAutomated(r) => Kind::RoleAutomated(pb::RoleAutomated {
            role_id: r.role_id.clone(),
            ai_system: r.ai_system.clone(),
            separation: r.separation.as_ref().map(separation_to),
            retraining_offered: r.retraining_offered,
            redeployment_offered: r.redeployment_offered,
        }),
        P::MutualTerminationEmployerProposed(m) => {
            Kind::MutualTerminationEmployerProposed(pb::MutualTerminationEmployerProposed {
                separation: Some(separation_to(&m.separation)),
                package: m.package.as_ref().map(money_to),
            })
        }
        P::AdverseChangeRefusedExit(a) => {
            Kind::AdverseChangeRefusedExit(pb::AdverseChangeRefusedExit {
                separation: Some(separation_to(&a.separation)),
                change_type: change_type_to(a.change_type),
                change_magnitude_pct: a.change_magnitude_pct,
            })
        }
        P::Resignation(r) => Kind::Resignation(pb::Resignation {
            separation: Some(separation_to(&r.separation)),
            regrettable: r.regrettable,
            pressured: r.pressured,
        }),
        P::Retirement(r) => Kind::Retirement(pb::Retirement {
            separation: Some(separation_to(&r.separation)),
            retirement_type: retirement_type_to(r.retirement_type),
        }),
        P::DeathOrDisability(x) => Kind::DeathOrDisability(pb::DeathOrDisability {
            separation: Some(separation_to(&x.separation)),
            disability: x.disability,
        }),
        P::DismissalForCause(x) => Kind::DismissalForCause(pb::DismissalForCause {
            separation: Some(separation_to(&x.separation)),
            cause_code: x.cause_code.clone(),
            summary: x.summary,
        }),
        P::ContractorReleased(a) => Kind::ContractorReleased(agency_release_to(a)),
        P::DispatchedWorkerReturned(a) => Kind::DispatchedWorkerReturned(agency_release_to(a)),
        P::TemporaryLayoff(t) => Kind::TemporaryLayoff(pb::TemporaryLayoff {
            worker_ref: t.worker_ref.0.clone(),
            expected_duration_days: t.expected_duration_days,
            recall_expected: t.recall_expected,
        }),
        P::HoursReduced(h) => Kind::HoursReduced(pb::HoursReduced {
            worker_ref: h.worker_ref.0.clone(),
            hours_before: h.hours_before,
            hours_after: h.hours_after,
            expected_months: h.expected_months,
        }),
        P::SiteClosed(c) => Kind::SiteClosed(pb::SiteClosed {
            operating_unit: c.operating_unit.clone().unwrap_or_default(),
            temporary: c.temporary,
        }),
        P::SiteRelocated(r) => Kind::SiteRelocated(pb::SiteRelocated {
            to_site: r.to_site.as_ref().map(|s| s.0.clone()).unwrap_or_default(),
            distance_km: r.distance_km,
        }),
        P::RestructuringPlanAnnounced(r) => {
            Kind::RestructuringPlanAnnounced(pb::RestructuringPlanAnnounced {
                plan_id: r.plan_id.clone(),
                stated_grounds: r.stated_grounds.clone(),
                planned_count: r.planned_count,
                units: r.units.clone(),
            })
        }
        P::UnionBriefed(c) => Kind::UnionBriefed(compliance_to(c)),
        P::AuthorityReported(c) => Kind::AuthorityReported(compliance_to(c)),
        P::WarnNoticeFiled(c) => Kind::WarnNoticeFiled(compliance_to(c)),
        P::InternalRedeployment(r) => Kind::InternalRedeployment(pb::InternalRedeployment {
            worker_ref: r.worker_ref.0.clone(),
            from_position: r.from_position.clone().unwrap_or_default(),
            to_position: r.to_position.clone(),
            from_site: r
                .from_site
                .as_ref()
                .map(|s| s.0.clone())
                .unwrap_or_default(),
            to_site: r.to_site.as_ref().map(|s| s.0.clone()).unwrap_or_default(),
            distance_km: r.distance_km,
            pay_change_pct: r.pay_change_pct,
            accepted: Some(r.accepted),
        }),
        P::AiToolRolledOut(a) => Kind::AiToolRolledOut(pb::AiToolRolledOut {
            tool: a.tool.clone(),
            scope: a.scope.clone(),
            mandatory: a.mandatory,
        }),
        P::AiUsageMeasured(a) => Kind::AiUsageMeasured(pb::AiUsageMeasured {
            scope: a.scope.clone(),
            period_start: a.period_start.to_string(),
            period_end: a.period_end.to_string(),
            metric: ai_metric_to(a.metric),
            value: a.value,
            population: a.population,
            used_in_performance_review: a.used_in_performance_review,
        }),
        P::EventCorrected(c) => Kind::EventCorrected(Box::new(pb::EventCorrected {
            original_event_id: c.original_event_id.to_string(),
            reason: c.reason.clone(),
            replacement: Some(Box::new(payload_to_pb(&c.replacement))),
        })),
        P::EventRetracted(r) => Kind::EventRetracted(pb::EventRetracted {
            original_event_id: r.original_event_id.to_string(),
            reason: r.reason.clone(),
        }),
    };
    pb::Payload { kind: Some(kind) }
}

/// The domain [`EventType`] of a wire event's payload, if it has one (no validation).
#[must_use]
pub fn event_type_of(e: &pb::Event) -> Option<EventType> {
    e.payload.as_ref()?.kind.as_ref().map(kind_type)
}

/// The org id and event type of an encoded `wfl.v1.Event`, read without decoding the event:
/// what [`event_type_of`] and the `org_id` field of the decoded event give (the last value of a
/// field given twice, as a decoder keeps; an empty org and `None` when absent), for a caller
/// that only routes the bytes (the ledger's committed-stream publisher). Only the payload's
/// kind is looked at, never its fields.
///
/// # Errors
/// When the bytes are not a well-formed message of fields (what a full decode would refuse
/// at that level), or the org id is not UTF-8.
pub fn org_and_type_of(mut event: &[u8]) -> Result<(&str, Option<EventType>), prost::DecodeError> {
    use prost::encoding::{decode_key, decode_varint, skip_field, DecodeContext, WireType};
    let mut org: &[u8] = &[];
    let mut kind = None;
    while !event.is_empty() {
        let (tag, wire) = decode_key(&mut event)?;
        match (tag, wire) {
            (2 | 12, WireType::LengthDelimited) => {
                let len = usize::try_from(decode_varint(&mut event)?)
                    .ok()
                    .filter(|&n| n <= event.len())
                    .ok_or_else(|| prost::DecodeError::new("buffer underflow"))?;
                let (field, rest) = event.split_at(len);
                event = rest;
                if tag == 2 {
                    org = field;
                } else {
                    kind = payload_kind(field)?.or(kind);
                }
            }
            _ => skip_field(wire, tag, &mut event, DecodeContext::default())?,
        }
    }
    let org = std::str::from_utf8(org)
        .map_err(|_| prost::DecodeError::new("invalid string value: data is not UTF-8 encoded"))?;
    Ok((org, kind))
}

/// The event type of an encoded `wfl.v1.Payload`: the kind of its last oneof field, found by
/// decoding a payload holding only an empty message under that field's tag (the generated code
/// names the kinds, so no table of tags is kept here; an unknown tag decodes to no kind, as a
/// full decode skips it).
fn payload_kind(mut payload: &[u8]) -> Result<Option<EventType>, prost::DecodeError> {
    use prost::encoding::{decode_key, encode_key, skip_field, DecodeContext, WireType};
    use prost::Message;
    let mut kind = None;
    while !payload.is_empty() {
        let (tag, wire) = decode_key(&mut payload)?;
        skip_field(wire, tag, &mut payload, DecodeContext::default())?;
        if wire == WireType::LengthDelimited {
            // The key (at most 5 bytes for a tag below 2^29) and a zero length.
            let mut bytes = [0u8; 6];
            let mut rest: &mut [u8] = &mut bytes;
            encode_key(tag, wire, &mut rest);
            let used = 6 - rest.len() + 1;
            if let Some(k) = pb::Payload::decode(&bytes[..used])?.kind {
                kind = Some(kind_type(&k));
            }
        }
    }
    Ok(kind)
}

// ---------------------------------------------------------------------------------------------
// Wire -> domain: the collector and its field helpers
// ---------------------------------------------------------------------------------------------

/// Collects structural violations. Every helper returns `None` exactly when it recorded one.
#[derive(Default)]
struct Cx {
    found: Violations,
}

impl Cx {
    /// Records a violation; the only place a path is spelled out.
    fn refuse<T>(&mut self, field: Field<'_>, description: impl Into<String>) -> Option<T> {
        self.found.add(field.to_string(), description);
        None
    }

    fn required_message<T>(&mut self, field: Field<'_>, m: Option<T>) -> Option<T> {
        match m {
            Some(m) => Some(m),
            None => self.refuse(field, "required"),
        }
    }

    fn required_id(&mut self, field: Field<'_>, s: &str) -> Option<EventId> {
        if s.is_empty() {
            return self.refuse(field, "required");
        }
        self.id(field, s)
    }

    fn optional_id(&mut self, field: Field<'_>, s: &str) -> Option<Option<EventId>> {
        if s.is_empty() {
            return Some(None);
        }
        self.id(field, s).map(Some)
    }

    fn id(&mut self, field: Field<'_>, s: &str) -> Option<EventId> {
        // Hyphenated (36) or simple (32) only: braced and URN forms are not wire syntax.
        let parsed = if s.len() == 36 || s.len() == 32 {
            uuid::Uuid::try_parse(s).ok()
        } else {
            None
        };
        match parsed {
            Some(u) => Some(EventId(u)),
            None => self.refuse(field, NOT_A_UUID),
        }
    }

    fn required_date(&mut self, field: Field<'_>, s: &str) -> Option<Date> {
        if s.is_empty() {
            return self.refuse(field, "required");
        }
        self.date(field, s)
    }

    fn optional_date(&mut self, field: Field<'_>, s: &str) -> Option<Option<Date>> {
        if s.is_empty() {
            return Some(None);
        }
        self.date(field, s).map(Some)
    }

    fn date(&mut self, field: Field<'_>, s: &str) -> Option<Date> {
        match Date::parse(s) {
            Ok(d) => Some(d),
            Err(_) => self.refuse(field, NOT_A_DATE),
        }
    }

    /// A required enum: `UNSPECIFIED` is refused, naming the values allowed.
    fn required_enum<T, E>(
        &mut self,
        field: Field<'_>,
        w: Wire<T>,
        name: fn(&E) -> &'static str,
    ) -> Option<T>
    where
        E: TryFrom<i32>,
    {
        match w {
            Wire::Known(t) => Some(t),
            Wire::Unspecified => self.refuse(field, format!("required: one of {}", one_of(name))),
            Wire::Unknown(n) => self.refuse(field, format!("unknown enum value {n}")),
        }
    }

    /// An enum with a domain default that `UNSPECIFIED` stands for.
    fn defaulted_enum<T>(&mut self, field: Field<'_>, w: Wire<T>, default: T) -> Option<T> {
        match w {
            Wire::Known(t) => Some(t),
            Wire::Unspecified => Some(default),
            Wire::Unknown(n) => self.refuse(field, format!("unknown enum value {n}")),
        }
    }

    /// An optional enum: `UNSPECIFIED` is `None`.
    fn optional_enum<T>(&mut self, field: Field<'_>, w: Wire<T>) -> Option<Option<T>> {
        match w {
            Wire::Known(t) => Some(Some(t)),
            Wire::Unspecified => Some(None),
            Wire::Unknown(n) => self.refuse(field, format!("unknown enum value {n}")),
        }
    }
}

/// The names of a wire enum's values other than `UNSPECIFIED` (values are contiguous from 1).
fn one_of<E: TryFrom<i32>>(name: fn(&E) -> &'static str) -> String {
    (1..)
        .map_while(|n| E::try_from(n).ok())
        .map(|e| name(&e))
        .collect::<Vec<_>>()
        .join(", ")
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// The top-level envelope fields whose domain checks depend on nothing but themselves.
fn is_envelope_check(field: &str) -> bool {
    let top = field.split(['.', '[']).next().unwrap_or(field);
    matches!(
        top,
        "event_id"
            | "org_id"
            | "site_id"
            | "jurisdiction"
            | "source"
            | "correlation_id"
            | "causation_id"
            | "schema_version"
    )
}

/// True when a structural violation already names `field` or one of its parents.
fn covered(found: &Violations, field: &str) -> bool {
    found.0.iter().any(|v| {
        field == v.field
            || field
                .strip_prefix(v.field.as_str())
                .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
    })
}

/// Orders violations by the proto tag of the envelope field they belong to.
fn envelope_rank(field: &str) -> u32 {
    match field.split(['.', '[']).next().unwrap_or(field) {
        "event_id" => 1,
        "org_id" => 2,
        "site_id" => 3,
        "jurisdiction" => 4,
        "effective_date" => 5,
        "source" => 6,
        "correlation_id" => 7,
        "causation_id" => 8,
        "schema_version" => 9,
        "evidence_confidence" => 10,
        "expected_version" => 11,
        "payload" => 12,
        _ => 13,
    }
}

// ---------------------------------------------------------------------------------------------
// Enums
// ---------------------------------------------------------------------------------------------

/// A wire enum value as the domain sees it.
enum Wire<T> {
    Unspecified,
    Known(T),
    Unknown(i32),
}

/// Defines `$to(domain) -> i32` and `$from(i32) -> Wire<domain>` for one enum pair. Both matches
/// are exhaustive, so a value added on either side fails to compile until it is mapped.
macro_rules! enum_map {
    ($to:ident, $from:ident, $dom:ident <-> $wire:ident { $($dv:ident <-> $wv:ident),+ $(,)? }) => {
        fn $to(x: d::$dom) -> i32 {
            match x {
                $(d::$dom::$dv => i32::from(pb::$wire::$wv)),+
            }
        }

        fn $from(n: i32) -> Wire<d::$dom> {
            match pb::$wire::try_from(n) {
                Ok(pb::$wire::Unspecified) => Wire::Unspecified,
                $(Ok(pb::$wire::$wv) => Wire::Known(d::$dom::$dv),)+
                Err(_) => Wire::Unknown(n),
            }
        }
    };
}

enum_map!(evidence_confidence_to, evidence_confidence_from, EvidenceConfidence <-> EvidenceConfidence {
    Reported <-> Reported,
    Filed <-> Filed,
    Inferred <-> Inferred,
});
enum_map!(employment_relationship_to, employment_relationship_from, EmploymentRelationship <-> EmploymentRelationship {
    Employee <-> Employee,
    Dispatched <-> Dispatched,
    Contractor <-> Contractor,
    Intern <-> Intern,
});
enum_map!(contract_type_to, contract_type_from, ContractType <-> ContractType {
    OpenEnded <-> OpenEnded,
    FixedTerm <-> FixedTerm,
    Task <-> Task,
    PartTime <-> PartTime,
});
enum_map!(cohort_to, cohort_from, Cohort <-> Cohort {
    GraduateTrainee <-> GraduateTrainee,
    EntryLevel <-> EntryLevel,
    Experienced <-> Experienced,
    Senior <-> Senior,
    TemporaryProject <-> TemporaryProject,
});
enum_map!(initiator_to, initiator_from, Initiator <-> Initiator {
    Employee <-> Employee,
    Employer <-> Employer,
    Mutual <-> Mutual,
    External <-> External,
});
enum_map!(ai_attribution_to, ai_attribution_from, AiAttribution <-> AiAttribution {
    None <-> None,
    CitedByEmployer <-> CitedByEmployer,
    Inferred <-> Inferred,
});
enum_map!(backfill_status_to, backfill_status_from, BackfillStatus <-> BackfillStatus {
    Unknown <-> Unknown,
    Planned <-> Planned,
    Filled <-> Filled,
    NotPlanned <-> NotPlanned,
});
enum_map!(offer_terms_to, offer_terms_from, OfferTerms <-> OfferTerms {
    SameOrBetter <-> SameOrBetter,
    Worse <-> Worse,
    NoOffer <-> NoOffer,
});
enum_map!(retirement_type_to, retirement_type_from, RetirementType <-> RetirementType {
    Statutory <-> Statutory,
    EarlyIncentive <-> EarlyIncentive,
});
enum_map!(change_type_to, change_type_from, ChangeType <-> ChangeType {
    Pay <-> Pay,
    Location <-> Location,
    Hours <-> Hours,
    Role <-> Role,
});
enum_map!(ai_metric_to, ai_metric_from, AiMetric <-> AiMetric {
    ActiveUsers <-> ActiveUsers,
    Tokens <-> Tokens,
});

// ---------------------------------------------------------------------------------------------
// Wire -> domain: payloads
// ---------------------------------------------------------------------------------------------

fn kind_type(k: &Kind) -> EventType {
    match k {
        Kind::WorkerHired(_) => EventType::WorkerHired,
        Kind::ContractRenewed(_) => EventType::ContractRenewed,
        Kind::GraduateIntakeSet(_) => EventType::GraduateIntakeSet,
        Kind::GraduateIntakeReduced(_) => EventType::GraduateIntakeReduced,
        Kind::HiringPaused(_) => EventType::HiringPaused,
        Kind::HiringResumed(_) => EventType::HiringResumed,
        Kind::PositionBackfilled(_) => EventType::PositionBackfilled,
        Kind::ContractNotRenewed(_) => EventType::ContractNotRenewed,
        Kind::EconomicDismissal(_) => EventType::EconomicDismissal,
        Kind::RoleAutomated(_) => EventType::RoleAutomated,
        Kind::MutualTerminationEmployerProposed(_) => EventType::MutualTerminationEmployerProposed,
        Kind::AdverseChangeRefusedExit(_) => EventType::AdverseChangeRefusedExit,
        Kind::Resignation(_) => EventType::Resignation,
        Kind::Retirement(_) => EventType::Retirement,
        Kind::DismissalForCause(_) => EventType::DismissalForCause,
        Kind::DeathOrDisability(_) => EventType::DeathOrDisability,
        Kind::ContractorReleased(_) => EventType::ContractorReleased,
        Kind::DispatchedWorkerReturned(_) => EventType::DispatchedWorkerReturned,
        Kind::TemporaryLayoff(_) => EventType::TemporaryLayoff,
        Kind::HoursReduced(_) => EventType::HoursReduced,
        Kind::SiteClosed(_) => EventType::SiteClosed,
        Kind::SiteRelocated(_) => EventType::SiteRelocated,
        Kind::RestructuringPlanAnnounced(_) => EventType::RestructuringPlanAnnounced,
        Kind::UnionBriefed(_) => EventType::UnionBriefed,
        Kind::AuthorityReported(_) => EventType::AuthorityReported,
        Kind::WarnNoticeFiled(_) => EventType::WarnNoticeFiled,
        Kind::InternalRedeployment(_) => EventType::InternalRedeployment,
        Kind::PositionClosed(_) => EventType::PositionClosed,
        Kind::AiToolRolledOut(_) => EventType::AiToolRolledOut,
        Kind::AiUsageMeasured(_) => EventType::AiUsageMeasured,
        Kind::EventCorrected(_) => EventType::EventCorrected,
        Kind::EventRetracted(_) => EventType::EventRetracted,
    }
}

/// `base` is the path of the `Payload` message: `payload` or `payload.event_corrected.replacement`.
fn payload_from(cx: &mut Cx, base: Field<'_>, p: pb::Payload) -> Option<d::Payload> {
    use d::Payload as P;
    let Some(kind) = p.kind else {
        return cx.refuse(base, NO_KIND);
    };
    let p = base.child(kind_type(&kind).field_name());
    let payload = match kind {
        Kind::WorkerHired(h) => {
            let er = cx.required_enum(
                p.child("employment_relationship"),
                employment_relationship_from(h.employment_relationship),
                pb::EmploymentRelationship::as_str_name,
            );
            let ct = cx.required_enum(
                p.child("contract_type"),
                contract_type_from(h.contract_type),
                pb::ContractType::as_str_name,
            );
            let cohort = cx.optional_enum(p.child("cohort"), cohort_from(h.cohort));
            let end = cx.optional_date(p.child("contract_end"), &h.contract_end);
            P::WorkerHired(d::WorkerHired {
                worker_ref: d::WorkerRef(h.worker_ref),
                employment_relationship: er?,
                contract_type: ct?,
                cohort: cohort?,
                position_id: non_empty(h.position_id),
                baseline: h.baseline,
                avg_weekly_hours: h.avg_weekly_hours,
                months_employed_last_12: h.months_employed_last_12,
                contract_end: end?,
            })
        }
        Kind::ContractRenewed(r) => {
            let end = cx.optional_date(p.child("new_contract_end"), &r.new_contract_end);
            P::ContractRenewed(d::ContractRenewed {
                worker_ref: d::WorkerRef(r.worker_ref),
                new_contract_end: end?,
                consecutive_fixed_terms: r.consecutive_fixed_terms,
            })
        }
        Kind::GraduateIntakeSet(g) => P::GraduateIntakeSet(graduate_from(g)),
        Kind::GraduateIntakeReduced(g) => P::GraduateIntakeReduced(graduate_from(g)),
        Kind::HiringPaused(h) => {
            let until = cx.optional_date(p.child("until"), &h.until);
            P::HiringPaused(d::HiringPaused {
                scope: h.scope,
                reqs_frozen: h.reqs_frozen,
                reqs_cancelled: h.reqs_cancelled,
                until: until?,
            })
        }
        Kind::HiringResumed(h) => P::HiringResumed(d::HiringResumed {
            scope: h.scope,
            reqs_reopened: h.reqs_reopened,
        }),
        Kind::PositionBackfilled(c) => P::PositionBackfilled(position_from(cx, p, c)?),
        Kind::ContractNotRenewed(c) => {
            let sep = required_separation(cx, p, c.separation);
            let terms = cx.optional_enum(p.child("offer_terms"), offer_terms_from(c.offer_terms));
            P::ContractNotRenewed(Box::new(d::ContractNotRenewed {
                separation: sep?,
                renewal_offered: c.renewal_offered,
                offer_terms: terms?,
                employee_refused: c.employee_refused,
                would_trigger_open_ended: c.would_trigger_open_ended,
                consecutive_fixed_terms: c.consecutive_fixed_terms,
            }))
        }
        Kind::EconomicDismissal(x) => {
            let sep = required_separation(cx, p, x.separation);
            P::EconomicDismissal(Box::new(d::EconomicDismissal {
                separation: sep?,
                selection_criteria: non_empty(x.selection_criteria),
                plan_id: non_empty(x.plan_id),
            }))
        }
        Kind::RoleAutomated(r) => {
            let sep = match r.separation {
                Some(s) => separation_from(cx, p.child("separation"), s).map(Some),
                None => Some(None),
            };
            P::RoleAutomated(Box::new(d::RoleAutomated {
                role_id: r.role_id,
                ai_system: r.ai_system,
                separation: sep?,
                retraining_offered: r.retraining_offered,
                redeployment_offered: r.redeployment_offered,
            }))
        }
        Kind::MutualTerminationEmployerProposed(m) => {
            let sep = required_separation(cx, p, m.separation);
            P::MutualTerminationEmployerProposed(Box::new(d::MutualTerminationEmployerProposed {
                separation: sep?,
                package: m.package.map(money_from),
            }))
        }
        Kind::AdverseChangeRefusedExit(a) => {
            let sep = required_separation(cx, p, a.separation);
            let change = cx.required_enum(
                p.child("change_type"),
                change_type_from(a.change_type),
                pb::ChangeType::as_str_name,
            );
            P::AdverseChangeRefusedExit(Box::new(d::AdverseChangeRefusedExit {
                separation: sep?,
                change_type: change?,
                change_magnitude_pct: a.change_magnitude_pct,
            }))
        }
        Kind::Resignation(r) => {
            let sep = required_separation(cx, p, r.separation);
            P::Resignation(Box::new(d::Resignation {
                separation: sep?,
                regrettable: r.regrettable,
                pressured: r.pressured,
            }))
        }
        Kind::Retirement(r) => {
            let sep = required_separation(cx, p, r.separation);
            let ty = cx.required_enum(
                p.child("retirement_type"),
                retirement_type_from(r.retirement_type),
                pb::RetirementType::as_str_name,
            );
            P::Retirement(Box::new(d::Retirement {
                separation: sep?,
                retirement_type: ty?,
            }))
        }
        Kind::DeathOrDisability(x) => {
            let sep = required_separation(cx, p, x.separation);
            P::DeathOrDisability(Box::new(d::DeathOrDisability {
                separation: sep?,
                disability: x.disability,
            }))
        }
        Kind::DismissalForCause(x) => {
            let sep = required_separation(cx, p, x.separation);
            P::DismissalForCause(Box::new(d::DismissalForCause {
                separation: sep?,
                cause_code: x.cause_code,
                summary: x.summary,
            }))
        }
        Kind::ContractorReleased(a) => {
            P::ContractorReleased(Box::new(agency_release_from(cx, p, a)?))
        }
        Kind::DispatchedWorkerReturned(a) => {
            P::DispatchedWorkerReturned(Box::new(agency_release_from(cx, p, a)?))
        }
        Kind::TemporaryLayoff(t) => P::TemporaryLayoff(d::TemporaryLayoff {
            worker_ref: d::WorkerRef(t.worker_ref),
            expected_duration_days: t.expected_duration_days,
            recall_expected: t.recall_expected,
        }),
        Kind::HoursReduced(h) => P::HoursReduced(d::HoursReduced {
            worker_ref: d::WorkerRef(h.worker_ref),
            hours_before: h.hours_before,
            hours_after: h.hours_after,
            expected_months: h.expected_months,
        }),
        Kind::SiteClosed(c) => P::SiteClosed(d::SiteClosed {
            operating_unit: non_empty(c.operating_unit),
            temporary: c.temporary,
        }),
        Kind::SiteRelocated(r) => P::SiteRelocated(d::SiteRelocated {
            to_site: non_empty(r.to_site).map(d::SiteId),
            distance_km: r.distance_km,
        }),
        Kind::RestructuringPlanAnnounced(r) => {
            P::RestructuringPlanAnnounced(d::RestructuringPlanAnnounced {
                plan_id: r.plan_id,
                stated_grounds: r.stated_grounds,
                planned_count: r.planned_count,
                units: r.units,
            })
        }
        Kind::UnionBriefed(c) => P::UnionBriefed(compliance_from(c)),
        Kind::AuthorityReported(c) => P::AuthorityReported(compliance_from(c)),
        Kind::WarnNoticeFiled(c) => P::WarnNoticeFiled(compliance_from(c)),
        Kind::InternalRedeployment(r) => {
            P::InternalRedeployment(Box::new(d::InternalRedeployment {
                worker_ref: d::WorkerRef(r.worker_ref),
                from_position: non_empty(r.from_position),
                to_position: r.to_position,
                from_site: non_empty(r.from_site).map(d::SiteId),
                to_site: non_empty(r.to_site).map(d::SiteId),
                distance_km: r.distance_km,
                pay_change_pct: r.pay_change_pct,
                accepted: r.accepted.unwrap_or(true),
            }))
        }
        Kind::PositionClosed(c) => P::PositionClosed(position_from(cx, p, c)?),
        Kind::AiToolRolledOut(a) => P::AiToolRolledOut(d::AiToolRolledOut {
            tool: a.tool,
            scope: a.scope,
            mandatory: a.mandatory,
        }),
        Kind::AiUsageMeasured(a) => {
            let start = cx.required_date(p.child("period_start"), &a.period_start);
            let end = cx.required_date(p.child("period_end"), &a.period_end);
            let metric = cx.required_enum(
                p.child("metric"),
                ai_metric_from(a.metric),
                pb::AiMetric::as_str_name,
            );
            P::AiUsageMeasured(d::AiUsageMeasured {
                scope: a.scope,
                period_start: start?,
                period_end: end?,
                metric: metric?,
                value: a.value,
                population: a.population,
                used_in_performance_review: a.used_in_performance_review,
            })
        }
        Kind::EventCorrected(c) => {
            let c = *c;
            let original = cx.required_id(p.child("original_event_id"), &c.original_event_id);
            let replacement = replacement_from(cx, p.child("replacement"), c.replacement);
            P::EventCorrected(d::EventCorrected {
                original_event_id: original?,
                reason: c.reason,
                replacement: Box::new(replacement?),
            })
        }
        Kind::EventRetracted(r) => {
            let original = cx.required_id(p.child("original_event_id"), &r.original_event_id);
            P::EventRetracted(d::EventRetracted {
                original_event_id: original?,
                reason: r.reason,
            })
        }
    };
    Some(payload)
}

/// The replacement payload of a correction. A correction of a correction is refused here rather
/// than by domain validation, so that conversion never recurses more than one level deep whatever
/// the input nests.
fn replacement_from(
    cx: &mut Cx,
    field: Field<'_>,
    r: Option<Box<pb::Payload>>,
) -> Option<d::Payload> {
    let Some(r) = r else {
        return cx.refuse(field, "required");
    };
    if matches!(r.kind, Some(Kind::EventCorrected(_))) {
        return cx.refuse(field, NESTED_CORRECTION);
    }
    payload_from(cx, field, *r)
}

/// The separation of a payload at `p` where it is required.
fn required_separation(
    cx: &mut Cx,
    p: Field<'_>,
    s: Option<pb::Separation>,
) -> Option<d::Separation> {
    let field = p.child("separation");
    match s {
        Some(s) => separation_from(cx, field, s),
        None => cx.refuse(field, "required"),
    }
}

fn separation_from(cx: &mut Cx, p: Field<'_>, s: pb::Separation) -> Option<d::Separation> {
    let er = cx.required_enum(
        p.child("employment_relationship"),
        employment_relationship_from(s.employment_relationship),
        pb::EmploymentRelationship::as_str_name,
    );
    let ct = cx.required_enum(
        p.child("contract_type"),
        contract_type_from(s.contract_type),
        pb::ContractType::as_str_name,
    );
    let cohort = cx.optional_enum(p.child("cohort"), cohort_from(s.cohort));
    let backfill = cx.defaulted_enum(
        p.child("backfill_status"),
        backfill_status_from(s.backfill_status),
        d::BackfillStatus::Unknown,
    );
    let initiator = cx.required_enum(
        p.child("initiator"),
        initiator_from(s.initiator),
        pb::Initiator::as_str_name,
    );
    let ai = cx.defaulted_enum(
        p.child("ai_attributed"),
        ai_attribution_from(s.ai_attributed),
        d::AiAttribution::None,
    );
    let notice = cx.optional_date(p.child("notice_given_on"), &s.notice_given_on);
    let end = cx.optional_date(p.child("contract_end"), &s.contract_end);
    Some(d::Separation {
        worker_ref: d::WorkerRef(s.worker_ref),
        employment_relationship: er?,
        contract_type: ct?,
        cohort: cohort?,
        position_id: non_empty(s.position_id),
        position_closed: s.position_closed,
        backfill_status: backfill?,
        initiator: initiator?,
        reason_personal: s.reason_personal,
        legal_ground: non_empty(s.legal_ground),
        ai_attributed: ai?,
        ai_system: non_empty(s.ai_system),
        tenure_months: s.tenure_months,
        protected_flags: s.protected_flags,
        severance: s.severance.map(money_from),
        notice_given_on: notice?,
        avg_weekly_hours: s.avg_weekly_hours,
        months_employed_last_12: s.months_employed_last_12,
        contract_end: end?,
    })
}

fn graduate_from(g: pb::GraduateIntake) -> d::GraduateIntake {
    d::GraduateIntake {
        cohort_year: g.cohort_year,
        planned: g.planned,
        baseline: g.baseline,
        actual: g.actual,
    }
}

fn position_from(cx: &mut Cx, p: Field<'_>, c: pb::PositionChange) -> Option<d::PositionChange> {
    let linked = cx.optional_id(p.child("linked_separation_id"), &c.linked_separation_id);
    Some(d::PositionChange {
        position_id: c.position_id,
        linked_separation_id: linked?,
    })
}

fn agency_release_from(
    cx: &mut Cx,
    p: Field<'_>,
    a: pb::AgencyRelease,
) -> Option<d::AgencyRelease> {
    let sep = required_separation(cx, p, a.separation);
    Some(d::AgencyRelease {
        separation: sep?,
        agency_id: non_empty(a.agency_id),
        ground: non_empty(a.ground),
    })
}

fn compliance_from(c: pb::ComplianceStep) -> d::ComplianceStep {
    d::ComplianceStep {
        plan_id: c.plan_id,
        recipient: c.recipient,
        document_ref: c.document_ref,
        ai_checkbox: c.ai_checkbox,
    }
}

fn money_from(m: pb::Money) -> d::Money {
    d::Money {
        amount_minor: m.amount_minor,
        currency: m.currency,
    }
}

// ---------------------------------------------------------------------------------------------
// Domain -> wire: shared pieces
// ---------------------------------------------------------------------------------------------

fn opt_date_to(d: Option<Date>) -> String {
    d.map(|d| d.to_string()).unwrap_or_default()
}

fn separation_to(s: &d::Separation) -> pb::Separation {
    pb::Separation {
        worker_ref: s.worker_ref.0.clone(),
        employment_relationship: employment_relationship_to(s.employment_relationship),
        contract_type: contract_type_to(s.contract_type),
        cohort: s.cohort.map_or(0, cohort_to),
        position_id: s.position_id.clone().unwrap_or_default(),
        position_closed: s.position_closed,
        backfill_status: backfill_status_to(s.backfill_status),
        initiator: initiator_to(s.initiator),
        reason_personal: s.reason_personal,
        legal_ground: s.legal_ground.clone().unwrap_or_default(),
        ai_attributed: ai_attribution_to(s.ai_attributed),
        ai_system: s.ai_system.clone().unwrap_or_default(),
        tenure_months: s.tenure_months,
        protected_flags: s.protected_flags.clone(),
        severance: s.severance.as_ref().map(money_to),
        notice_given_on: opt_date_to(s.notice_given_on),
        avg_weekly_hours: s.avg_weekly_hours,
        months_employed_last_12: s.months_employed_last_12,
        contract_end: opt_date_to(s.contract_end),
    }
}

fn graduate_to(g: &d::GraduateIntake) -> pb::GraduateIntake {
    pb::GraduateIntake {
        cohort_year: g.cohort_year,
        planned: g.planned,
        baseline: g.baseline,
        actual: g.actual,
    }
}

fn position_to(c: &d::PositionChange) -> pb::PositionChange {
    pb::PositionChange {
        position_id: c.position_id.clone(),
        linked_separation_id: c
            .linked_separation_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
    }
}

fn agency_release_to(a: &d::AgencyRelease) -> pb::AgencyRelease {
    pb::AgencyRelease {
        separation: Some(separation_to(&a.separation)),
        agency_id: a.agency_id.clone().unwrap_or_default(),
        ground: a.ground.clone().unwrap_or_default(),
    }
}

fn compliance_to(c: &d::ComplianceStep) -> pb::ComplianceStep {
    pb::ComplianceStep {
        plan_id: c.plan_id.clone(),
        recipient: c.recipient.clone(),
        document_ref: c.document_ref.clone(),
        ai_checkbox: c.ai_checkbox,
    }
}

fn money_to(m: &d::Money) -> pb::Money {
    pb::Money {
        amount_minor: m.amount_minor,
        currency: m.currency.clone(),
    }
}

/// SHA-256 of an event's canonical wire bytes (`event_to_pb(event)`, encoded): what "the same
/// content" means for an event id. Two submissions of equal events hash alike whatever encoding
/// the clients sent; gateway and ledger both use this one definition.
#[must_use]
pub fn content_sha256(event: &wfl_domain::Event) -> [u8; 32] {
    encode_with_content(event).1
}

/// The event's canonical `wfl.v1.Event` encoding and its [`content_sha256`], from one encoding.
#[must_use]
pub fn encode_with_content(event: &wfl_domain::Event) -> (Vec<u8>, [u8; 32]) {
    use prost::Message;
    use sha2::Digest;
    let bytes = event_to_pb(event).encode_to_vec();
    let content = sha2::Sha256::digest(&bytes).into();
    (bytes, content)
}

/// An event the gateway converted and checked, with the [`content_sha256`] of its canonical
/// encoding: what it hands the ledger beside those bytes when both run in one process (the
/// in-process bus's `Decoded`), so the ledger does not decode, convert and encode the same
/// event again. The bytes it travels with are exactly [`encode_with_content`]'s.
#[derive(Debug)]
pub struct Checked {
    pub event: wfl_domain::Event,
    pub content: [u8; 32],
}
