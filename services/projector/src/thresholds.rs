//! The threshold watch as the projector serves it: parsing a `ThresholdRequest`, evaluating the
//! rule packs over the projection, and the wire form of each status. The rule logic itself lives in
//! `wfl_projections::rules`; this module only gathers its inputs and maps its answer.

use tonic::Status;
use wfl_domain::{Date, EventId, OrgId};
use wfl_projections::rules::{self, AlertLevel, RulePack, StepState, ThresholdStatus};
#[cfg(test)]
use wfl_projections::views::Projection;
use wfl_projections::views::{At, PopulationIndex};
use wfl_projections::Population;
use wfl_proto::pb;

use crate::api::{date, invalid};

/// A validated `ThresholdRequest`.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    /// `None`: the default evaluation day.
    pub as_of_date: Option<Date>,
    /// The packs asked for (ids), empty = all.
    pub packs: Vec<String>,
    pub org: Option<OrgId>,
    pub alerts_only: bool,
    /// Only the statuses of these windows; empty = all.
    pub window_keys: Vec<String>,
    /// Only the statuses of these count types; empty = all.
    pub count_types: Vec<rules::CountType>,
    /// List the events behind each status (at most [`MAX_LISTED`] in one answer), not only
    /// count them.
    pub with_event_ids: bool,
}

/// The most events one answer lists (`with_event_ids`), over all its statuses and lists, in
/// their order; the counts give the totals. A window key can name a window of every unit, so
/// a bound per list would still grow with the sites: this one does not.
pub(crate) const MAX_LISTED: usize = 10_000;

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
    if r.with_event_ids && r.window_keys.is_empty() {
        return Err(invalid(
            "with_event_ids",
            "name the windows whose events to list (window_keys): every window's events at once \
             would grow with the history",
        ));
    }
    let count_types = r
        .count_types
        .iter()
        .enumerate()
        .map(|(i, name)| {
            rules::CountType::ALL
                .iter()
                .copied()
                .find(|c| c.as_str() == name)
                .ok_or_else(|| {
                    invalid(
                        &format!("count_types[{i}]"),
                        &format!("{name:?} is not strict, assimilated or shadow"),
                    )
                })
        })
        .collect::<Result<Vec<_>, Status>>()?;
    Ok(Request {
        count_types,
        as_of_date,
        packs: r.packs.clone(),
        org: (!r.org_id.is_empty()).then(|| OrgId(r.org_id.clone())),
        alerts_only: r.alerts_only,
        window_keys: r.window_keys.clone(),
        with_event_ids: r.with_event_ids,
    })
}

/// Evaluates the requested packs over `p`; returns the evaluation day and the statuses.
pub(crate) fn evaluate(
    p: &At<'_>,
    request: &Request,
    loaded: &[RulePack],
) -> (Date, Vec<ThresholdStatus>) {
    let packs: Vec<RulePack> = loaded
        .iter()
        .filter(|p| request.packs.is_empty() || request.packs.contains(&p.id))
        .cloned()
        .collect();
    let as_of = request
        .as_of_date
        .unwrap_or_else(|| default_as_of(p, request.org.as_ref()));
    (as_of, watch_rows(p, &packs, request.org.as_ref(), as_of))
}

/// The day the watch is evaluated at when none is asked for: the latest effective date in the
/// ledger (of `org`, when given), as `views.proto` documents, so a layoff recorded ahead of time
/// is seen. An empty ledger falls back to today (there is nothing to evaluate then).
pub(crate) fn default_as_of(p: &At<'_>, org: Option<&OrgId>) -> Date {
    p.latest_effective_date(org).unwrap_or_else(today)
}

/// A status as an answer gives it: its lists of events may be cut to [`MAX_LISTED`] each (no
/// answer lists more), its counts are the lengths they had. A status kept for later answers
/// ([`crate::watch_cache`]) is cut, so an org's kept rows stay small however many events its
/// windows hold; one just evaluated is whole.
#[derive(Debug, Clone)]
pub(crate) struct Kept {
    pub status: ThresholdStatus,
    lengths: Lengths,
}

/// The lengths of a status's lists: its counted, excluded and notice-only events, and each
/// step's events effective too early.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Lengths {
    counted: usize,
    excluded: usize,
    notice_only: usize,
    steps: Vec<usize>,
}

impl Lengths {
    fn of(s: &ThresholdStatus) -> Self {
        Self {
            counted: s.event_ids.len(),
            excluded: s.excluded.len(),
            notice_only: s.notice_only.len(),
            steps: s
                .steps
                .iter()
                .map(|c| c.effective_too_early.len())
                .collect(),
        }
    }
}

impl Kept {
    /// `status` with its lists whole.
    pub(crate) fn whole(status: ThresholdStatus) -> Self {
        Self {
            lengths: Lengths::of(&status),
            status,
        }
    }

