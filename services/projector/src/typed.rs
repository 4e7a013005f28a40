//! The views as the typed `wfl.v1` messages they are served as (views.proto): each figure's
//! `event_ids` become its `evidence_count` and its `evidence` path (the JSON pointer of the figure
//! in the view's serde document, which `Explain` with a `figure` resolves), so an answer's size
//! depends on the figures asked for, never on how many events stand behind them.

use std::collections::BTreeMap;

use serde::Serialize;
use wfl_domain::EventId;
use wfl_projections::views as v;
use wfl_proto::pb;

/// A view that is served as one of `ViewResponse.view`'s messages.
pub trait TypedView {
    /// The view as its typed message, figures bounded to evidence counts and paths.
    fn typed(&self) -> pb::view_response::View;
}

/// A view as it is served (public so an auditor's tool, `wfl verify --views`, can build the same
/// answer from an export's events and compare it with what a projector served).
#[must_use]
pub fn view_message<T: TypedView>(view: &T) -> pb::view_response::View {
    view.typed()
}

/// The snake_case / ISO name a domain value has in the views' JSON (enums, dates, ids).
fn name<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

/// A JSON pointer from its segments (`~` and `/` escaped).
fn pointer(segments: &[&str]) -> String {
    segments.iter().fold(String::new(), |mut p, s| {
        p.push('/');
        p.push_str(&s.replace('~', "~0").replace('/', "~1"));
        p
    })
}

fn count(ids: &[EventId]) -> u64 {
    ids.len() as u64
}

fn ai_share(a: &v::AiShare, path: String) -> pb::AiShare {
    pb::AiShare {
        separations: a.separations,
        cited_by_employer: a.cited_by_employer,
        inferred: a.inferred,
        share: a.share,
        // The AI-attributed separations are the evidence (`AiShare::event_ids`); counted, not
        // taken from the ids, so an answer from the tallies (no ids) is the same message.
        evidence_count: a.cited_by_employer + a.inferred,
        evidence: path,
    }
}

impl TypedView for v::SeparationsView {
    fn typed(&self) -> pb::view_response::View {
        pb::view_response::View::Separations(pb::SeparationsView {
            as_of_sequence: self.as_of_sequence,
            period: name(&self.period),
            rows: self
                .rows
                .iter()
                .enumerate()
                .map(|(i, r)| pb::SeparationRow {
                    period: r.period.clone(),
                    bucket: name(&r.bucket),
                    mechanism: r.mechanism.as_ref().map(name),
                    count: r.count,
                    employer_influenced: r.employer_influenced,
                    position_closed: r.position_closed,
                    ai_cited_by_employer: r.ai_cited_by_employer,
                    ai_inferred: r.ai_inferred,
                    // Every separation of a row (or a total) is its evidence.
                    evidence_count: r.count,
                    evidence: pointer(&["rows", &i.to_string()]),
                })
                .collect(),
            totals: self
                .totals
                .iter()
                .enumerate()
                .map(|(i, t)| pb::BucketTotal {
                    bucket: name(&t.bucket),
                    count: t.count,
                    employer_influenced: t.employer_influenced,
                    position_closed: t.position_closed,
                    ai: Some(ai_share(&t.ai, pointer(&["totals", &i.to_string(), "ai"]))),
                    evidence_count: t.count,
                    evidence: pointer(&["totals", &i.to_string()]),
                })
                .collect(),
            total: self.total,
            ai_attributed: Some(ai_share(&self.ai_attributed, pointer(&["ai_attributed"]))),
        })
    }
}

fn figures(f: &v::HeadcountFigures, path: String) -> pb::HeadcountFigures {
    pb::HeadcountFigures {
        opening: f.opening,
        hires: f.hires,
        separations: f.separations,
        transfers_in: f.transfers_in,
        transfers_out: f.transfers_out,
        closing: f.closing,
        reconciles: f.reconciles,
        // The hires, separations and moves counted are the evidence, one event each (counted,
        // not taken from the ids, so an answer from the tallies is the same message).
        evidence_count: f.hires + f.separations + f.transfers_in + f.transfers_out,
        evidence: path,
    }
}

