//! The worker lifecycle and the other state checks of `LedgerState::decide`, written as
//! given (committed events) / when (a new event) / then (accepted or the conflict).

mod common;

use common::*;
use wfl_domain::{Conflict, OrgId, WorkerRef};

// ---------------------------------------------------------------------------------------------
// Hire and separate
// ---------------------------------------------------------------------------------------------

#[test]
fn a_hired_worker_can_be_separated() {
    let g = given(&[ev(ORG, hire("w1"))]);
    then_ok(g.when(&ev(ORG, resign("w1"))));
}

#[test]
fn separating_a_worker_never_hired_is_refused() {
    let g = given(&[]);
    then_lifecycle(g.when(&ev(ORG, resign("w1"))), "never hired");
}

#[test]
fn the_never_hired_conflict_names_the_event_type_the_worker_and_the_org() {
    let g = given(&[]);
    then_lifecycle(
        g.when(&ev(ORG, resign("w1"))),
        "Resignation needs an employed worker",
    );
    then_lifecycle(g.when(&ev(ORG, resign("w1"))), "worker w1");
    then_lifecycle(g.when(&ev(ORG, resign("w1"))), "in org acme");
}

#[test]
fn separating_a_worker_twice_is_refused() {
    let g = given(&[ev(ORG, hire("w1")), ev(ORG, resign("w1"))]);
    then_lifecycle(g.when(&ev(ORG, resign("w1"))), "already separated");
}

#[test]
fn hiring_a_worker_already_employed_is_refused() {
    let g = given(&[ev(ORG, hire("w1"))]);
    then_lifecycle(g.when(&ev(ORG, hire("w1"))), "already employed");
}

#[test]
fn a_separated_worker_can_be_hired_again() {
    let g = given(&[ev(ORG, hire("w1")), ev(ORG, resign("w1"))]);
    then_ok(g.when(&ev(ORG, hire("w1"))));
}

#[test]
fn a_rehired_worker_can_be_separated_again() {
    let g = given(&[
        ev(ORG, hire("w1")),
        ev(ORG, resign("w1")),
        ev(ORG, hire("w1")),
    ]);
    assert!(g.employed("w1"));
    then_ok(g.when(&ev(ORG, resign("w1"))));
}

#[test]
fn a_worker_the_ledger_has_never_seen_can_be_loaded_in_the_baseline() {
    let g = given(&[]);
    then_ok(g.when(&ev(ORG, baseline("w1"))));
}

#[test]
fn a_baseline_worker_is_employed_and_can_be_separated() {
    let g = given(&[ev(ORG, baseline("w1"))]);
    assert!(g.employed("w1"));
    then_ok(g.when(&ev(ORG, resign("w1"))));
}

#[test]
fn a_baseline_load_of_an_employed_worker_is_refused() {
    let g = given(&[ev(ORG, hire("w1"))]);
    then_lifecycle(g.when(&ev(ORG, baseline("w1"))), "already has history");
}

#[test]
fn a_baseline_load_of_a_separated_worker_is_refused() {
    let g = given(&[ev(ORG, hire("w1")), ev(ORG, resign("w1"))]);
    then_lifecycle(g.when(&ev(ORG, baseline("w1"))), "already has history");
}

#[test]
fn a_separated_worker_is_not_employed_and_not_counted() {
    let acme = OrgId::from(ORG);
    let g = given(&[
        ev(ORG, hire("w1")),
        ev(ORG, hire("w2")),
        ev(ORG, baseline("w3")),
        ev(ORG, resign("w2")),
    ]);
    assert!(g.employed("w1"));
    assert!(!g.employed("w2"));
    assert!(g.employed("w3"));
    assert!(!g.employed("never-seen"));
    assert_eq!(g.state.headcount(&acme), 2);
}

#[test]
fn every_separation_kind_ends_employment() {
    for separation in every_separation("w1") {
        let kind = separation.event_type();
        let mut g = given(&[ev(ORG, hire("w1"))]);
        let event = ev(ORG, separation);

        then_ok(g.when(&event));
        g.commit(&event);

        assert!(!g.employed("w1"), "{kind} should end employment");
        then_lifecycle(g.when(&ev(ORG, resign("w1"))), "already separated");
    }
}

#[test]
fn every_separation_kind_needs_an_employed_worker() {
    let g = given(&[]);
    for separation in every_separation("w1") {
        let kind = separation.event_type();
        then_lifecycle(
            g.when(&ev(ORG, separation)),
            &format!("{kind} needs an employed worker"),
        );
    }
}

