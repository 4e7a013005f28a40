//! Threshold watch: strict, assimilated and shadow counts per rule pack, unit and window, against
//! the threshold at the pack's headcount basis, with the procedure steps still missing.
//!
//! [`evaluate`] is a pure function of its inputs (no clock: `as_of` is passed in). It works on
//! separations with their position links already resolved and on a [`Population`] oracle, so it
//! does not depend on how the views are stored. Every number it applies comes from the packs.
//!
//! Reading the output: a strict count is the statute's own count; an assimilated count adds exits
//! that are dismissals in substance (an analytic reading unless the pack says the law assimilates
//! them); a shadow count is an economic reduction of comparable size and is **never** a legal
//! finding. None of it is legal advice.

use super::pack::{segment_prefix, Confidence, LawStatus, MatchRule, RulePack, Window, WindowKind};
use crate::{Population, PopulationQuery};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::BTreeMap;
use wfl_domain::{AiAttribution, Date, Event, EventId, EventType, OrgId, Payload, SiteId};

/// A status is `Approaching` once the count reaches this percentage of the threshold (a product
/// setting, not a legal number).
pub const APPROACHING_PERCENT: u64 = 80;

/// The label every shadow status carries.
pub const SHADOW_LABEL: &str =
    "economic reduction comparable in size to a collective dismissal (not a legal finding)";

/// The most days any shift may move a date; keeps arithmetic on [`Date`] far from overflow.
const MAX_SHIFT_DAYS: i64 = 1_000_000;

/// A separation (or a WARN-relevant long temporary layoff or deep hours cut) as the watch sees it.
#[derive(Debug, Clone, Copy)]
pub struct Separation<'a> {
    pub event_id: EventId,
    pub org: &'a OrgId,
    pub site: &'a SiteId,
    pub jurisdiction: &'a str,
    /// Future-dated (after `as_of`) means planned.
    pub effective_date: Date,
    pub payload: &'a Payload,
    /// The position is closed, after `PositionClosed` links.
    pub position_closed: bool,
    /// The position was back-filled, after `PositionBackfilled` links.
    pub backfilled: bool,
    pub correlation_id: Option<&'a str>,
}

impl<'a> Separation<'a> {
    /// The watch's view of `event`, or `None` if it separates nobody (and is not a temporary
    /// layoff or an hours cut). The caller resolves position links.
    #[must_use]
    pub fn from_event(event: &'a Event, position_closed: bool, backfilled: bool) -> Option<Self> {
        countable_payload(&event.payload).then_some(Self {
            event_id: event.event_id,
            org: &event.org_id,
            site: &event.site_id,
            jurisdiction: &event.jurisdiction,
            effective_date: event.effective_date,
            payload: &event.payload,
            position_closed,
            backfilled,
            correlation_id: event.correlation_id.as_deref(),
        })
    }
}

/// A procedure step taken: union briefed, authority reported, WARN notice filed.
#[derive(Debug, Clone, Copy)]
pub struct ComplianceStep<'a> {
    pub event_id: EventId,
    pub org: &'a OrgId,
    pub site: &'a SiteId,
    pub kind: EventType,
    pub plan_id: &'a str,
    pub effective_date: Date,
}

impl<'a> ComplianceStep<'a> {
    /// The step `event` records, or `None` if it is not a compliance event.
    #[must_use]
    pub fn from_event(event: &'a Event) -> Option<Self> {
        let step = match &event.payload {
            Payload::UnionBriefed(s)
            | Payload::AuthorityReported(s)
            | Payload::WarnNoticeFiled(s) => s,
            _ => return None,
        };
        Some(Self {
            event_id: event.event_id,
            org: &event.org_id,
            site: &event.site_id,
            kind: event.event_type(),
            plan_id: &step.plan_id,
            effective_date: event.effective_date,
        })
    }
}

/// Which count a status reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CountType {
    /// As the statute counts.
    Strict,
    /// Strict plus dismissals in substance.
    Assimilated,
    /// Assimilated plus further economic reductions; not a legal count.
    Shadow,
}

impl CountType {
    /// Every count type, in reporting order.
    pub const ALL: &'static [CountType] =
        &[CountType::Strict, CountType::Assimilated, CountType::Shadow];

    /// The stable snake_case name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            CountType::Strict => "strict",
            CountType::Assimilated => "assimilated",
            CountType::Shadow => "shadow",
        }
    }
}

/// How close a count is to its threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertLevel {
    /// At least [`APPROACHING_PERCENT`] of the threshold.
    Approaching,
    /// At or above the threshold. For a shadow count this says only that the size is comparable.
    Met,
}