    /// A copy of `status` with each list cut to [`MAX_LISTED`] events (only those copied).
    pub(crate) fn cut(s: &ThresholdStatus) -> Self {
        fn cut<T: Clone>(list: &[T]) -> Vec<T> {
            list[..list.len().min(MAX_LISTED)].to_vec()
        }
        let status = ThresholdStatus {
            pack: s.pack.clone(),
            org: s.org.clone(),
            unit: s.unit.clone(),
            unit_kind: s.unit_kind,
            window: s.window.clone(),
            role: s.role,
            window_key: s.window_key.clone(),
            window_start: s.window_start,
            window_end: s.window_end,
            count_type: s.count_type,
            count_date: s.count_date,
            count: s.count,
            event_ids: cut(&s.event_ids),
            excluded: cut(&s.excluded),
            gate: s.gate,
            denominator: s.denominator,
            threshold: s.threshold,
            ratio: s.ratio,
            level: s.level,
            steps: s
                .steps
                .iter()
                .map(|c| rules::StepCheck {
                    step: c.step.clone(),
                    event_type: c.event_type,
                    plan: c.plan.clone(),
                    first_separation: c.first_separation,
                    due_by: c.due_by,
                    state: c.state,
                    event_id: c.event_id,
                    days_late: c.days_late,
                    earliest_effective: c.earliest_effective,
                    effective_too_early: cut(&c.effective_too_early),
                })
                .collect(),
            missing_steps: s.missing_steps.clone(),
            floor_only: s.floor_only,
            label: s.label.clone(),
            notice_only: cut(&s.notice_only),
            site_event: s.site_event,
        };
        Self {
            lengths: Lengths::of(s),
            status,
        }
    }

    /// Every list is whole.
    #[cfg(test)]
    fn is_whole(&self) -> bool {
        self.lengths == Lengths::of(&self.status)
    }
}

/// The wire answer.
pub(crate) fn response(
    as_of_sequence: u64,
    as_of: Date,
    statuses: Vec<Kept>,
    request: &Request,
) -> pb::ThresholdResponse {
    let statuses: Vec<Kept> = statuses
        .into_iter()
        .filter(|k| answers(&k.status, request))
        .collect();
    let budget = if request.with_event_ids {
        MAX_LISTED
    } else {
        0
    };
    let listed = Listed::share(statuses.iter().map(|k| &k.status), budget);
    pb::ThresholdResponse {
        as_of_sequence,
        views_sequence: 0,
        as_of_date: as_of.to_string(),
        statuses: statuses
            .into_iter()
            .zip(listed)
            .map(|(k, l)| status_pb(k.status, &k.lengths, &l))
            .collect(),
    }
}

/// The statuses an answer to `request` holds, in its order (the filters of the request that
/// act on statuses: `alerts_only`, `window_keys`, `count_types`).
pub(crate) fn selected(statuses: Vec<ThresholdStatus>, request: &Request) -> Vec<ThresholdStatus> {
    statuses
        .into_iter()
        .filter(|s| answers(s, request))
        .collect()
}

/// Whether an answer to `request` holds `s` ([`selected`]).
fn answers(s: &ThresholdStatus, request: &Request) -> bool {
    (!request.alerts_only || s.level.is_some())
        && (request.window_keys.is_empty() || request.window_keys.contains(&s.window_key))
        && (request.count_types.is_empty() || request.count_types.contains(&s.count_type))
}

/// One list of one status of a `ThresholdWatch` answer, as an `Explain` figure path names it:
/// `/statuses/<i>/event_ids`, `/statuses/<i>/excluded`, `/statuses/<i>/notice_only_event_ids`
/// or `/statuses/<i>/steps/<k>/effective_too_early_event_ids`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ListPath {
    status: usize,
    list: List,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum List {
    Counted,
    Excluded,
    NoticeOnly,
    TooEarly(usize),
}

impl ListPath {
    const FORMS: &'static str = "\"/statuses/<i>/event_ids\", \"/statuses/<i>/excluded\", \
        \"/statuses/<i>/notice_only_event_ids\" or \
        \"/statuses/<i>/steps/<k>/effective_too_early_event_ids\"";

    pub(crate) fn parse(path: &str) -> Result<Self, String> {
        let bad = || format!("{path:?} names no list of a status: give {}", Self::FORMS);
        let parts: Vec<&str> = path.split('/').collect();
        let number = |s: &str| s.parse::<usize>().map_err(|_| bad());
        let (status, list) = match parts.as_slice() {
            ["", "statuses", i, "event_ids"] => (number(i)?, List::Counted),
            ["", "statuses", i, "excluded"] => (number(i)?, List::Excluded),
            ["", "statuses", i, "notice_only_event_ids"] => (number(i)?, List::NoticeOnly),
            ["", "statuses", i, "steps", k, "effective_too_early_event_ids"] => {
                (number(i)?, List::TooEarly(number(k)?))
            }
            _ => return Err(bad()),
        };
        Ok(Self { status, list })
    }