#[test]
fn an_automated_role_without_a_separation_needs_no_worker() {
    let g = given(&[]);
    then_ok(g.when(&ev(ORG, role_automated("claims-handler"))));
}

#[test]
fn an_automated_role_with_a_separation_needs_an_employed_worker() {
    let g = given(&[]);
    then_lifecycle(g.when(&ev(ORG, role_automated_with("w1"))), "never hired");
}

#[test]
fn changes_to_an_employed_worker_are_accepted_and_keep_them_employed() {
    for touch in every_touch("w1") {
        let kind = touch.event_type();
        let mut g = given(&[ev(ORG, hire("w1"))]);
        let event = ev(ORG, touch);

        then_ok(g.when(&event));
        g.commit(&event);

        assert!(g.employed("w1"), "{kind} should keep the worker employed");
        then_lifecycle(g.when(&ev(ORG, hire("w1"))), "already employed");
    }
}

#[test]
fn changes_to_a_worker_never_hired_are_refused() {
    let g = given(&[]);
    for touch in every_touch("w1") {
        then_lifecycle(g.when(&ev(ORG, touch)), "never hired");
    }
}

#[test]
fn changes_to_a_separated_worker_are_refused() {
    let g = given(&[ev(ORG, hire("w1")), ev(ORG, resign("w1"))]);
    for touch in every_touch("w1") {
        then_lifecycle(g.when(&ev(ORG, touch)), "already separated");
    }
}

#[test]
fn the_same_worker_ref_in_two_orgs_is_two_workers() {
    let g = given(&[ev(ORG, hire("w1"))]);

    // Employed in ACME says nothing about Globex.
    then_lifecycle(g.when(&ev(OTHER_ORG, resign("w1"))), "never hired");
    then_ok(g.when(&ev(OTHER_ORG, hire("w1"))));
    then_ok(g.when(&ev(OTHER_ORG, baseline("w1"))));

    // And separating in Globex leaves ACME alone.
    let g = given(&[
        ev(ORG, hire("w1")),
        ev(OTHER_ORG, hire("w1")),
        ev(OTHER_ORG, resign("w1")),
    ]);
    assert!(g.employed("w1"));
    assert!(!g
        .state
        .is_employed(&OrgId::from(OTHER_ORG), &WorkerRef::from("w1")));
    assert_eq!(g.state.headcount(&OrgId::from(ORG)), 1);
    assert_eq!(g.state.headcount(&OrgId::from(OTHER_ORG)), 0);
    then_ok(g.when(&ev(ORG, resign("w1"))));
}