/// One row of the threshold watch: a pack, a unit, a window spec and a count type, reported at the
/// window with the most weight (met first, then the highest ratio, then the highest count, then the
/// earliest start).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThresholdStatus {
    pub pack: String,
    pub org: OrgId,
    /// The site id for site and establishment packs, the org id for legal-entity packs.
    pub unit: String,
    /// The pack's window name (`rolling-30`, `plan`...).
    pub window: String,
    pub window_start: Date,
    pub window_end: Date,
    pub count_type: CountType,
    pub count: u64,
    /// The counted events, by effective date then id.
    pub event_ids: Vec<EventId>,
    /// The headcount basis the threshold was measured at.
    pub denominator: u64,
    /// The count needed at that headcount; 0 when no threshold alternative applies.
    pub threshold: u64,
    /// `count / threshold`; 0 when no threshold applies.
    pub ratio: f64,
    /// `None` below the approaching level, when no threshold applies, or when the employer is below
    /// the pack's coverage test.
    pub level: Option<AlertLevel>,
    /// Required steps with no matching compliance event early enough (strict and assimilated only).
    pub missing_steps: Vec<String>,
    pub label: String,
}

/// Evaluates every pack against the separations in its jurisdictions, grouped by the pack's unit.
///
/// For each pack, unit (org, or org and site), window spec and count type it reports one
/// [`ThresholdStatus`], for the window with the most weight:
/// - rolling windows: every `days`-long window starting on a separation date (so any window that
///   contains a separation is considered, before or after it: CJEU C-300/19, 20 CFR 639.5);
/// - correlation windows: each group of separations sharing a `correlation_id`.
///
/// Separations dated after `as_of` are planned; a window counts them only up to its
/// `look_ahead_days` after `as_of`. Compliance steps dated after `as_of` have not happened. The
/// headcount basis is read from `population` with the pack's exclusions, at the end of the day
/// `days_before_first_separation` before the window's first counted separation (averaged when the
/// pack says so). Units with no separation in a pack's jurisdictions give no rows.
#[must_use]
pub fn evaluate(
    packs: &[RulePack],
    separations: &[Separation<'_>],
    steps: &[ComplianceStep<'_>],
    population: &dyn Population,
    as_of: Date,
) -> Vec<ThresholdStatus> {
    let mut out = Vec::new();
    for pack in packs {
        let mut units: BTreeMap<(OrgId, Option<SiteId>), Vec<Entry>> = BTreeMap::new();
        for s in separations {
            if !pack.applies_to(s.jurisdiction) || !countable_payload(s.payload) {
                continue;
            }
            if outside_population(pack, s) {
                continue;
            }
            let site = pack.unit.is_site().then(|| s.site.clone());
            units
                .entry((s.org.clone(), site))
                .or_default()
                .push(Entry::classify(pack, s));
        }
        for ((org, site), mut entries) in units {
            entries.sort_by_key(|a| (a.date, a.id));
            let mut unit = UnitEval {
                pack,
                org: &org,
                site: site.as_ref(),
                population,
                steps,
                as_of,
                cache: BTreeMap::new(),
            };
            for window in &pack.windows {
                unit.window(window, &entries, &mut out);
            }
        }
    }
    out
}

fn countable_payload(p: &Payload) -> bool {
    p.separation().is_some() || matches!(p, Payload::TemporaryLayoff(_) | Payload::HoursReduced(_))
}

fn outside_population(pack: &RulePack, s: &Separation<'_>) -> bool {
    s.payload.separation().is_some_and(|x| {
        pack.population
            .exclude_relationships
            .contains(&x.employment_relationship)
            || pack
                .population
                .exclude_contract_types
                .contains(&x.contract_type)
    })
}

/// One separation, classified for one pack.
#[derive(Debug)]
struct Entry {
    id: EventId,
    date: Date,
    correlation: Option<String>,
    strict: bool,
    /// Matches an assimilated rule (and is not excluded); strict entries may also set it.
    assimilated: bool,
    /// In the shadow count: strict, assimilated (ungated) or a shadow rule.
    shadow: bool,
}

impl Entry {
    fn classify(pack: &RulePack, s: &Separation<'_>) -> Self {
        let any = |rules: &[MatchRule]| rules.iter().any(|r| matches(r, s));
        let excluded = any(&pack.counts.exclude);
        let strict = !excluded && any(&pack.counts.strict);
        let assimilated = !excluded && any(&pack.counts.assimilated);
        let shadow = strict || assimilated || any(&pack.counts.shadow);
        Self {
            id: s.event_id,
            date: s.effective_date,
            correlation: s.correlation_id.map(str::to_owned),
            strict,
            assimilated,
            shadow,
        }
    }

    /// Could count for `ct` in some window (the assimilated gate is applied per window).
    fn candidate(&self, ct: CountType) -> bool {
        match ct {
            CountType::Strict => self.strict,
            CountType::Assimilated => self.strict || self.assimilated,
            CountType::Shadow => self.shadow,
        }
    }
}

fn matches(rule: &MatchRule, s: &Separation<'_>) -> bool {
    let p = s.payload;
    let sep = p.separation();
    (rule.event_types.is_empty() || rule.event_types.contains(&p.event_type()))
        && (rule.legal_ground_prefixes.is_empty()
            || sep
                .and_then(|x| x.legal_ground.as_deref())
                .is_some_and(|g| {
                    rule.legal_ground_prefixes
                        .iter()
                        .any(|pre| segment_prefix(pre, g))
                }))
        && (rule.initiators.is_empty()
            || sep.is_some_and(|x| rule.initiators.contains(&x.initiator)))
        && rule
            .reason_personal
            .is_none_or(|v| sep.is_some_and(|x| x.reason_personal == v))
        && rule.position_closed.is_none_or(|v| s.position_closed == v)
        && rule.backfilled.is_none_or(|v| s.backfilled == v)
        && rule
            .employee_refused
            .is_none_or(|v| matches!(p, Payload::ContractNotRenewed(c) if c.employee_refused) == v)
        && rule
            .pressured
            .is_none_or(|v| matches!(p, Payload::Resignation(r) if r.pressured) == v)
        && (rule.ai_attributed.is_empty()
            || sep.is_some_and(|x| rule.ai_attributed.contains(&ai_of(p, x.ai_attributed))))
        && (rule.contract_types.is_empty()
            || sep.is_some_and(|x| rule.contract_types.contains(&x.contract_type)))
        && rule.layoff_days_over.is_none_or(
            |n| matches!(p, Payload::TemporaryLayoff(t) if u64::from(t.expected_duration_days) > n),
        )
        && rule.hours_cut_pct_over.is_none_or(|n| {
            matches!(p, Payload::HoursReduced(h) if h.hours_before > 0
                && u128::from(h.hours_before.saturating_sub(h.hours_after)) * 100
                    > u128::from(n) * u128::from(h.hours_before))
        })
        && rule.hours_cut_months_at_least.is_none_or(
            |m| matches!(p, Payload::HoursReduced(h) if u64::from(h.expected_months) >= m),
        )
}

/// A role handed to AI counts as cited by the employer when the separation names no attribution.
fn ai_of(p: &Payload, given: AiAttribution) -> AiAttribution {
    match (p, given) {
        (Payload::RoleAutomated(_), AiAttribution::None) => AiAttribution::CitedByEmployer,
        _ => given,
    }
}

fn shift(d: Date, days: i64) -> Date {
    let n = days.clamp(-MAX_SHIFT_DAYS, MAX_SHIFT_DAYS);
    d.add_days(i32::try_from(n).unwrap_or(0))
}

/// One candidate window, judged for one count type.
#[derive(Debug)]
struct Judged<'e> {
    start: Date,
    end: Date,
    counted: Vec<&'e Entry>,
    denominator: u64,
    need: u64,
    covered: bool,
}

impl Judged<'_> {
    fn count(&self) -> u64 {
        self.counted.len() as u64
    }

    fn met(&self) -> bool {
        self.covered && self.need > 0 && self.count() >= self.need
    }

    /// Met first, then ratio, then count; ties keep the earlier candidate.
    fn beats(&self, other: &Self) -> bool {
        let ratio = |j: &Self, k: &Self| -> u128 {
            if j.need == 0 {
                0
            } else {
                u128::from(j.count()) * u128::from(k.need.max(1))
            }
        };
        self.met()
            .cmp(&other.met())
            .then_with(|| ratio(self, other).cmp(&ratio(other, self)))
            .then_with(|| self.count().cmp(&other.count()))
            == Ordering::Greater
    }
}