    /// The events of this list in `statuses` (an answer's, see [`selected`]), whole.
    pub(crate) fn of(self, statuses: &[ThresholdStatus]) -> Result<Vec<EventId>, String> {
        let s = statuses.get(self.status).ok_or_else(|| {
            format!(
                "the answer has {} statuses; there is no /statuses/{}",
                statuses.len(),
                self.status
            )
        })?;
        Ok(match self.list {
            List::Counted => s.event_ids.clone(),
            List::Excluded => s.excluded.iter().map(|e| e.event_id).collect(),
            List::NoticeOnly => s.notice_only.clone(),
            List::TooEarly(k) => s
                .steps
                .get(k)
                .ok_or_else(|| {
                    format!(
                        "status {} has {} steps; there is no steps/{k}",
                        self.status,
                        s.steps.len()
                    )
                })?
                .effective_too_early
                .clone(),
        })
    }
}

/// How many events of each list of one status an answer lists.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Listed {
    counted: usize,
    excluded: usize,
    notice_only: usize,
    /// Per step, its effective-too-early events.
    steps: Vec<usize>,
}

impl Listed {
    /// Shares `budget` listed events among `statuses`: the counted events of every status
    /// first, then the excluded, the notice-only and the steps' (what a reader asks a window's
    /// events for is what it counted).
    fn share<'s>(
        statuses: impl Iterator<Item = &'s ThresholdStatus> + Clone,
        mut budget: usize,
    ) -> Vec<Self> {
        let mut take = |n: usize| {
            let k = n.min(budget);
            budget -= k;
            k
        };
        let mut out: Vec<Self> = statuses
            .clone()
            .map(|s| Self {
                steps: vec![0; s.steps.len()],
                ..Self::default()
            })
            .collect();
        for (l, s) in out.iter_mut().zip(statuses.clone()) {
            l.counted = take(s.event_ids.len());
        }
        for (l, s) in out.iter_mut().zip(statuses.clone()) {
            l.excluded = take(s.excluded.len());
        }
        for (l, s) in out.iter_mut().zip(statuses.clone()) {
            l.notice_only = take(s.notice_only.len());
        }
        for (l, s) in out.iter_mut().zip(statuses) {
            for (k, step) in l.steps.iter_mut().zip(&s.steps) {
                *k = take(step.effective_too_early.len());
            }
        }
        out
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

/// The threshold watch for the alert loop: the *current* rows only (the build-up under way at
/// `as_of`), every pack, every unit. Peak rows are history and are not alerted on. Key alerts on
/// `(pack, org, unit, window_key, count type)`; `window_key` names the wave, so a new wave alerts
/// again. Pass [`default_as_of`] as `as_of`. (The alert loop gathers [`Inputs`] under the lock
/// and evaluates them outside it; this is the same in one call.)
#[cfg(test)]
pub(crate) fn threshold_watch(
    p: &At<'_>,
    packs: &[RulePack],
    org: Option<&OrgId>,
    as_of: Date,
) -> (Date, Vec<ThresholdStatus>) {
    (as_of, Inputs::gather(p, org).current_rows(packs, as_of))
}

/// Every row (current and peak) of every pack and unit at `as_of`.
pub(crate) fn watch_rows(
    p: &At<'_>,
    packs: &[RulePack],
    org: Option<&OrgId>,
    as_of: Date,
) -> Vec<ThresholdStatus> {
    Inputs::gather(p, org).rows(packs, as_of)
}

/// What the watch reads of the projection: the separations, steps and site events borrowed
/// from it (nothing copied), and the population indexed once. The alert loop gathers them from
/// its own copy of the state, off the fold's lock (see `follow::Alerts`).
pub(crate) struct Inputs<'a> {
    inputs: wfl_projections::views::WatchInputs<'a>,
    /// Indexed once: the watch asks the population once per window and sample.
    population: PopulationIndex<'a>,
}

impl<'a> Inputs<'a> {
    /// The watch's inputs for `org` (every org when `None`) as `p` reads them.
    pub(crate) fn gather(p: &At<'a>, org: Option<&OrgId>) -> Self {
        Self::from_parts(p.watch_inputs(org), PopulationIndex::at(p, org))
    }

    /// The inputs gathered apart (to time each part).
    pub(crate) fn from_parts(
        inputs: wfl_projections::views::WatchInputs<'a>,
        population: PopulationIndex<'a>,
    ) -> Self {
        Self { inputs, population }
    }

