//! Measures `rules::evaluate` over synthetic ledgers of growing size (a measurement, not a test).
//!
//! `cargo run --release -p wfl-projections --example watch_cost -- 2000 8000 32000`
//!
//! Each size is that many economic dismissals at one site per jurisdiction (CN, US-OH, DE), one a
//! day in bursts of ten, evaluated against every shipped pack with a fixed headcount.

use std::path::Path;
use std::time::Instant;
use wfl_domain::{
    AiAttribution, ContractType, Date, EconomicDismissal, EmploymentRelationship, Event, EventId,
    EvidenceConfidence, Initiator, OrgId, Payload, SiteId, Source, WorkerRef,
};
use wfl_projections::rules::{self, Separation};
use wfl_projections::{Population, PopulationQuery};

struct Fixed(u64);

impl Population for Fixed {
    fn headcount(&self, _: &PopulationQuery) -> u64 {
        self.0
    }
}

fn event(n: usize, jurisdiction: &str, on: Date) -> Event {
    let id: EventId = serde_json::from_value(serde_json::json!(format!(
        "00000000-0000-7000-8000-{n:012x}"
    )))
    .unwrap_or_else(|_| EventId::new_v7());
    Event {
        event_id: id,
        org_id: OrgId("acme".into()),
        site_id: SiteId(format!("site-{jurisdiction}")),
        jurisdiction: jurisdiction.into(),
        effective_date: on,
        source: Source::default(),
        correlation_id: Some(format!("plan-{}", n / 500)),
        causation_id: None,
        schema_version: 1,
        evidence_confidence: EvidenceConfidence::Reported,
        expected_version: None,
        payload: Payload::EconomicDismissal(Box::new(EconomicDismissal {
            separation: wfl_domain::Separation {
                worker_ref: WorkerRef(format!("w{n}")),
                employment_relationship: EmploymentRelationship::Employee,
                contract_type: ContractType::OpenEnded,
                cohort: None,
                position_id: None,
                position_closed: true,
                backfill_status: Default::default(),
                initiator: Initiator::Employer,
                reason_personal: false,
                legal_ground: Some("CN-LCL-41".into()),
                ai_attributed: AiAttribution::None,
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
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rulepacks");
    let packs = rules::load_dir(&dir)?;
    let start = Date::parse("2020-01-01")?;
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    for n in if sizes.is_empty() { vec![1000] } else { sizes } {
        let events: Vec<Event> = (0..n)
            .flat_map(|k| {
                let on = start.add_days(i32::try_from(k / 10).unwrap_or(0));
                ["CN", "US-OH", "DE"].map(|j| event(k, j, on))
            })
            .collect();
        let seps: Vec<Separation<'_>> = events
            .iter()
            .filter_map(|e| Separation::from_event(e, true, false))
            .collect();
        let as_of = start.add_days(i32::try_from(n / 10).unwrap_or(0));
        let t = Instant::now();
        let rows = rules::evaluate(&packs, &seps, &[], &[], &Fixed(5000), as_of);
        println!(
            "{} separations, {} packs: {} rows in {:.1} ms",
            seps.len(),
            packs.len(),
            rows.len(),
            t.elapsed().as_secs_f64() * 1000.0
        );
    }
    Ok(())
}
