//! Synthetic event streams for `wfl load` and `wfl bench`: plain hires, or a restructuring mix
//! that exercises every view (hires over many sites and cohorts, non-renewals whose posts are
//! closed, economic dismissals, pressured resignations, position links, AI roll-outs and usage),
//! bare or with what a real HR export carries beside it (`wfl bench ingest`'s payloads).
//!
//! Owns only the generation: every batch is self-contained (a separation follows its own worker's
//! hire in the same batch, a link follows its separation), so batches may be committed in any
//! order, concurrently, and every event is one the ledger accepts. Must not send anything.

use wfl_domain::{
    AiAttribution, AiMetric, AiToolRolledOut, AiUsageMeasured, BackfillStatus, Cohort,
    ContractNotRenewed, ContractType, Date, EconomicDismissal, EmploymentRelationship, Event,
    EventId, EvidenceConfidence, Initiator, Money, OrgId, Payload, PositionChange, Resignation,
    Separation, SiteId, Source, WorkerHired, WorkerRef,
};

/// Which events a generator makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mix {
    /// Only hires, on one day at one site (the ingest path's cheapest event).
    Hires,
    /// Out of every 10 events: 6 hires, a non-renewal with its post closed, an economic dismissal
    /// or a pressured resignation, a `PositionClosed` link to the non-renewal, and an AI roll-out
    /// or usage measurement; dates over three years, 8 sites, 4 cohorts.
    Restructuring,
    /// [`Mix::Restructuring`] with what a real HR export carries beside it ([`enrich`]): the
    /// payloads of `wfl bench ingest` (341 B per encoded event there, with its 20-character org
    /// ids; the org id is in each event twice, so a shorter one makes them smaller).
    Realistic,
}

const SITES: [&str; 8] = [
    "sh-1", "sh-2", "bj-1", "bj-2", "gz-1", "sz-1", "hz-1", "cd-1",
];
const COHORTS: [Cohort; 4] = [
    Cohort::GraduateTrainee,
    Cohort::EntryLevel,
    Cohort::Experienced,
    Cohort::TemporaryProject,
];

/// Makes event `i` of a run (`run` makes worker refs unique across runs).
#[derive(Debug, Clone)]
pub struct Generator {
    pub mix: Mix,
    pub org: OrgId,
    pub run: String,
    start: Date,
}

impl Generator {
    /// A generator for `org`; `run` is any string unique to this run.
    ///
    /// # Errors
    /// Never in practice (the start date is a constant); kept fallible for the date constructor.
    pub fn new(mix: Mix, org: &str, run: &str) -> Result<Self, String> {
        Ok(Self {
            mix,
            org: OrgId::from(org),
            run: run.to_owned(),
            start: Date::from_ymd(2024, 1, 1).map_err(|e| e.to_string())?,
        })
    }

    /// Events `from..to`. With [`Mix::Restructuring`] and [`Mix::Realistic`], `from` and `to`
    /// should be multiples of 10 (a block of 10 is self-contained); a partial block keeps its
    /// leading hires only.
    #[must_use]
    pub fn events(&self, from: u64, to: u64) -> Vec<Event> {
        match self.mix {
            Mix::Hires => (from..to).map(|i| self.hire(i, false)).collect(),
            Mix::Restructuring | Mix::Realistic => {
                let mut out = Vec::with_capacity((to - from) as usize);
                let mut block = from - from % 10;
                while block < to {
                    for (k, mut e) in self.block(block / 10).into_iter().enumerate() {
                        let i = block + k as u64;
                        if i >= from && i < to {
                            if self.mix == Mix::Realistic {
                                enrich(&mut e, &self.run, i);
                            }
                            out.push(e);
                        }
                    }
                    block += 10;
                }
                out
            }
        }
    }

    fn envelope(&self, site: &str, date: Date, payload: Payload) -> Event {
        Event {
            event_id: EventId::new_v7(),
            org_id: self.org.clone(),
            site_id: SiteId::from(site),
            jurisdiction: "CN".into(),
            effective_date: date,
            source: Source {
                system: "wfl-load".into(),
                reference: String::new(),
            },
            correlation_id: None,
            causation_id: None,
            schema_version: wfl_domain::SCHEMA_VERSION,
            evidence_confidence: wfl_domain::EvidenceConfidence::Reported,
            expected_version: None,
            payload,
        }
    }

    fn worker(&self, n: u64) -> WorkerRef {
        WorkerRef(format!("{}-{n}", self.run))
    }