#[test]
fn events_that_name_no_worker_need_no_state() {
    let g = given(&[]);
    let original = next_id();
    for payload in samples("w1", original) {
        if payload.worker_effect().is_some()
            || matches!(
                payload.event_type(),
                wfl_domain::EventType::EventCorrected
                    | wfl_domain::EventType::EventRetracted
                    | wfl_domain::EventType::PositionBackfilled
                    | wfl_domain::EventType::PositionClosed
            )
        {
            continue;
        }
        let kind = payload.event_type();
        assert!(
            g.when(&ev(ORG, payload)).is_ok(),
            "{kind} should be accepted on an empty ledger"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// expected_version
// ---------------------------------------------------------------------------------------------

#[test]
fn the_version_counts_the_events_naming_the_worker() {
    let mut g = given(&[]);
    assert_eq!(g.version("w1"), 0);
    for (n, payload) in [
        hire("w1"),
        hours_cut("w1", 40, 30),
        layoff("w1"),
        resign("w1"),
        hire("w1"),
    ]
    .into_iter()
    .enumerate()
    {
        g.commit(&expecting(n as u64, ev(ORG, payload)));
        assert_eq!(g.version("w1"), n as u64 + 1);
    }
}

#[test]
fn a_hire_expects_version_zero() {
    let g = given(&[]);
    then_ok(g.when(&expecting(0, ev(ORG, hire("w1")))));
}

#[test]
fn a_separation_after_a_hire_expects_version_one() {
    let g = given(&[ev(ORG, hire("w1"))]);
    then_ok(g.when(&expecting(1, ev(ORG, resign("w1")))));
}

#[test]
fn a_stale_expected_version_is_a_version_conflict() {
    let g = given(&[ev(ORG, hire("w1")), ev(ORG, hours_cut("w1", 40, 30))]);
    assert_eq!(
        g.when(&expecting(1, ev(ORG, resign("w1")))),
        Err(Conflict::Version {
            worker: "w1".to_owned(),
            expected: 1,
            actual: 2
        })
    );
}

#[test]
fn an_expected_version_ahead_of_the_stream_is_a_version_conflict() {
    let g = given(&[]);
    assert_eq!(
        g.when(&expecting(3, ev(ORG, hire("w1")))),
        Err(Conflict::Version {
            worker: "w1".to_owned(),
            expected: 3,
            actual: 0
        })
    );
}

#[test]
fn the_version_conflict_is_reported_before_the_lifecycle_conflict() {
    // Both wrong: the worker was never hired and the version is off.
    let g = given(&[]);
    assert!(matches!(
        g.when(&expecting(5, ev(ORG, resign("w1")))),
        Err(Conflict::Version {
            expected: 5,
            actual: 0,
            ..
        })
    ));
}

#[test]
fn the_version_conflict_message_names_the_worker_and_both_versions() {
    let g = given(&[ev(ORG, hire("w1"))]);
    let conflict = g.when(&expecting(0, ev(ORG, resign("w1")))).unwrap_err();
    assert_eq!(
        conflict.to_string(),
        "expected version 0 for worker w1, but the stream is at version 1"
    );
}

#[test]
fn versions_are_per_worker_and_per_org() {
    let g = given(&[
        ev(ORG, hire("w1")),
        ev(ORG, resign("w1")),
        ev(ORG, hire("w2")),
    ]);
    assert_eq!(g.version("w1"), 2);
    assert_eq!(g.version("w2"), 1);
    assert_eq!(
        g.state
            .version(&OrgId::from(OTHER_ORG), &WorkerRef::from("w1")),
        0
    );
    then_ok(g.when(&expecting(0, ev(OTHER_ORG, hire("w1")))));
}

#[test]
fn corrections_and_retractions_do_not_count_towards_the_version() {
    let h = ev(ORG, hire("w1"));
    let cut = ev(ORG, hours_cut("w1", 40, 30));
    let g = given(&[
        h.clone(),
        cut.clone(),
        ev(ORG, correct(&cut, hours_cut("w1", 40, 20))),
        ev(ORG, retract(&cut)),
    ]);
    assert_eq!(g.version("w1"), 2);
}

// ---------------------------------------------------------------------------------------------
// Corrections
// ---------------------------------------------------------------------------------------------

#[test]
fn a_correction_keeping_type_and_worker_is_accepted() {
    let h = ev(ORG, hire("w1"));
    let g = given([&h]);
    then_ok(g.when(&ev(ORG, correct(&h, baseline("w1")))));
}

#[test]
fn a_separation_can_be_corrected_with_other_details() {
    let r = ev(ORG, resign("w1"));
    let g = given(&[ev(ORG, hire("w1")), r.clone()]);
    let pressured = wfl_domain::Payload::Resignation(Box::new(wfl_domain::Resignation {
        separation: sep("w1"),
        regrettable: true,
        pressured: true,
    }));
    then_ok(g.when(&ev(ORG, correct(&r, pressured))));
}

#[test]
fn correcting_an_event_not_in_the_ledger_is_refused() {
    let never_committed = ev(ORG, hire("w1"));
    let g = given(&[]);
    then_lifecycle(
        g.when(&ev(ORG, correct(&never_committed, hire("w1")))),
        "is not in the ledger",
    );
}

#[test]
fn a_correction_cannot_change_the_event_type() {
    let r = ev(ORG, resign("w1"));
    let g = given(&[ev(ORG, hire("w1")), r.clone()]);
    then_lifecycle(
        g.when(&ev(ORG, correct(&r, dismissal_of(sep("w1"))))),
        "a correction keeps the event type",
    );
}

#[test]
fn a_correction_cannot_change_the_worker() {
    let h = ev(ORG, hire("w1"));
    let g = given([&h]);
    then_lifecycle(
        g.when(&ev(ORG, correct(&h, hire("w2")))),
        "cannot change the worker",
    );
}

#[test]
fn a_correction_cannot_add_or_drop_the_separated_worker_of_an_automated_role() {
    let without = ev(ORG, role_automated("claims-handler"));
    let with = ev(ORG, role_automated_with("w1"));
    let g = given(&[without.clone(), ev(ORG, hire("w1")), with.clone()]);
    then_lifecycle(
        g.when(&ev(ORG, correct(&without, role_automated_with("w1")))),
        "cannot change the worker",
    );
    then_lifecycle(
        g.when(&ev(ORG, correct(&with, role_automated("claims-handler")))),
        "cannot change the worker",
    );
}

#[test]
fn correcting_a_retracted_event_is_refused() {
    let cut = ev(ORG, hours_cut("w1", 40, 30));
    let g = given(&[ev(ORG, hire("w1")), cut.clone(), ev(ORG, retract(&cut))]);
    then_lifecycle(
        g.when(&ev(ORG, correct(&cut, hours_cut("w1", 40, 20)))),
        "has been retracted",
    );
}

#[test]
fn correcting_another_orgs_event_is_refused() {
    let h = ev(OTHER_ORG, hire("w1"));
    let g = given([&h]);
    then_lifecycle(
        g.when(&ev(ORG, correct(&h, hire("w1")))),
        "belongs to another org",
    );
}

#[test]
fn a_corrected_event_can_be_corrected_again() {
    let cut = ev(ORG, hours_cut("w1", 40, 30));
    let g = given(&[
        ev(ORG, hire("w1")),
        cut.clone(),
        ev(ORG, correct(&cut, hours_cut("w1", 40, 20))),
    ]);
    then_ok(g.when(&ev(ORG, correct(&cut, hours_cut("w1", 40, 25)))));
}

// ---------------------------------------------------------------------------------------------
// Retractions
// ---------------------------------------------------------------------------------------------

#[test]
fn retracting_the_latest_separation_makes_the_worker_employed_again() {
    let r = ev(ORG, resign("w1"));
    let mut g = given(&[ev(ORG, hire("w1")), r.clone()]);
    let retraction = ev(ORG, retract(&r));

    then_ok(g.when(&retraction));
    g.commit(&retraction);

    assert!(g.employed("w1"));
    then_ok(g.when(&ev(ORG, dismissal_of(sep("w1")))));
    then_ok(g.when(&ev(ORG, hours_cut("w1", 40, 30))));
    then_lifecycle(g.when(&ev(ORG, hire("w1"))), "already employed");
}

#[test]
fn retracting_a_hire_makes_the_worker_not_employed() {
    let h = ev(ORG, hire("w1"));
    let mut g = given([&h]);
    let retraction = ev(ORG, retract(&h));

    then_ok(g.when(&retraction));
    g.commit(&retraction);

    assert!(!g.employed("w1"));
    assert_eq!(g.state.headcount(&OrgId::from(ORG)), 0);
    then_lifecycle(g.when(&ev(ORG, resign("w1"))), "needs an employed worker");
    then_ok(g.when(&ev(ORG, hire("w1"))));
}

#[test]
fn retracting_a_baseline_load_makes_the_worker_not_employed() {
    let b = ev(ORG, baseline("w1"));
    let g = given(&[b.clone(), ev(ORG, retract(&b))]);
    assert!(!g.employed("w1"));
}

#[test]
fn retracting_a_lifecycle_event_that_is_not_the_latest_is_refused() {
    let h = ev(ORG, hire("w1"));
    let g = given(&[h.clone(), ev(ORG, resign("w1"))]);
    then_lifecycle(
        g.when(&ev(ORG, retract(&h))),
        "is not worker w1's latest hire or separation",
    );
}

#[test]
fn retracting_an_earlier_separation_after_a_rehire_is_refused() {
    let r = ev(ORG, resign("w1"));
    let g = given(&[ev(ORG, hire("w1")), r.clone(), ev(ORG, hire("w1"))]);
    then_lifecycle(g.when(&ev(ORG, retract(&r))), "latest hire or separation");
}

#[test]
fn a_change_to_the_worker_can_be_retracted_at_any_time() {
    let cut = ev(ORG, hours_cut("w1", 40, 30));
    let g = given(&[ev(ORG, hire("w1")), cut.clone(), ev(ORG, resign("w1"))]);
    then_ok(g.when(&ev(ORG, retract(&cut))));
}

#[test]
fn retracting_a_change_leaves_employment_as_it_was() {
    let cut = ev(ORG, hours_cut("w1", 40, 30));
    let g = given(&[ev(ORG, hire("w1")), cut.clone(), ev(ORG, retract(&cut))]);
    assert!(g.employed("w1"));
}

#[test]
fn retracting_a_retraction_is_refused() {
    let cut = ev(ORG, hours_cut("w1", 40, 30));
    let retraction = ev(ORG, retract(&cut));
    let g = given(&[ev(ORG, hire("w1")), cut.clone(), retraction.clone()]);
    then_lifecycle(
        g.when(&ev(ORG, retract(&retraction))),
        "a retraction cannot be retracted",
    );
}

#[test]
fn retracting_an_event_twice_is_refused() {
    let cut = ev(ORG, hours_cut("w1", 40, 30));
    let g = given(&[ev(ORG, hire("w1")), cut.clone(), ev(ORG, retract(&cut))]);
    then_lifecycle(g.when(&ev(ORG, retract(&cut))), "has been retracted");
}

#[test]
fn retracting_an_event_not_in_the_ledger_is_refused() {
    let g = given(&[]);
    then_lifecycle(
        g.when(&ev(ORG, retract_id(next_id()))),
        "is not in the ledger",
    );
}

#[test]
fn retracting_another_orgs_event_is_refused() {
    let h = ev(OTHER_ORG, hire("w1"));
    let g = given([&h]);
    then_lifecycle(g.when(&ev(ORG, retract(&h))), "belongs to another org");
}

#[test]
fn a_retraction_in_another_org_leaves_this_org_alone() {
    let theirs = ev(OTHER_ORG, hire("w1"));
    let g = given(&[
        ev(ORG, hire("w1")),
        theirs.clone(),
        ev(OTHER_ORG, retract(&theirs)),
    ]);
    assert!(g.employed("w1"));
}

#[test]
fn after_a_retraction_only_a_new_lifecycle_event_can_be_retracted() {
    let h = ev(ORG, hire("w1"));
    let r = ev(ORG, resign("w1"));
    let g = given(&[h.clone(), r.clone(), ev(ORG, retract(&r))]);
    // The hire before the retracted separation is not tracked any more.
    then_lifecycle(g.when(&ev(ORG, retract(&h))), "latest hire or separation");

    let again = ev(ORG, resign("w1"));
    let g = given(&[h, r.clone(), ev(ORG, retract(&r)), again.clone()]);
    then_ok(g.when(&ev(ORG, retract(&again))));
}

#[test]
fn a_correction_can_be_retracted() {
    let cut = ev(ORG, hours_cut("w1", 40, 30));
    let correction = ev(ORG, correct(&cut, hours_cut("w1", 40, 20)));
    let g = given(&[ev(ORG, hire("w1")), cut, correction.clone()]);
    then_ok(g.when(&ev(ORG, retract(&correction))));
}

// ---------------------------------------------------------------------------------------------
// Position links
// ---------------------------------------------------------------------------------------------

#[test]
fn a_position_change_may_name_no_separation() {
    let g = given(&[]);
    then_ok(g.when(&ev(ORG, backfilled(None))));
    then_ok(g.when(&ev(ORG, closed(None))));
}

#[test]
fn a_position_change_linking_an_unknown_event_is_refused() {
    let g = given(&[]);
    for payload in [backfilled(Some(next_id())), closed(Some(next_id()))] {
        then_lifecycle(g.when(&ev(ORG, payload)), "is not in the ledger");
    }
}

#[test]
fn a_position_change_linking_a_non_separation_is_refused() {
    let h = ev(ORG, hire("w1"));
    let g = given([&h]);
    for payload in [backfilled(Some(h.event_id)), closed(Some(h.event_id))] {
        then_lifecycle(
            g.when(&ev(ORG, payload)),
            "is a WorkerHired, not a separation",
        );
    }
}

#[test]
fn a_position_change_linking_an_automated_role_that_separated_no_one_is_refused() {
    // RoleAutomated is a separation only when it names a worker (see `is_separation`).
    let automated = ev(ORG, role_automated("claims-handler"));
    let g = given([&automated]);
    for payload in [
        backfilled(Some(automated.event_id)),
        closed(Some(automated.event_id)),
    ] {
        then_lifecycle(g.when(&ev(ORG, payload)), "not a separation");
    }
}

#[test]
fn a_position_change_linking_a_separation_is_accepted() {
    for separation in every_separation("w1") {
        let kind = separation.event_type();
        let s = ev(ORG, separation);
        let g = given(&[ev(ORG, hire("w1")), s.clone()]);
        for payload in [backfilled(Some(s.event_id)), closed(Some(s.event_id))] {
            let link = payload.event_type();
            assert!(
                g.when(&ev(ORG, payload)).is_ok(),
                "{link} should accept a link to a {kind}"
            );
        }
    }
}

#[test]
fn a_position_change_linking_a_retracted_separation_is_refused() {
    let r = ev(ORG, resign("w1"));
    let g = given(&[ev(ORG, hire("w1")), r.clone(), ev(ORG, retract(&r))]);
    then_lifecycle(
        g.when(&ev(ORG, backfilled(Some(r.event_id)))),
        "has been retracted",
    );
}

#[test]
fn a_position_change_linking_another_orgs_separation_is_refused() {
    let r = ev(OTHER_ORG, resign("w1"));
    let g = given(&[ev(OTHER_ORG, hire("w1")), r.clone()]);
    then_lifecycle(
        g.when(&ev(ORG, closed(Some(r.event_id)))),
        "belongs to another org",
    );
}

// ---------------------------------------------------------------------------------------------
// Determinism
// ---------------------------------------------------------------------------------------------

#[test]
fn replaying_the_same_events_rebuilds_the_same_state() {
    let h = ev(ORG, hire("w1"));
    let r = ev(ORG, resign("w1"));
    let events = [
        h,
        r.clone(),
        ev(ORG, retract(&r)),
        ev(ORG, hire("w2")),
        ev(OTHER_ORG, baseline("w1")),
        ev(ORG, backfilled(None)),
    ];
    assert_eq!(given(&events).state, given(&events).state);
}

// ---------------------------------------------------------------------------------------------
// What apply_tracked reports (the ledger stores exactly that with each batch)
// ---------------------------------------------------------------------------------------------

/// Decides and applies `event` as [`Given::commit`] does, noting what it changed in `changed`.
fn commit_tracked(
    g: &mut Given,
    changed: &mut wfl_domain::lifecycle::Changed,
    event: &wfl_domain::Event,
) {
    g.when(event).expect("accepted");
    g.history
        .0
        .insert(event.event_id, wfl_domain::OriginalEvent::of(event));
    g.state.apply_tracked(event, &g.history, changed);
}

#[test]
fn apply_tracked_notes_each_worker_it_writes_once_and_folds_like_apply() {
    let events = [
        ev(ORG, hire("w1")),
        ev(ORG, hire("w2")),
        ev(ORG, resign("w1")),
        ev("beta", hire("w1")),
    ];
    let plain = given(&events);
    let mut tracked = given(&[]);
    let mut changed = wfl_domain::lifecycle::Changed::default();
    for e in &events {
        commit_tracked(&mut tracked, &mut changed, e);
    }
    assert_eq!(
        tracked.state, plain.state,
        "tracking does not change the fold"
    );
    let mut workers: Vec<_> = changed
        .workers()
        .map(|(o, w)| (o.as_str().to_owned(), w.as_str().to_owned()))
        .collect();
    workers.sort();
    assert_eq!(
        workers,
        [(ORG, "w1"), (ORG, "w2"), ("beta", "w1")].map(|(o, w)| (o.to_owned(), w.to_owned()))
    );
    assert_eq!(changed.retracted().count(), 0);
    assert!(std::mem::take(&mut changed) != wfl_domain::lifecycle::Changed::default());
    assert!(changed.is_empty());
}

#[test]
fn a_retraction_notes_the_retracted_id_and_the_worker_it_changes() {
    let hired = ev(ORG, hire("w1"));
    let resigned = ev(ORG, resign("w1"));
    let mut g = given([&hired, &resigned]);
    let mut changed = wfl_domain::lifecycle::Changed::default();
    let retraction = ev(
        ORG,
        wfl_domain::Payload::EventRetracted(wfl_domain::EventRetracted {
            original_event_id: resigned.event_id,
            reason: "recorded in error".to_owned(),
        }),
    );
    commit_tracked(&mut g, &mut changed, &retraction);
    assert!(g.employed("w1"));
    assert_eq!(
        changed.workers().collect::<Vec<_>>(),
        vec![(&OrgId::from(ORG), &WorkerRef::from("w1"))]
    );
    assert_eq!(
        changed.retracted().collect::<Vec<_>>(),
        vec![&resigned.event_id]
    );
    assert!(g.state.is_retracted(&resigned.event_id));
}