struct UnitEval<'p, 'u> {
    pack: &'p RulePack,
    org: &'u OrgId,
    site: Option<&'u SiteId>,
    population: &'u dyn Population,
    steps: &'u [ComplianceStep<'u>],
    as_of: Date,
    /// Headcount by (whole entity?, day), for this pack's exclusions.
    cache: BTreeMap<(bool, Date), u64>,
}

impl UnitEval<'_, '_> {
    fn window(&mut self, window: &Window, entries: &[Entry], out: &mut Vec<ThresholdStatus>) {
        let horizon = shift(self.as_of, window.look_ahead_days);
        let eligible: Vec<&Entry> = entries.iter().filter(|e| e.date <= horizon).collect();
        if eligible.is_empty() {
            return;
        }
        // Candidate windows as (start, end, members sorted by date).
        let candidates: Vec<(Date, Date, Vec<&Entry>)> = match window.kind {
            WindowKind::Rolling => {
                let days = window.days.unwrap_or(1).max(1);
                let mut starts: Vec<Date> = eligible.iter().map(|e| e.date).collect();
                starts.dedup();
                starts
                    .into_iter()
                    .map(|start| {
                        let end = shift(start, days - 1);
                        let lo = eligible.partition_point(|e| e.date < start);
                        let hi = eligible.partition_point(|e| e.date <= end);
                        (start, end, eligible[lo..hi].to_vec())
                    })
                    .collect()
            }
            WindowKind::Correlation => {
                let mut groups: BTreeMap<&str, Vec<&Entry>> = BTreeMap::new();
                for e in &eligible {
                    if let Some(c) = e.correlation.as_deref() {
                        groups.entry(c).or_default().push(e);
                    }
                }
                let mut c: Vec<(Date, Date, Vec<&Entry>)> = groups
                    .into_values()
                    .filter_map(|m| {
                        let start = m.first()?.date;
                        let end = m.last()?.date;
                        Some((start, end, m))
                    })
                    .collect();
                c.sort_by_key(|(start, end, _)| (*start, *end));
                c
            }
        };
        if candidates.is_empty() {
            return;
        }
        for &ct in CountType::ALL {
            let any_candidate = eligible.iter().any(|e| e.candidate(ct));
            let mut best: Option<Judged<'_>> = None;
            for (start, end, members) in &candidates {
                // Rolling windows start on a separation this count could include, when there is
                // one, so that the reported start is a counted date.
                if window.kind == WindowKind::Rolling
                    && any_candidate
                    && !members
                        .iter()
                        .take_while(|e| e.date == *start)
                        .any(|e| e.candidate(ct))
                {
                    continue;
                }
                let judged = self.judge(ct, *start, *end, members);
                if best.as_ref().is_none_or(|b| judged.beats(b)) {
                    best = Some(judged);
                }
            }
            if let Some(b) = best {
                out.push(self.status(window, ct, b));
            }
        }
    }