    fn hire(&self, worker: u64, spread: bool) -> Event {
        let (site, date, cohort) = if spread {
            (
                SITES[(worker % SITES.len() as u64) as usize],
                self.start.add_days((worker % 1000) as i32),
                Some(COHORTS[(worker / 3 % COHORTS.len() as u64) as usize]),
            )
        } else {
            ("load", self.start, None)
        };
        self.envelope(
            site,
            date,
            Payload::WorkerHired(WorkerHired {
                worker_ref: self.worker(worker),
                employment_relationship: EmploymentRelationship::Employee,
                contract_type: if worker.is_multiple_of(4) {
                    ContractType::FixedTerm
                } else {
                    ContractType::OpenEnded
                },
                cohort,
                position_id: None,
                baseline: false,
                avg_weekly_hours: None,
                months_employed_last_12: None,
                contract_end: None,
            }),
        )
    }

    fn separation(&self, worker: u64, initiator: Initiator, closed: bool) -> Separation {
        Separation {
            worker_ref: self.worker(worker),
            employment_relationship: EmploymentRelationship::Employee,
            contract_type: ContractType::FixedTerm,
            cohort: None,
            position_id: None,
            position_closed: closed,
            backfill_status: if closed {
                BackfillStatus::NotPlanned
            } else {
                BackfillStatus::Unknown
            },
            initiator,
            reason_personal: false,
            legal_ground: None,
            ai_attributed: if worker.is_multiple_of(5) {
                AiAttribution::CitedByEmployer
            } else {
                AiAttribution::None
            },
            ai_system: None,
            tenure_months: None,
            protected_flags: Vec::new(),
            severance: None,
            notice_given_on: None,
            avg_weekly_hours: None,
            months_employed_last_12: None,
            contract_end: None,
        }
    }

    /// Block `b`: events `10 b .. 10 b + 10`.
    fn block(&self, b: u64) -> Vec<Event> {
        let w = b * 6; // six new workers per block
        let mut out: Vec<Event> = (0..6).map(|k| self.hire(w + k, true)).collect();
        let hired = |k: u64| self.start.add_days(((w + k) % 1000) as i32);
        let site = |k: u64| SITES[((w + k) % SITES.len() as u64) as usize];

        let non_renewal = self.envelope(
            site(0),
            hired(0).add_days(90 + (b % 200) as i32),
            Payload::ContractNotRenewed(Box::new(ContractNotRenewed {
                separation: self.separation(w, Initiator::Employer, false),
                renewal_offered: false,
                offer_terms: None,
                employee_refused: false,
                would_trigger_open_ended: b.is_multiple_of(3),
                consecutive_fixed_terms: None,
            })),
        );
        let non_renewal_id = non_renewal.event_id;
        out.push(non_renewal);
        let second = if b.is_multiple_of(2) {
            Payload::EconomicDismissal(Box::new(EconomicDismissal {
                separation: self.separation(w + 1, Initiator::Employer, true),
                selection_criteria: None,
                plan_id: None,
            }))
        } else {
            Payload::Resignation(Box::new(Resignation {
                separation: self.separation(w + 1, Initiator::Employee, false),
                regrettable: false,
                pressured: b.is_multiple_of(3),
            }))
        };
        out.push(self.envelope(site(1), hired(1).add_days(60 + (b % 300) as i32), second));
        out.push(self.envelope(
            site(0),
            hired(0).add_days(120 + (b % 200) as i32),
            Payload::PositionClosed(PositionChange {
                position_id: format!("pos-{}-{w}", self.run),
                linked_separation_id: Some(non_renewal_id),
            }),
        ));
        let ai = if b.is_multiple_of(2) {
            Payload::AiToolRolledOut(AiToolRolledOut {
                tool: "assistant".into(),
                scope: format!("unit-{}", b % 50),
                mandatory: b.is_multiple_of(4),
            })
        } else {
            let period_start = self.start.add_days((b % 1000) as i32);
            Payload::AiUsageMeasured(AiUsageMeasured {
                scope: format!("unit-{}", b % 50),
                period_start,
                period_end: period_start.add_days(29),
                metric: AiMetric::ActiveUsers,
                value: 40 + b % 60,
                population: Some(120),
                used_in_performance_review: b.is_multiple_of(7),
            })
        };
        out.push(self.envelope(site(2), self.start.add_days((b % 1000) as i32), ai));
        out
    }
}