fn figures_by(
    by: &BTreeMap<String, v::HeadcountFigures>,
    row: &str,
    field: &str,
) -> BTreeMap<String, pb::HeadcountFigures> {
    by.iter()
        .map(|(k, f)| (k.clone(), figures(f, pointer(&["rows", row, field, k]))))
        .collect()
}

impl TypedView for v::HeadcountView {
    fn typed(&self) -> pb::view_response::View {
        pb::view_response::View::Headcount(pb::HeadcountView {
            as_of_sequence: self.as_of_sequence,
            period: name(&self.period),
            rows: self
                .rows
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let row = i.to_string();
                    pb::HeadcountRow {
                        period: r.period.clone(),
                        start: name(&r.start),
                        end: name(&r.end),
                        total: Some(figures(&r.total, pointer(&["rows", &row, "total"]))),
                        by_cohort: figures_by(&r.by_cohort, &row, "by_cohort"),
                        by_relationship: figures_by(&r.by_relationship, &row, "by_relationship"),
                        reconciles: r.reconciles,
                    }
                })
                .collect(),
            reconciles: self.reconciles,
        })
    }
}

impl TypedView for v::CohortExposureView {
    fn typed(&self) -> pb::view_response::View {
        pb::view_response::View::CohortExposure(pb::CohortExposureView {
            as_of_sequence: self.as_of_sequence,
            from_date: self.from.as_ref().map(name),
            to_date: self.to.as_ref().map(name),
            headcount_basis: self.headcount_basis.clone(),
            total_reductions: self.total_reductions,
            total_average_headcount: self.total_average_headcount,
            rows: self
                .rows
                .iter()
                .enumerate()
                .map(|(i, r)| pb::CohortExposureRow {
                    cohort: r.cohort.clone(),
                    reductions: r.reductions,
                    reduction_share: r.reduction_share,
                    opening_headcount: r.opening_headcount,
                    closing_headcount: r.closing_headcount,
                    average_headcount: r.average_headcount,
                    headcount_share: r.headcount_share,
                    exposure_ratio: r.exposure_ratio,
                    // One separation per reduction counted.
                    evidence_count: r.reductions,
                    evidence: pointer(&["rows", &i.to_string()]),
                })
                .collect(),
        })
    }
}

impl TypedView for v::HiringSignalsView {
    fn typed(&self) -> pb::view_response::View {
        pb::view_response::View::HiringSignals(pb::HiringSignalsView {
            as_of_sequence: self.as_of_sequence,
            pauses: self
                .pauses
                .iter()
                .enumerate()
                .map(|(i, p)| pb::HiringPauseRow {
                    org_id: p.org.0.clone(),
                    site_id: p.site.0.clone(),
                    scope: p.scope.clone(),
                    paused_on: name(&p.paused_on),
                    pauses: p.pauses,
                    first_paused_on: p.first_paused_on.as_ref().map(name).unwrap_or_default(),
                    until: p.until.as_ref().map(name),
                    reqs_frozen: p.reqs_frozen,
                    reqs_cancelled: p.reqs_cancelled,
                    resumed_on: p.resumed_on.as_ref().map(name),
                    reqs_reopened: p.reqs_reopened,
                    evidence_count: count(&p.event_ids),
                    evidence: pointer(&["pauses", &i.to_string()]),
                })
                .collect(),
            open_pauses: self.open_pauses,
            reqs_frozen_open: self.reqs_frozen_open,
            reqs_cancelled: self.reqs_cancelled,
            graduate_intake: self
                .graduate_intake
                .iter()
                .enumerate()
                .map(|(i, g)| pb::GraduateIntakeRow {
                    org_id: g.org.0.clone(),
                    cohort_year: g.cohort_year,
                    planned: g.planned,
                    baseline: g.baseline,
                    actual: g.actual,
                    planned_ratio: g.planned_ratio,
                    actual_ratio: g.actual_ratio,
                    shortfall: g.shortfall,
                    shortfall_basis: g.shortfall_basis.clone(),
                    reduced: g.reduced,
                    evidence_count: count(&g.event_ids),
                    evidence: pointer(&["graduate_intake", &i.to_string()]),
                })
                .collect(),
        })
    }
}