    fn judge<'e>(
        &mut self,
        ct: CountType,
        start: Date,
        end: Date,
        members: &[&'e Entry],
    ) -> Judged<'e> {
        let counted: Vec<&Entry> = match ct {
            CountType::Strict => members.iter().copied().filter(|e| e.strict).collect(),
            CountType::Assimilated => {
                let strict = members.iter().filter(|e| e.strict).count() as u64;
                let open = self
                    .pack
                    .counts
                    .assimilated_gate
                    .as_ref()
                    .is_none_or(|g| strict >= g.min_strict);
                members
                    .iter()
                    .copied()
                    .filter(|e| e.strict || (open && e.assimilated))
                    .collect()
            }
            CountType::Shadow => members.iter().copied().filter(|e| e.shadow).collect(),
        };
        let reference = counted.first().map_or(start, |e| e.date);
        let basis = &self.pack.population;
        let snapshot = shift(reference, -basis.days_before_first_separation);
        let samples = u64::try_from(basis.average_samples.max(1)).unwrap_or(1);
        let mut sum: u128 = 0;
        for k in 0..samples {
            let step = i64::try_from(k)
                .unwrap_or(0)
                .saturating_mul(basis.sample_step_days);
            sum += u128::from(self.headcount(false, shift(snapshot, -step)));
        }
        let mean = (sum + u128::from(samples / 2)) / u128::from(samples);
        let denominator = u64::try_from(mean).unwrap_or(u64::MAX);
        let covered = match &self.pack.coverage {
            None => true,
            Some(c) => {
                let whole = matches!(c.scope, super::pack::CoverageScope::LegalEntity);
                let n = if whole || self.site.is_none() {
                    self.headcount(true, snapshot)
                } else {
                    denominator
                };
                n >= c.min_headcount
            }
        };
        Judged {
            start,
            end,
            counted,
            denominator,
            need: needed(self.pack, denominator),
            covered,
        }
    }

    fn headcount(&mut self, whole_entity: bool, on: Date) -> u64 {
        let site = if whole_entity {
            None
        } else {
            self.site.cloned()
        };
        let key = (site.is_none(), on);
        if let Some(n) = self.cache.get(&key) {
            return *n;
        }
        let n = self.population.headcount(&PopulationQuery {
            org: self.org.clone(),
            site,
            on,
            exclude_relationships: self.pack.population.exclude_relationships.clone(),
            exclude_contract_types: self.pack.population.exclude_contract_types.clone(),
        });
        self.cache.insert(key, n);
        n
    }

    fn status(&self, window: &Window, ct: CountType, j: Judged<'_>) -> ThresholdStatus {
        let count = j.count();
        let level = if !j.covered || j.need == 0 {
            None
        } else if count >= j.need {
            Some(AlertLevel::Met)
        } else if u128::from(count) * 100 >= u128::from(j.need) * u128::from(APPROACHING_PERCENT) {
            Some(AlertLevel::Approaching)
        } else {
            None
        };
        #[allow(clippy::cast_precision_loss)] // counts are far below 2^52
        let ratio = if j.need == 0 {
            0.0
        } else {
            count as f64 / j.need as f64
        };
        let missing_steps = match (ct, level) {
            (CountType::Strict | CountType::Assimilated, Some(_)) => {
                self.missing_steps(j.counted.first().map_or(j.start, |e| e.date))
            }
            _ => Vec::new(),
        };
        let label = match ct {
            CountType::Shadow => SHADOW_LABEL.to_owned(),
            CountType::Strict | CountType::Assimilated => {
                let mut l = if ct == CountType::Strict {
                    format!("{}: counted as the statute counts", self.pack.statute)
                } else {
                    format!(
                        "{}: assimilated: counted as a dismissal in substance",
                        self.pack.statute
                    )
                };
                if self.pack.status_of_law == LawStatus::DraftNotInForce {
                    l.push_str("; draft, not in force");
                }
                if window.heuristic {
                    l.push_str("; heuristic window, not statutory");
                } else if window.confidence != Confidence::Verified {
                    l.push_str("; window not verified");
                }
                if !j.covered {
                    l.push_str("; employer below the pack's coverage test");
                }
                if j.need == 0 {
                    l.push_str("; no threshold applies at this headcount");
                }
                l
            }
        };
        ThresholdStatus {
            pack: self.pack.id.clone(),
            org: self.org.clone(),
            unit: self
                .site
                .map_or_else(|| self.org.to_string(), ToString::to_string),
            window: window.name.clone(),
            window_start: j.start,
            window_end: j.end,
            count_type: ct,
            count,
            event_ids: j.counted.iter().map(|e| e.id).collect(),
            denominator: j.denominator,
            threshold: j.need,
            ratio,
            level,
            missing_steps,
            label,
        }
    }

    /// Required steps with no compliance event of this org (and site, for site units) dated on or
    /// before `as_of` and at least the lead time before `first`.
    fn missing_steps(&self, first: Date) -> Vec<String> {
        self.pack
            .procedure
            .iter()
            .filter(|req| {
                let latest = shift(first, -req.min_lead_days);
                !self.steps.iter().any(|s| {
                    s.kind == req.event_type
                        && s.org == self.org
                        && self.site.is_none_or(|site| s.site == site)
                        && s.effective_date <= self.as_of
                        && s.effective_date <= latest
                })
            })
            .map(|req| {
                format!(
                    "{}: {} at least {} days before {first}",
                    req.name, req.event_type, req.min_lead_days
                )
            })
            .collect()
    }
}

/// The smallest count that meets some alternative applicable at `headcount`; 0 if none applies.
fn needed(pack: &RulePack, headcount: u64) -> u64 {
    pack.thresholds
        .iter()
        .filter(|t| {
            t.headcount_min.is_none_or(|lo| headcount >= lo)
                && t.headcount_max.is_none_or(|hi| headcount <= hi)
        })
        .filter_map(|t| {
            let mut need: u64 = 1;
            if let Some(c) = t.count {
                need = need.max(if t.inclusive { c } else { c.saturating_add(1) });
            }
            if let Some(share) = t.share {
                if headcount == 0 {
                    return None;
                }
                // Shares are compared exactly, in parts per million.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let ppm = (share * 1e6).round() as u128;
                let product = ppm * u128::from(headcount);
                let by_share = if t.inclusive {
                    product.div_ceil(1_000_000)
                } else {
                    product / 1_000_000 + 1
                };
                need = need.max(u64::try_from(by_share).unwrap_or(u64::MAX));
            }
            Some(need)
        })
        .min()
        .unwrap_or(0)
}