    /// Every row (current and peak) of every pack and unit at `as_of`.
    pub(crate) fn rows(self, packs: &[RulePack], as_of: Date) -> Vec<ThresholdStatus> {
        let population = Basis::new(self.population);
        rules::evaluate(
            packs,
            &self.inputs.separations,
            &self.inputs.steps,
            &self.inputs.site_events,
            &population,
            as_of,
        )
    }

    /// The *current* rows only, which alerts are about (see [`threshold_watch`]).
    #[cfg(test)]
    pub(crate) fn current_rows(self, packs: &[RulePack], as_of: Date) -> Vec<ThresholdStatus> {
        let mut rows = self.rows(packs, as_of);
        rows.retain(|s| s.role == rules::WindowRole::Current);
        rows
    }
}

/// The population the watch reads in the projector: the views' [`PopulationIndex`], plus the
/// look-back maximum (`max_over_days`, Cal-WARN coverage) as the largest indexed answer over the
/// days of the look-back, each day asked once per evaluation.
///
/// The index honours `jurisdiction_prefix` (NY coverage counts workers at sites whose events
/// state a `US-NY` code) and both limbs of WARN part-time (`part_time_below_weekly_hours` from the
/// hire's average weekly hours, `part_time_below_months_of_12` from the hire date or a baseline
/// load's months), and answers [`Population::worker`] from each worker's stints, so the counts
/// apply the same tests to separations, temporary layoffs and hours cuts that do not state them.
struct Basis<'a> {
    index: PopulationIndex<'a>,
    /// Headcount at the end of one day, by the query's other fields (Debug form).
    days: std::cell::RefCell<std::collections::BTreeMap<String, u64>>,
}

impl<'a> Basis<'a> {
    fn new(index: PopulationIndex<'a>) -> Self {
        Self {
            index,
            days: std::cell::RefCell::default(),
        }
    }

    fn on_day(&self, q: &wfl_projections::PopulationQuery) -> u64 {
        let key = format!("{q:?}");
        if let Some(n) = self.days.borrow().get(&key) {
            return *n;
        }
        let n = self.index.headcount(q);
        self.days.borrow_mut().insert(key, n);
        n
    }
}

impl Population for Basis<'_> {
    fn worker(
        &self,
        org: &OrgId,
        worker: &wfl_domain::WorkerRef,
        on: Date,
    ) -> Option<wfl_projections::WorkerProfile> {
        self.index.worker(org, worker, on)
    }

    fn headcount(&self, q: &wfl_projections::PopulationQuery) -> u64 {
        let Some(n) = q.max_over_days else {
            return self.index.headcount(q);
        };
        let mut day = wfl_projections::PopulationQuery {
            max_over_days: None,
            ..q.clone()
        };
        let mut most = 0;
        for k in 0..=i32::try_from(n).unwrap_or(i32::MAX / 2) {
            day.on = q.on.add_days(-k);
            most = most.max(self.on_day(&day));
        }
        most
    }
}

/// The most events an alert lists per list (its counts give the totals): an alert is one NATS
/// message, which must fit the server's payload limit (1 MiB by default) whatever the window's
/// size; the rest come from `ThresholdWatch` with the alert's `window_key` and `with_event_ids`.
pub(crate) const ALERT_LISTED: usize = 1_000;

/// An alert's body: the status as JSON, each list of events cut to [`ALERT_LISTED`], with
/// `event_count`, `excluded_count` and `notice_only_count` giving the full lengths.
pub(crate) fn alert_body(mut s: ThresholdStatus) -> serde_json::Result<Vec<u8>> {
    #[derive(serde::Serialize)]
    struct Body<'a> {
        #[serde(flatten)]
        status: &'a ThresholdStatus,
        event_count: usize,
        excluded_count: usize,
        notice_only_count: usize,
    }
    let (event_count, excluded_count, notice_only_count) =
        (s.event_ids.len(), s.excluded.len(), s.notice_only.len());
    s.event_ids.truncate(ALERT_LISTED);
    s.excluded.truncate(ALERT_LISTED);
    s.notice_only.truncate(ALERT_LISTED);
    for step in &mut s.steps {
        step.effective_too_early.truncate(ALERT_LISTED);
    }
    serde_json::to_vec(&Body {
        status: &s,
        event_count,
        excluded_count,
        notice_only_count,
    })
}

