//! The threshold watch as the projector serves it: parsing a `ThresholdRequest`, evaluating the
//! rule packs over the projection, and the wire form of each status. The rule logic itself lives in
//! `wfl_projections::rules`; this module only gathers its inputs and maps its answer.

use tonic::Status;
use wfl_domain::{Date, OrgId};
use wfl_projections::rules::{
    self, AlertLevel, ComplianceStep, RulePack, Separation, ThresholdStatus,
};
use wfl_projections::views::{PopulationIndex, Projection};
use wfl_proto::pb;

use crate::api::{date, invalid};

/// A validated `ThresholdRequest`.
pub(crate) struct Request {
    /// `None`: the default evaluation day.
    pub as_of_date: Option<Date>,
    /// The packs asked for (ids), empty = all.
    pub packs: Vec<String>,
    pub org: Option<OrgId>,
    pub alerts_only: bool,
}

/// Checks a request's fields against the loaded packs.
pub(crate) fn parse(r: &pb::ThresholdRequest, loaded: &[RulePack]) -> Result<Request, Status> {
    let as_of_date = date("as_of_date", &r.as_of_date)?;
    for (i, id) in r.packs.iter().enumerate() {
        if !loaded.iter().any(|p| &p.id == id) {
            return Err(invalid(
                &format!("packs[{i}]"),
                &format!("no rule pack {id:?} is loaded"),
            ));
        }
    }
    Ok(Request {
        as_of_date,
        packs: r.packs.clone(),
        org: (!r.org_id.is_empty()).then(|| OrgId(r.org_id.clone())),
        alerts_only: r.alerts_only,
    })
}

/// Evaluates the requested packs over `p`; returns the evaluation day and the statuses.
pub(crate) fn evaluate(
    p: &Projection,
    request: &Request,
    loaded: &[RulePack],
) -> (Date, Vec<ThresholdStatus>) {
    let packs: Vec<RulePack> = loaded
        .iter()
        .filter(|p| request.packs.is_empty() || request.packs.contains(&p.id))
        .cloned()
        .collect();
    let as_of = request.as_of_date.unwrap_or_else(today);
    threshold_watch(p, &packs, request.org.as_ref(), as_of)
}

/// The wire answer.
pub(crate) fn response(
    as_of_sequence: u64,
    as_of: Date,
    statuses: Vec<ThresholdStatus>,
    request: &Request,
) -> pb::ThresholdResponse {
    pb::ThresholdResponse {
        as_of_sequence,
        as_of_date: as_of.to_string(),
        statuses: statuses
            .into_iter()
            .filter(|s| !request.alerts_only || s.level.is_some())
            .map(status_pb)
            .collect(),
    }
}

/// Today's date (UTC): the default day threshold windows are evaluated at.
pub(crate) fn today() -> Date {
    let days = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() / 86_400)
        .unwrap_or(0);
    Date::from_days(i32::try_from(days).unwrap_or(0))
}

/// The threshold watch over a projection: every pack, every unit, at `as_of`.
pub(crate) fn threshold_watch(
    p: &Projection,
    packs: &[RulePack],
    org: Option<&OrgId>,
    as_of: Date,
) -> (Date, Vec<ThresholdStatus>) {
    let records = p.countable_records(org);
    let compliance = p.compliance_records(org);
    let separations: Vec<Separation<'_>> = records
        .iter()
        .map(|r| Separation {
            event_id: r.event_id,
            org: &r.org,
            site: &r.site,
            jurisdiction: &r.jurisdiction,
            effective_date: r.effective_date,
            payload: &r.payload,
            position_closed: r.classification.position_closed,
            backfilled: r.classification.backfilled,
            correlation_id: r.correlation_id.as_deref(),
        })
        .collect();
    let steps: Vec<ComplianceStep<'_>> = compliance
        .iter()
        .map(|c| ComplianceStep {
            event_id: c.event_id,
            org: &c.org,
            site: &c.site,
            kind: c.kind,
            plan_id: &c.plan_id,
            effective_date: c.effective_date,
        })
        .collect();
    (
        as_of,
        // Indexed once: the watch asks the population once per window and sample.
        rules::evaluate(
            packs,
            &separations,
            &steps,
            &PopulationIndex::new(p, org),
            as_of,
        ),
    )
}

fn status_pb(s: ThresholdStatus) -> pb::ThresholdStatus {
    pb::ThresholdStatus {
        pack: s.pack,
        org_id: s.org.0,
        unit: s.unit,
        window: s.window,
        window_start: s.window_start.to_string(),
        window_end: s.window_end.to_string(),
        count_type: s.count_type.as_str().to_owned(),
        count: s.count,
        event_ids: s.event_ids.iter().map(ToString::to_string).collect(),
        denominator: s.denominator,
        threshold: s.threshold,
        ratio: s.ratio,
        level: match s.level {
            None => pb::AlertLevel::Unspecified,
            Some(AlertLevel::Approaching) => pb::AlertLevel::Approaching,
            Some(AlertLevel::Met) => pb::AlertLevel::Met,
        } as i32,
        missing_steps: s.missing_steps,
        label: s.label,
    }
}