impl TypedView for v::AiAdoptionView {
    fn typed(&self) -> pb::view_response::View {
        pb::view_response::View::AiAdoption(pb::AiAdoptionView {
            as_of_sequence: self.as_of_sequence,
            usage: self
                .usage
                .iter()
                .map(|u| pb::AiUsageRow {
                    org_id: u.org.0.clone(),
                    scope: u.scope.clone(),
                    metric: name(&u.metric),
                    period_start: name(&u.period_start),
                    period_end: name(&u.period_end),
                    value: u.value,
                    population: u.population,
                    active_user_share: u.active_user_share,
                    measure: u.measure.clone(),
                    used_in_performance_review: u.used_in_performance_review,
                    event_id: name(&u.event_id),
                })
                .collect(),
            tools: self
                .tools
                .iter()
                .enumerate()
                .map(|(i, t)| pb::AiToolRow {
                    org_id: t.org.0.clone(),
                    site_id: t.site.0.clone(),
                    scope: t.scope.clone(),
                    tool: t.tool.clone(),
                    mandatory: t.mandatory,
                    effective_date: name(&t.effective_date),
                    event_id: name(&t.event_id),
                    first_effective_date: name(&t.first_effective_date),
                    rollouts: t.rollouts,
                    evidence_count: count(&t.event_ids),
                    evidence: pointer(&["tools", &i.to_string()]),
                })
                .collect(),
            roles_automated: Some(pb::RolesAutomated {
                count: self.roles_automated.count,
                with_separation: self.roles_automated.with_separation,
                evidence_count: count(&self.roles_automated.event_ids),
                evidence: pointer(&["roles_automated"]),
            }),
            ai_attributed_separations: Some(ai_share(
                &self.ai_attributed_separations,
                pointer(&["ai_attributed_separations"]),
            )),
            external_reference: self
                .external_reference
                .iter()
                .map(|t| pb::ExternalTarget {
                    series: t.series.clone(),
                    year: t.year,
                    above_pct: t.above_pct,
                    label: t.label.clone(),
                })
                .collect(),
        })
    }
}

/// One explained event as its typed message (payloads in their `wfl.v1` wire form).
#[must_use]
pub fn explained(e: &v::ExplainedEvent) -> pb::ExplainedEvent {
    let c = &e.classification;
    pb::ExplainedEvent {
        event_id: name(&e.event_id),
        sequence: e.sequence,
        org_id: e.org.0.clone(),
        site_id: e.site.0.clone(),
        jurisdiction: e.jurisdiction.clone(),
        effective_date: name(&e.effective_date),
        event_type: name(&e.event_type),
        correlation_id: e.correlation_id.clone(),
        payload: Some(wfl_proto::convert::payload_to_pb(&e.payload)),
        original_payload: Some(wfl_proto::convert::payload_to_pb(&e.original_payload)),
        classification: Some(pb::EventClassification {
            bucket: name(&c.bucket),
            employer_influenced: c.employer_influenced,
            mechanism: c.mechanism.as_ref().map(name),
            ai: name(&c.ai),
            position_closed: c.position_closed,
            backfilled: c.backfilled,
        }),
        corrected_by: e.corrected_by.iter().map(name).collect(),
        linked_by: e.linked_by.iter().map(name).collect(),
        retracted_by: e.retracted_by.iter().map(name).collect(),
    }
}