/// The wire form of a status: its lists of events cut to what `listed` gives them, their full
/// `lengths` always.
fn status_pb(s: ThresholdStatus, lengths: &Lengths, listed: &Listed) -> pb::ThresholdStatus {
    let ids = |ids: &[wfl_domain::EventId], k: usize| -> Vec<String> {
        ids.iter().take(k).map(ToString::to_string).collect()
    };
    pb::ThresholdStatus {
        event_count: lengths.counted as u64,
        excluded_count: lengths.excluded as u64,
        notice_only_count: lengths.notice_only as u64,
        pack: s.pack,
        org_id: s.org.0,
        unit: s.unit,
        window: s.window,
        window_start: s.window_start.to_string(),
        window_end: s.window_end.to_string(),
        count_type: s.count_type.as_str().to_owned(),
        count: s.count,
        event_ids: ids(&s.event_ids, listed.counted),
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
        role: s.role.as_str().to_owned(),
        window_key: s.window_key,
        unit_kind: s.unit_kind.as_str().to_owned(),
        count_date: s.count_date.as_str().to_owned(),
        excluded: s
            .excluded
            .into_iter()
            .take(listed.excluded)
            .map(|x| pb::ThresholdExcluded {
                event_id: x.event_id.to_string(),
                reason: x.reason,
            })
            .collect(),
        gate: s.gate.map(|g| pb::ThresholdGate {
            strict_workers: g.strict_workers,
            min_strict: g.min_strict,
            open: g.open,
        }),
        steps: s
            .steps
            .into_iter()
            .zip(listed.steps.iter().copied())
            .zip(lengths.steps.iter().copied())
            .map(|((c, k), length)| pb::ThresholdStep {
                step: c.step,
                event_type: c.event_type.as_str().to_owned(),
                plan: c.plan.unwrap_or_default(),
                first_separation: c.first_separation.to_string(),
                due_by: c.due_by.to_string(),
                state: match c.state {
                    StepState::OnTime => "on_time",
                    StepState::Late => "late",
                    StepState::Missing => "missing",
                }
                .to_owned(),
                event_id: c.event_id.map(|e| e.to_string()).unwrap_or_default(),
                days_late: c.days_late,
                earliest_effective: c
                    .earliest_effective
                    .map(|d| d.to_string())
                    .unwrap_or_default(),
                effective_too_early_event_ids: ids(&c.effective_too_early, k),
                effective_too_early_count: length as u64,
            })
            .collect(),
        floor_only: s.floor_only,
        notice_only_event_ids: ids(&s.notice_only, listed.notice_only),
        site_event_id: s.site_event.map(|e| e.to_string()).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    //! Given/when/then for the glue: the default evaluation day and the alert rows.

    use super::*;
    use wfl_domain::{
        ContractType, EconomicDismissal, EmploymentRelationship, Event, EventId,
        EvidenceConfidence, Initiator, Payload, SiteId, Source, WorkerHired, WorkerRef,
    };
    use wfl_projections::rules::WindowRole;

    fn on(n: i32) -> Date {
        Date::from_days(20_500 + n)
    }

    fn event(n: u128, day: i32, payload: Payload) -> Event {
        Event {
            event_id: id(n),
            org_id: OrgId("acme".into()),
            site_id: SiteId("hz".into()),
            jurisdiction: "CN".into(),
            effective_date: on(day),
            source: Source::default(),
            correlation_id: Some("PLAN-1".into()),
            causation_id: None,
            schema_version: 1,
            evidence_confidence: EvidenceConfidence::Reported,
            expected_version: None,
            payload,
        }
    }

    fn id(n: u128) -> EventId {
        serde_json::from_value(serde_json::json!(format!(
            "00000000-0000-7000-8000-{n:012x}"
        )))
        .expect("a uuid")
    }

    fn worker(k: usize) -> WorkerRef {
        WorkerRef(format!("w{k}"))
    }

    /// Worker `k` on the books from the start (a baseline load, open-ended).
    fn baseline_hire(k: usize) -> Payload {
        Payload::WorkerHired(WorkerHired {
            worker_ref: worker(k),
            employment_relationship: EmploymentRelationship::Employee,
            contract_type: ContractType::OpenEnded,
            cohort: None,
            position_id: None,
            baseline: true,
            avg_weekly_hours: None,
            months_employed_last_12: None,
            contract_end: None,
        })
    }

    /// Worker `k` dismissed for economic reasons under CN LCL Art. 41, the post closed.
    fn economic_dismissal(k: usize) -> Payload {
        Payload::EconomicDismissal(Box::new(EconomicDismissal {
            separation: wfl_domain::Separation {
                worker_ref: worker(k),
                employment_relationship: EmploymentRelationship::Employee,
                contract_type: ContractType::OpenEnded,
                cohort: None,
                position_id: None,
                position_closed: true,
                backfill_status: Default::default(),
                initiator: Initiator::Employer,
                reason_personal: false,
                legal_ground: Some("CN-LCL-41".into()),
                ai_attributed: Default::default(),
                ai_system: None,
                tenure_months: None,
                protected_flags: Vec::new(),
                severance: None,
                notice_given_on: None,
                avg_weekly_hours: None,
                months_employed_last_12: None,
                contract_end: None,
            },
            selection_criteria: None,
            plan_id: None,
        }))
    }

    /// Given 30 hires and 25 dismissals recorded ahead of time (effective 100 days after the
    /// hires), when no as_of_date is asked, then the watch is evaluated at the latest effective
    /// date in the ledger (not the wall clock), so the planned reduction is met; the alert rows
    /// are the current windows only.
    #[test]
    fn default_day_is_the_latest_effective_date_so_planned_layoffs_show() {
        let mut p = Projection::new();
        let mut seq = 0;
        let mut n = 0;
        let mut rec = |p: &mut Projection, day: i32, payload: Payload| {
            seq += 1;
            n += 1;
            p.apply(seq, &event(n, day, payload));
        };
        for k in 0..30 {
            rec(&mut p, 0, baseline_hire(k));
        }
        for k in 0..25 {
            rec(&mut p, 100, economic_dismissal(k));
        }
        let packs = rules::parse(
            "CN-LCL-41.toml",
            include_str!("../../../rulepacks/CN-LCL-41.toml"),
        )
        .expect("the shipped CN pack parses");
        let request = Request {
            as_of_date: None,
            packs: Vec::new(),
            org: None,
            alerts_only: false,
            window_keys: Vec::new(),
            count_types: Vec::new(),
            with_event_ids: false,
        };
        let (as_of, rows) = evaluate(&p.now(), &request, std::slice::from_ref(&packs));
        assert_eq!(as_of, on(100));
        assert_eq!(
            default_as_of(&p.now(), Some(&OrgId("acme".into()))),
            on(100)
        );
        let strict_plan = rows
            .iter()
            .find(|s| {
                s.window == "plan"
                    && s.count_type == rules::CountType::Strict
                    && s.role == WindowRole::Current
            })
            .expect("a current plan row");
        assert_eq!(strict_plan.count, 25);
        assert_eq!(strict_plan.level, Some(AlertLevel::Met));
        // A status's wire form and an alert carry their events' counts; the lists are bounded
        // (none on the wire unless asked, ALERT_LISTED in an alert).
        let mut big = strict_plan.clone();
        big.event_ids = (0..5_000).map(|k| id(100_000 + k)).collect();
        let body: serde_json::Value =
            serde_json::from_slice(&alert_body(big.clone()).expect("serialisable")).expect("JSON");
        assert_eq!(body["count"], 25);
        assert_eq!(body["event_count"], 5_000);
        assert_eq!(
            body["event_ids"].as_array().map(Vec::len),
            Some(ALERT_LISTED)
        );
        big.excluded = (0..3_000)
            .map(|k| rules::Excluded {
                event_id: id(200_000 + k),
                reason: "excluded".into(),
            })
            .collect();
        let none = Listed::share(std::iter::once(&big), 0);
        let counted = status_pb(big.clone(), &Lengths::of(&big), &none[0]);
        assert_eq!((counted.event_count, counted.event_ids.len()), (5_000, 0));
        assert_eq!((counted.excluded_count, counted.excluded.len()), (3_000, 0));
        // One budget for the whole answer, the counted events of every status first.
        let two = [big.clone(), big.clone()];
        let shares = Listed::share(two.iter(), 11_000);
        assert_eq!(
            shares
                .iter()
                .map(|l| (l.counted, l.excluded))
                .collect::<Vec<_>>(),
            [(5_000, 1_000), (5_000, 0)]
        );
        // Kept for later answers, its lists are cut to what one answer can list, and every
        // answer from it is the answer the whole status gives.
        let mut long = big.clone();
        long.event_ids = (0..25_000).map(|k| id(300_000 + k)).collect();
        long.excluded = (0..12_000)
            .map(|k| rules::Excluded {
                event_id: id(400_000 + k),
                reason: "excluded".into(),
            })
            .collect();
        long.notice_only = (0..11_000).map(|k| id(500_000 + k)).collect();
        let kept = Kept::cut(&long);
        assert_eq!(kept.status.event_ids.len(), MAX_LISTED);
        assert_eq!(kept.status.excluded.len(), MAX_LISTED);
        assert_eq!(kept.status.notice_only.len(), MAX_LISTED);
        assert!(!kept.is_whole() && Kept::whole(long.clone()).is_whole());
        // A short status beside it, whole when cut.
        let mut short = big.clone();
        short.event_ids.truncate(3);
        short.window_key = "short".into();
        assert!(Kept::cut(&short).is_whole());
        let both = |k: Kept| vec![Kept::cut(&short), k];
        for (with_event_ids, window_keys) in [
            (false, vec![]),
            (true, vec![long.window_key.clone()]),
            (true, vec!["short".to_owned(), long.window_key.clone()]),
        ] {
            let request = Request {
                as_of_date: None,
                packs: Vec::new(),
                org: None,
                alerts_only: false,
                window_keys,
                count_types: Vec::new(),
                with_event_ids,
            };
            let day = Date::from_days(20_000);
            let from_kept = response(1, day, both(kept.clone()), &request);
            assert_eq!(
                from_kept,
                response(1, day, both(Kept::whole(long.clone())), &request)
            );
            let long_status = from_kept.statuses.last().expect("the long status");
            assert_eq!(
                (
                    long_status.event_count,
                    long_status.excluded_count,
                    long_status.notice_only_count
                ),
                (25_000, 12_000, 11_000)
            );
        }
        let first = status_pb(big.clone(), &Lengths::of(&big), &shares[0]);
        assert_eq!(
            (first.event_ids.len(), first.excluded.len()),
            (5_000, 1_000)
        );
        assert!(rows.iter().any(|s| s.role == WindowRole::Peak));

        let (_, alerts) = threshold_watch(&p.now(), std::slice::from_ref(&packs), None, as_of);
        assert!(!alerts.is_empty());
        assert!(alerts.iter().all(|s| s.role == WindowRole::Current));
        let keys: std::collections::BTreeSet<_> = alerts
            .iter()
            .map(|s| (&s.unit, &s.window_key, s.count_type))
            .collect();
        assert_eq!(keys.len(), alerts.len(), "one alert key per row");
    }

    /// Given two orgs' hires and dismissals interleaved in the ledger, when one org's watch is
    /// evaluated over a copy of that org alone (`copy_in_parts` with the org, as
    /// `ThresholdWatch` and `Explain` of a threshold figure do for a caller of one org), then
    /// its rows are the rows the whole state gives for that org, and the copy holds none of
    /// the other org's events.
    #[test]
    fn one_orgs_watch_over_its_own_copy_is_the_watch_over_the_whole_state() {
        let orgs = [OrgId("acme".into()), OrgId("globex".into())];
        // Each org's 30 hires then its 25 dismissals (the second org's a few days later),
        // the two taking turns in runs of 7 events.
        let mut per_org: Vec<Vec<(i32, Payload)>> = Vec::new();
        for shift in [0, 3] {
            let mut events: Vec<(i32, Payload)> =
                (0..30).map(|k| (shift, baseline_hire(k))).collect();
            events.extend((0..25).map(|k| (100 + shift, economic_dismissal(k))));
            per_org.push(events);
        }
        let mut p = Projection::new();
        let mut n = 0;
        for chunk in 0..8 {
            for (org, events) in orgs.iter().zip(&per_org) {
                for (day, payload) in events.iter().skip(chunk * 7).take(7) {
                    n += 1;
                    let mut e = event(n, *day, payload.clone());
                    e.org_id = org.clone();
                    p.apply(n as u64, &e);
                }
            }
        }
        let packs = [rules::parse(
            "CN-LCL-41.toml",
            include_str!("../../../rulepacks/CN-LCL-41.toml"),
        )
        .expect("the shipped CN pack parses")];
        for org in &orgs {
            assert_eq!(p.org_events(org), Some(55));
            let (copy, _) = crate::copy_in_parts(|| &p, Some(org));
            assert_eq!(copy.entry_count(), 55);
            let as_of = default_as_of(&p.now(), Some(org));
            assert_eq!(default_as_of(&copy.now(), Some(org)), as_of);
            let whole = watch_rows(&p.now(), &packs, Some(org), as_of);
            assert!(
                whole.iter().any(|s| s.level == Some(AlertLevel::Met)),
                "{org}"
            );
            assert_eq!(
                watch_rows(&copy.now(), &packs, Some(org), as_of),
                whole,
                "{org}"
            );
        }
    }

    /// Cal-WARN §1400.5(a) "employs or has employed in the preceding 12 months": the projector's
    /// population answers the look-back with the largest headcount of the year, from the index.
    #[test]
    fn look_back_is_the_largest_headcount_of_the_period() {
        let mut p = Projection::new();
        let mut n = 0;
        let mut rec = |p: &mut Projection, day: i32, payload: Payload| {
            n += 1;
            p.apply(n as u64, &event(n, day, payload));
        };
        for k in 0..80 {
            rec(&mut p, 0, baseline_hire(k));
        }
        for k in 0..20 {
            rec(
                &mut p,
                100,
                Payload::Resignation(Box::new(wfl_domain::Resignation {
                    separation: wfl_domain::Separation {
                        worker_ref: worker(k),
                        employment_relationship: EmploymentRelationship::Employee,
                        contract_type: ContractType::OpenEnded,
                        cohort: None,
                        position_id: None,
                        position_closed: false,
                        backfill_status: Default::default(),
                        initiator: Initiator::Employee,
                        reason_personal: false,
                        legal_ground: None,
                        ai_attributed: Default::default(),
                        ai_system: None,
                        tenure_months: None,
                        protected_flags: Vec::new(),
                        severance: None,
                        notice_given_on: None,
                        avg_weekly_hours: None,
                        months_employed_last_12: None,
                        contract_end: None,
                    },
                    regrettable: false,
                    pressured: false,
                })),
            );
        }
        let basis = Basis::new(PopulationIndex::new(&p, None));
        let q = wfl_projections::PopulationQuery {
            org: OrgId("acme".into()),
            site: Some(SiteId("hz".into())),
            on: on(200),
            exclude_relationships: Vec::new(),
            exclude_contract_types: Vec::new(),
            jurisdiction_prefix: None,
            max_over_days: None,
            part_time_below_weekly_hours: None,
            part_time_below_months_of_12: None,
        };
        assert_eq!(basis.headcount(&q), 60);
        let year = wfl_projections::PopulationQuery {
            max_over_days: Some(365),
            ..q.clone()
        };
        assert_eq!(basis.headcount(&year), 80);
        assert_eq!(
            basis.headcount(&year),
            p.population(&year),
            "same as the projection"
        );
    }

    /// Given a 200-person Ohio site (10 averaging 12 hours a week) where 60 are dismissed and the
    /// site then closes, when the projector evaluates the federal WARN pack over its projection,
    /// then the basis leaves the part-time workers out (190: 20 CFR 639.3(h), hours limb through
    /// the `PopulationIndex`), so 60 is short of 33% (63), but the SiteClosed reaches the watch
    /// and the plant-closing threshold applies: 50 at a shut site (29 USC 2101(a)(2)).
    #[test]
    fn the_watch_sees_site_closings_and_part_time_hours_from_the_projection() {
        let mut p = Projection::new();
        let mut seq = 0;
        let mut rec = |p: &mut Projection, day: i32, payload: Payload| {
            seq += 1;
            let mut e = event(u128::from(seq), day, payload);
            e.site_id = SiteId("ohio-1".into());
            e.jurisdiction = "US-OH".into();
            e.correlation_id = None;
            p.apply(seq, &e);
            e.event_id
        };
        for k in 0..200 {
            rec(
                &mut p,
                0,
                Payload::WorkerHired(WorkerHired {
                    worker_ref: worker(k),
                    employment_relationship: EmploymentRelationship::Employee,
                    contract_type: ContractType::OpenEnded,
                    cohort: None,
                    position_id: None,
                    baseline: true,
                    avg_weekly_hours: Some(if k < 10 { 12 } else { 40 }),
                    months_employed_last_12: None,
                    contract_end: None,
                }),
            );
        }
        for k in 10..70 {
            rec(
                &mut p,
                100,
                Payload::EconomicDismissal(Box::new(EconomicDismissal {
                    separation: wfl_domain::Separation {
                        worker_ref: worker(k),
                        employment_relationship: EmploymentRelationship::Employee,
                        contract_type: ContractType::OpenEnded,
                        cohort: None,
                        position_id: None,
                        position_closed: true,
                        backfill_status: Default::default(),
                        initiator: Initiator::Employer,
                        reason_personal: false,
                        legal_ground: None,
                        ai_attributed: Default::default(),
                        ai_system: None,
                        tenure_months: None,
                        protected_flags: Vec::new(),
                        severance: None,
                        notice_given_on: None,
                        avg_weekly_hours: None,
                        months_employed_last_12: None,
                        contract_end: None,
                    },
                    selection_criteria: None,
                    plan_id: None,
                })),
            );
        }
        let packs = [rules::parse(
            "US-WARN-FED.toml",
            include_str!("../../../rulepacks/US-WARN-FED.toml"),
        )
        .expect("the shipped federal pack parses")];
        let strict = |rows: &[ThresholdStatus]| {
            rows.iter()
                .find(|s| {
                    s.window == "rolling-30"
                        && s.count_type == rules::CountType::Strict
                        && s.role == WindowRole::Current
                })
                .cloned()
                .expect("a current strict row")
        };
        let before = strict(&watch_rows(&p.now(), &packs, None, on(100)));
        assert_eq!((before.count, before.denominator), (60, 190));
        assert_eq!((before.threshold, before.site_event), (63, None));

        let closed = rec(
            &mut p,
            110,
            Payload::SiteClosed(wfl_domain::SiteClosed {
                operating_unit: None,
                temporary: false,
            }),
        );
        let after = strict(&watch_rows(&p.now(), &packs, None, on(110)));
        assert_eq!(after.threshold, 50);
        assert_eq!(after.level, Some(AlertLevel::Met));
        assert_eq!(after.site_event, Some(closed));
    }
}
