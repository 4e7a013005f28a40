//! A property test: over random sequences of hires, baseline loads, separations, changes and
//! retractions across a few workers in two orgs, `LedgerState::decide` accepts exactly what a
//! plain model of "who is employed" accepts, and the state it folds agrees with the model.

mod common;

use common::*;
use proptest::prelude::*;
use std::collections::HashMap;
use wfl_domain::{Conflict, EventId, OrgId, WorkerRef};

const ORGS: [&str; 2] = [ORG, OTHER_ORG];
const WORKERS: [&str; 3] = ["w1", "w2", "w3"];

#[derive(Debug, Clone, Copy)]
enum Op {
    Hire,
    Baseline,
    /// Index into `every_separation`.
    Separate(usize),
    /// Index into `every_touch`.
    Touch(usize),
    /// Retract the worker's most recent hire or separation.
    RetractLatest,
}

#[derive(Debug, Clone, Copy)]
struct Step {
    org: usize,
    worker: usize,
    op: Op,
    /// `Some(0)`: send the right `expected_version`; `Some(n)`: send one `n` ahead; `None`: none.
    version_skew: Option<u64>,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Hire),
        1 => Just(Op::Baseline),
        3 => (0..10usize).prop_map(Op::Separate),
        2 => (0..4usize).prop_map(Op::Touch),
        1 => Just(Op::RetractLatest),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    let skew = prop_oneof![4 => Just(None), 2 => Just(Some(0)), 1 => (1..3u64).prop_map(Some)];
    (0..ORGS.len(), 0..WORKERS.len(), op(), skew).prop_map(|(org, worker, op, version_skew)| Step {
        org,
        worker,
        op,
        version_skew,
    })
}

/// What the model knows about one worker of one org.
#[derive(Debug, Default)]
struct Model {
    /// Any event ever named this worker.
    seen: bool,
    employed: bool,
    /// Accepted events naming the worker.
    version: u64,
    /// The most recent hire or separation, and whether it was a hire.
    last_lifecycle: Option<(EventId, bool)>,
    /// Whether `last_lifecycle` may still be retracted.
    retractable: bool,
}

#[derive(Debug, PartialEq)]
enum Outcome {
    Accepted,
    Version,
    Lifecycle,
}

fn outcome(result: &Result<(), Conflict>) -> Outcome {
    match result {
        Ok(()) => Outcome::Accepted,
        Err(Conflict::Version { .. }) => Outcome::Version,
        Err(Conflict::Lifecycle(_)) => Outcome::Lifecycle,
    }
}

fn run(steps: &[Step]) -> Result<(), TestCaseError> {
    let mut g = given(&[]);
    let mut model: HashMap<(usize, usize), Model> = HashMap::new();

    for step in steps {
        let org = ORGS[step.org];
        let worker = WORKERS[step.worker];
        let m = model.entry((step.org, step.worker)).or_default();

        let payload = match step.op {
            Op::Hire => hire(worker),
            Op::Baseline => baseline(worker),
            Op::Separate(i) => every_separation(worker).swap_remove(i),
            Op::Touch(i) => every_touch(worker).swap_remove(i),
            Op::RetractLatest => match m.last_lifecycle {
                Some((id, _)) => retract_id(id),
                None => continue,
            },
        };
        let names_worker = payload.worker_effect().is_some();
        let mut event = ev(org, payload);
        if let (Some(skew), true) = (step.version_skew, names_worker) {
            event.expected_version = Some(m.version + skew);
        }
        prop_assert!(
            wfl_domain::validate(&event).is_ok(),
            "generated an invalid event: {event:?}"
        );

        let lifecycle_ok = match step.op {
            Op::Hire => !m.employed,
            Op::Baseline => !m.seen,
            Op::Separate(_) | Op::Touch(_) => m.employed,
            Op::RetractLatest => m.retractable,
        };
        let expected = if step.version_skew.unwrap_or(0) != 0 && names_worker {
            Outcome::Version
        } else if lifecycle_ok {
            Outcome::Accepted
        } else {
            Outcome::Lifecycle
        };
        let result = g.when(&event);
        prop_assert_eq!(
            outcome(&result),
            expected,
            "{:?} on {}/{}: {:?}",
            step,
            org,
            worker,
            result
        );
        if result.is_err() {
            continue;
        }

        g.commit(&event);
        if names_worker {
            m.seen = true;
            m.version += 1;
        }
        match step.op {
            Op::Hire | Op::Baseline => {
                m.employed = true;
                m.last_lifecycle = Some((event.event_id, true));
                m.retractable = true;
            }
            Op::Separate(_) => {
                m.employed = false;
                m.last_lifecycle = Some((event.event_id, false));
                m.retractable = true;
            }
            Op::Touch(_) => {}
            Op::RetractLatest => {
                let (_, was_hire) = m.last_lifecycle.expect("a retracted lifecycle event");
                m.employed = !was_hire;
                m.retractable = false;
            }
        }

        // The folded state agrees with the model for every worker, not only the one just changed.
        for (o, org) in ORGS.iter().enumerate() {
            let org_id = OrgId::from(*org);
            let mut headcount = 0;
            for (w, worker) in WORKERS.iter().enumerate() {
                let worker_ref = WorkerRef::from(*worker);
                let (employed, version) = model
                    .get(&(o, w))
                    .map_or((false, 0), |m| (m.employed, m.version));
                prop_assert_eq!(g.state.is_employed(&org_id, &worker_ref), employed);
                prop_assert_eq!(g.state.version(&org_id, &worker_ref), version);
                headcount += usize::from(employed);
            }
            prop_assert_eq!(g.state.headcount(&org_id), headcount);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn decide_accepts_exactly_what_the_employment_model_accepts(
        steps in prop::collection::vec(step(), 0..60)
    ) {
        run(&steps)?;
    }
}