/// Fills in what a real HR export carries beside the load generator's minimum: the source
/// system and record reference, the restructuring plan the event belongs to, filed evidence;
/// for hires the position, weekly hours and the agreed end of a fixed-term contract; for
/// separations the position, legal ground, tenure, notice date, hours, severance and the AI
/// system cited; for AI events a named tool. Every enriched event stays one the ledger accepts.
/// A `PositionClosed` is caused by the separation it links.
pub fn enrich(e: &mut Event, run: &str, i: u64) {
    let org = e.org_id.0.clone();
    e.source = Source {
        system: "workday-cn-prod".into(),
        reference: format!("WD-{}-{}-{i:07}", e.event_type().as_str(), e.effective_date),
    };
    e.correlation_id = Some(format!(
        "plan:{org}:2024-east-region-restructuring-wave-{}",
        i / 500 + 1
    ));
    e.causation_id = Some(format!(
        "workday:business-process:{}-request:{i:08}",
        e.event_type().field_name()
    ));
    e.evidence_confidence = EvidenceConfidence::Filed;
    let date = e.effective_date;
    let position = format!("POS-{}-{run}-{i:06}", e.site_id.0.to_uppercase());
    let separation = |s: &mut wfl_domain::Separation, ground: &str, employer: bool| {
        s.position_id = Some(position.clone());
        s.legal_ground = Some(ground.into());
        s.tenure_months = Some(6 + (i % 90) as u32);
        s.notice_given_on = Some(date.add_days(-30));
        s.avg_weekly_hours = Some(40);
        s.months_employed_last_12 = Some(12);
        if s.contract_type != ContractType::OpenEnded {
            s.contract_end = Some(date);
        }
        if employer {
            s.severance = Some(Money {
                amount_minor: 1_250_000 + (i as i64 % 97) * 10_000,
                currency: "CNY".into(),
            });
        }
        if s.ai_attributed != AiAttribution::None {
            s.ai_system = Some("hr-copilot-screening-v3".into());
        }
    };
    match &mut e.payload {
        Payload::WorkerHired(h) => {
            h.position_id = Some(position.clone());
            h.avg_weekly_hours = Some(40);
            h.months_employed_last_12 = Some(0);
            if h.contract_type != ContractType::OpenEnded {
                h.contract_end = Some(date.add_days(3 * 365));
            }
        }
        Payload::ContractNotRenewed(c) => separation(&mut c.separation, "CN-LCL-44-1", true),
        Payload::EconomicDismissal(d) => {
            separation(&mut d.separation, "CN-LCL-41", true);
            d.selection_criteria = Some("seniority-and-performance-matrix".into());
        }
        Payload::Resignation(r) => separation(&mut r.separation, "CN-LCL-37", false),
        Payload::AiToolRolledOut(a) => a.tool = "hr-copilot-screening-v3".into(),
        Payload::PositionClosed(p) => {
            if let Some(linked) = p.linked_separation_id {
                e.causation_id = Some(linked.to_string());
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wfl_testkit::decide::Decider;

    #[test]
    fn every_restructuring_event_is_one_the_ledger_accepts() {
        let g = Generator::new(Mix::Restructuring, "acme", "t").expect("a generator");
        let mut ledger = Decider::default();
        // Two overlapping ranges: a partial block keeps its leading hires only.
        let events = g.events(0, 200);
        assert_eq!(events.len(), 200);
        assert_eq!(g.events(200, 205).len(), 5);
        for e in &events {
            ledger.accept(e);
        }
    }

    #[test]
    fn realistic_events_are_the_restructuring_mix_enriched_and_accepted() {
        let plain = Generator::new(Mix::Restructuring, "acme", "t").expect("a generator");
        let rich = Generator::new(Mix::Realistic, "acme", "t").expect("a generator");
        let (plain, rich) = (plain.events(0, 200), rich.events(0, 200));
        let mut ledger = Decider::default();
        for (p, r) in plain.iter().zip(&rich) {
            assert_eq!(p.event_type(), r.event_type());
            assert_eq!(
                (&p.org_id, &p.site_id, p.effective_date),
                (&r.org_id, &r.site_id, r.effective_date)
            );
            assert_eq!(r.source.system, "workday-cn-prod");
            assert!(r.correlation_id.is_some());
            if let Payload::PositionClosed(link) = &r.payload {
                let linked = link.linked_separation_id.expect("a link");
                assert_eq!(r.causation_id, Some(linked.to_string()));
            }
            ledger.accept(r);
        }
        // A later range is enriched by its own positions (the index of each event).
        let later = Generator::new(Mix::Realistic, "acme", "t").expect("a generator");
        let later = later.events(190, 200);
        assert_eq!(later[0].source.reference, rich[190].source.reference);
    }
}
