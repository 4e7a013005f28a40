//! Projections end to end through `wfl up`: events recorded over gRPC show up in the views and the
//! threshold watch (the domain-rules.md §7.2 worked example), `wfl report` prints them, answers
//! name their ledger sequence, and a SIGKILLed node resumes without double counting.

mod common;

use std::process::Command;

use common::{record_batch, Mode, Node};
use wfl_domain::{
    AiAttribution, ContractNotRenewed, ContractType, Date, Event, Initiator,
    MutualTerminationEmployerProposed, Payload, Resignation, RoleAutomated, SiteId,
};
use wfl_proto::pb;
use wfl_testkit::scenario;

const ORG: &str = "cn-entity";

fn at(mut e: Event, day: i32) -> Event {
    e.site_id = SiteId::from("hz-1");
    e.jurisdiction = "CN-33".into();
    e.effective_date = Date::from_ymd(2026, 3, 1).expect("date").add_days(day);
    e
}

/// 1,200 staff, then over 60 days: 8 AI dismissals (Art. 40(3)), 15 employer-proposed mutual
/// terminations, 30 employer-declined non-renewals with the post closed, 25 resignations not
/// back-filled.
fn worked_example() -> (Vec<Event>, Vec<Event>) {
    let baseline: Vec<Event> = (0..1200)
        .map(|i| at(scenario::baseline(ORG, &format!("w-{i}")), -400))
        .collect();
    let mut exits = Vec::new();
    let mut worker = 0;
    let mut next = || {
        worker += 1;
        let mut s = scenario::separation(&format!("w-{worker}"));
        s.initiator = Initiator::Employer;
        s
    };
    for i in 0..8 {
        let mut s = next();
        s.legal_ground = Some("CN-LCL-40-3".into());
        s.ai_attributed = AiAttribution::CitedByEmployer;
        s.ai_system = Some("route-planner".into());
        let p = Payload::RoleAutomated(Box::new(RoleAutomated {
            role_id: format!("role-{i}"),
            ai_system: "route-planner".into(),
            separation: Some(s),
            retraining_offered: false,
            redeployment_offered: false,
        }));
        exits.push(at(scenario::event(ORG, p), i));
    }
    for i in 0..15 {
        let mut s = next();
        s.legal_ground = Some("CN-LCL-36".into());
        exits.push(at(
            scenario::event(
                ORG,
                Payload::MutualTerminationEmployerProposed(Box::new(
                    MutualTerminationEmployerProposed {
                        separation: s,
                        package: None,
                    },
                )),
            ),
            10 + i,
        ));
    }
    for i in 0..30 {
        let mut s = next();
        s.contract_type = ContractType::FixedTerm;
        s.position_closed = true;
        s.legal_ground = Some("CN-LCL-44-1".into());
        let p = Payload::ContractNotRenewed(Box::new(ContractNotRenewed {
            separation: s,
            renewal_offered: false,
            offer_terms: None,
            employee_refused: false,
            would_trigger_open_ended: false,
            consecutive_fixed_terms: None,
        }));
        exits.push(at(scenario::event(ORG, p), 20 + i));
    }
    for i in 0..25 {
        let mut s = next();
        s.initiator = Initiator::Employee;
        s.position_closed = true;
        exits.push(at(
            scenario::event(
                ORG,
                Payload::Resignation(Box::new(Resignation {
                    separation: s,
                    regrettable: false,
                    pressured: false,
                })),
            ),
            30 + i,
        ));
    }
    (baseline, exits)
}

async fn cn_statuses(
    ch: &tonic::transport::Channel,
    as_of_sequence: u64,
) -> Vec<pb::ThresholdStatus> {
    let r = pb::views_client::ViewsClient::new(ch.clone())
        .threshold_watch(pb::ThresholdRequest {
            org_id: ORG.into(),
            as_of_date: "2026-05-15".into(),
            as_of_sequence,
            packs: vec!["CN-LCL-41".into()],
            alerts_only: false,
            ..Default::default()
        })
        .await
        .expect("ThresholdWatch")
        .into_inner();
    assert_eq!(
        r.as_of_sequence, as_of_sequence,
        "the answer names the sequence it reflects"
    );
    r.statuses
}

/// The strongest status per count type.
fn best(statuses: &[pb::ThresholdStatus], count_type: &str) -> pb::ThresholdStatus {
    statuses
        .iter()
        .filter(|s| s.count_type == count_type)
        .max_by_key(|s| (s.level, s.count))
        .cloned()
        .unwrap_or_else(|| panic!("no {count_type} status in {statuses:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worked_example_flows_from_grpc_into_views_thresholds_and_report() {
    let mut node = Node::start(Mode::Memory);
    let ch = node.channel().await;
    let (baseline, exits) = worked_example();
    record_batch(&ch, &baseline).await;
    let r = record_batch(&ch, &exits).await;
    assert_eq!(r.committed, 78);
    let head = 1278;

    let statuses = cn_statuses(&ch, head).await;
    let strict = best(&statuses, "strict");
    let assimilated = best(&statuses, "assimilated");
    let shadow = best(&statuses, "shadow");
    assert_eq!(strict.count, 0);
    assert_eq!(assimilated.count, 23);
    assert_eq!(
        assimilated.level,
        pb::AlertLevel::Met as i32,
        "23 >= 20 meets Art. 41's numeric limb"
    );
    // Counted, not listed: a status's size is not the size of its window.
    assert_eq!(assimilated.event_count, 23, "the figure counts its events");
    assert!(
        assimilated.event_ids.is_empty(),
        "{:?}",
        assimilated.event_ids
    );
    // Listed for the windows named, and only for them.
    let listed = pb::views_client::ViewsClient::new(ch.clone())
        .threshold_watch(pb::ThresholdRequest {
            org_id: ORG.into(),
            as_of_date: "2026-05-15".into(),
            as_of_sequence: head,
            packs: vec!["CN-LCL-41".into()],
            window_keys: vec![assimilated.window_key.clone()],
            count_types: vec!["assimilated".into()],
            with_event_ids: true,
            ..Default::default()
        })
        .await
        .expect("ThresholdWatch with the events")
        .into_inner();
    assert!(listed
        .statuses
        .iter()
        .all(|s| s.window_key == assimilated.window_key && s.count_type == "assimilated"));
    let assimilated = best(&listed.statuses, "assimilated");
    assert_eq!(
        assimilated.event_ids.len(),
        23,
        "the figure explains itself"
    );
    let every_window = pb::views_client::ViewsClient::new(ch.clone())
        .threshold_watch(pb::ThresholdRequest {
            org_id: ORG.into(),
            with_event_ids: true,
            ..Default::default()
        })
        .await
        .expect_err("every window's events at once are refused");
    assert_eq!(every_window.code(), tonic::Code::InvalidArgument);
    assert!(
        every_window.message().contains("with_event_ids"),
        "{}",
        every_window.message()
    );
    let unknown = pb::views_client::ViewsClient::new(ch.clone())
        .threshold_watch(pb::ThresholdRequest {
            org_id: ORG.into(),
            count_types: vec!["legal".into()],
            ..Default::default()
        })
        .await
        .expect_err("an unknown count type is refused");
    assert_eq!(unknown.code(), tonic::Code::InvalidArgument);
    assert!(
        unknown.message().contains("count_types[0]"),
        "{}",
        unknown.message()
    );
    assert_eq!(shadow.count, 78);
    assert!(
        shadow.label.contains("not a legal finding"),
        "{}",
        shadow.label
    );

    // Before any exit was recorded (as of the baseline), nothing counts.
    let early = cn_statuses(&ch, 1200).await;
    assert!(early.iter().all(|s| s.count == 0), "{early:?}");

    // The separations view splits formal layoffs from gradual attrition.
    let views = pb::views_client::ViewsClient::new(ch.clone());
    let sep = views
        .clone()
        .separations(pb::ViewRequest {
            org_id: ORG.into(),
            as_of_sequence: head,
            ..Default::default()
        })
        .await
        .expect("Separations")
        .into_inner();
    assert_eq!(sep.as_of_sequence, head);
    // Each answer names the chain hash of the event it was computed at, as the ledger has it:
    // now, and as of an earlier sequence (served from the views' own state).
    let ledger_events = common::replay(&ch).await;
    assert_eq!(sep.as_of_hash, ledger_events[head as usize - 1].hash);
    let earlier = views
        .clone()
        .separations(pb::ViewRequest {
            org_id: ORG.into(),
            as_of_sequence: 1_200,
            ..Default::default()
        })
        .await
        .expect("Separations as of 1200")
        .into_inner();
    assert_eq!(earlier.as_of_sequence, 1_200);
    assert_eq!(earlier.as_of_hash, ledger_events[1_199].hash);
    assert_eq!(earlier.as_of_hash.len(), 32);
    let text = serde_json::to_string(&format!("{:?}", sep.view)).expect("debug");
    assert!(
        text.contains("formal_layoff") && text.contains("gradual_attrition"),
        "{text}"
    );

    // Answers are bounded: figures carry evidence counts and paths, never the ids.
    assert!(!text.contains("event_ids"), "{text}");
    let Some(pb::view_response::View::Separations(typed)) = &sep.view else {
        panic!("Separations answers a SeparationsView: {:?}", sep.view)
    };
    let attrition = typed
        .totals
        .iter()
        .find(|t| t.bucket == "gradual_attrition")
        .expect("a gradual-attrition total");
    let count = attrition.evidence_count as f64;
    let path = attrition.evidence.clone();
    assert_eq!(path, "/totals/1");
    assert!(count > 10.0, "the worked example has attrition: {count}");

    // Explain pages through the events behind that figure.
    let mut seen = std::collections::BTreeSet::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = views
            .clone()
            .explain(pb::ExplainRequest {
                figure: Some(pb::Figure {
                    view: "separations".into(),
                    request: Some(pb::ViewRequest {
                        org_id: ORG.into(),
                        as_of_sequence: head,
                        ..Default::default()
                    }),
                    path: path.clone(),
                    thresholds: None,
                }),
                page_token: token.clone(),
                page_size: 10,
                ..Default::default()
            })
            .await
            .expect("Explain a figure")
            .into_inner();
        assert_eq!(page.total as f64, count);
        assert!(page.events.len() <= 10);
        for e in &page.events {
            assert_eq!(e.org_id, ORG);
            assert!(e.payload.is_some() && e.classification.is_some());
            assert!(
                seen.insert(e.event_id.clone()),
                "no event twice across pages"
            );
        }
        pages += 1;
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen.len() as f64, count, "the pages cover the figure");
    assert_eq!(pages, (count as usize).div_ceil(10));

    // A path that names no figure is the caller's mistake.
    let wrong = views
        .clone()
        .explain(pb::ExplainRequest {
            figure: Some(pb::Figure {
                view: "separations".into(),
                request: Some(pb::ViewRequest::default()),
                path: "/no/such/figure".into(),
                thresholds: None,
            }),
            ..Default::default()
        })
        .await
        .expect_err("an unknown path is refused");
    assert_eq!(wrong.code(), tonic::Code::InvalidArgument);
    assert!(
        wrong.message().contains("figure.path"),
        "{}",
        wrong.message()
    );

    // A field of the other way to explain would be ignored: refused, naming it.
    let figure = || {
        Some(pb::Figure {
            view: "separations".into(),
            request: Some(pb::ViewRequest::default()),
            path: "/".into(),
            thresholds: None,
        })
    };
    let mixed = [
        (
            "event_ids",
            pb::ExplainRequest {
                figure: figure(),
                event_ids: assimilated.event_ids.clone(),
                ..Default::default()
            },
        ),
        (
            "min_sequence",
            pb::ExplainRequest {
                figure: figure(),
                min_sequence: head,
                ..Default::default()
            },
        ),
        (
            "as_of_sequence",
            pb::ExplainRequest {
                figure: figure(),
                as_of_sequence: head,
                ..Default::default()
            },
        ),
        (
            "page_size",
            pb::ExplainRequest {
                event_ids: assimilated.event_ids.clone(),
                page_size: 10,
                ..Default::default()
            },
        ),
    ];
    for (field, request) in mixed {
        let refused = views
            .clone()
            .explain(request)
            .await
            .expect_err("a field of the other way is refused");
        assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{field}");
        assert!(
            refused.message().starts_with(&format!("{field}:")),
            "{field}: {}",
            refused.message()
        );
    }
    // Hiring signals are not kept by cohort: a cohort filter is refused, not ignored.
    let by_cohort = views
        .clone()
        .hiring_signals(pb::ViewRequest {
            cohort: "entry_level".into(),
            ..Default::default()
        })
        .await
        .expect_err("cohort on hiring signals");
    assert_eq!(by_cohort.code(), tonic::Code::InvalidArgument);
    assert!(by_cohort.message().starts_with("cohort:"), "{by_cohort:?}");

    // Explain: the events behind the assimilated count, waiting for the sequence first.
    let explained = views
        .clone()
        .explain(pb::ExplainRequest {
            event_ids: assimilated.event_ids.clone(),
            as_of_sequence: head,
            min_sequence: head,
            ..Default::default()
        })
        .await
        .expect("Explain")
        .into_inner();
    assert_eq!(explained.events.len(), 23);

    // wfl report, as a person reads it and as JSON.
    let report = Command::new(common::bin("wfl"))
        .args([
            "report",
            "thresholds",
            "--addr",
            &node.proc.grpc,
            "--org",
            ORG,
            "--pack",
            "CN-LCL-41",
            "--as-of-date",
            "2026-05-15",
        ])
        .output()
        .expect("wfl report");
    assert!(
        report.status.success(),
        "{}",
        String::from_utf8_lossy(&report.stderr)
    );
    let out = String::from_utf8_lossy(&report.stdout);
    assert!(
        out.contains("CN-LCL-41") && out.contains("MET") && out.contains("not legal findings"),
        "{out}"
    );
    let json = Command::new(common::bin("wfl"))
        .args([
            "report",
            "separations",
            "--addr",
            &node.proc.grpc,
            "--org",
            ORG,
            "--format",
            "json",
        ])
        .output()
        .expect("wfl report json");
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json report");
    assert_eq!(v["as_of_sequence"], head);

    // A bad request names its field.
    let bad = Command::new(common::bin("wfl"))
        .args([
            "report",
            "headcount",
            "--addr",
            &node.proc.grpc,
            "--cohort",
            "interns",
        ])
        .output()
        .expect("wfl");
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("cohort"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    // A flag the view would not use is refused, not dropped: the watch counts whole orgs.
    let unused = Command::new(common::bin("wfl"))
        .args(["report", "thresholds", "--addr", &node.proc.grpc])
        .args(["--org", ORG, "--site", "hz-1"])
        .output()
        .expect("wfl");
    assert!(!unused.status.success());
    assert!(
        String::from_utf8_lossy(&unused.stderr).contains("--site does not apply to thresholds"),
        "{}",
        String::from_utf8_lossy(&unused.stderr)
    );

    // SIGKILL the node: the projector resumes from its checkpoint without double counting.
    let before = format!("{:?}", sep.view);
    node.restart_hard();
    let ch = node.channel().await;
    let after = pb::views_client::ViewsClient::new(ch.clone())
        .separations(pb::ViewRequest {
            org_id: ORG.into(),
            as_of_sequence: head,
            ..Default::default()
        })
        .await
        .expect("Separations after restart")
        .into_inner();
    assert_eq!(
        format!("{:?}", after.view),
        before,
        "same figures after a restart"
    );
    let statuses = cn_statuses(&ch, head).await;
    assert_eq!(best(&statuses, "assimilated").count, 23);
    assert_eq!(best(&statuses, "shadow").count, 78);
}

/// A window's events are paged through `Explain` like any view figure: the list of one status
/// of a `ThresholdWatch` answer, named by its place in the answer, in pages pinned to the
/// sequence of the first, whole however many the answer itself would list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_threshold_windows_events_are_paged_through_explain() {
    let node = Node::start(Mode::Memory);
    let ch = node.channel().await;
    let (baseline, exits) = worked_example();
    record_batch(&ch, &baseline).await;
    record_batch(&ch, &exits).await;
    let head = 1278;
    let views = pb::views_client::ViewsClient::new(ch.clone());
    let asked = |with_event_ids| pb::ThresholdRequest {
        org_id: ORG.into(),
        as_of_date: "2026-05-15".into(),
        as_of_sequence: head,
        packs: vec!["CN-LCL-41".into()],
        count_types: vec!["assimilated".into()],
        with_event_ids,
        ..Default::default()
    };
    let answer = views
        .clone()
        .threshold_watch(asked(false))
        .await
        .expect("ThresholdWatch")
        .into_inner();
    let (i, status) = answer
        .statuses
        .iter()
        .enumerate()
        .max_by_key(|(_, s)| s.event_count)
        .expect("a status");
    assert_eq!(status.event_count, 23);
    let listed = views
        .clone()
        .threshold_watch(pb::ThresholdRequest {
            window_keys: vec![status.window_key.clone()],
            ..asked(true)
        })
        .await
        .expect("ThresholdWatch with the events")
        .into_inner();
    let expected: Vec<String> = listed
        .statuses
        .iter()
        .find(|s| s.event_count == 23)
        .expect("the status again")
        .event_ids
        .clone();
    assert_eq!(expected.len(), 23);

    let explain = |path: String, token: String| {
        let mut views = views.clone();
        let thresholds = asked(false);
        async move {
            views
                .explain(pb::ExplainRequest {
                    figure: Some(pb::Figure {
                        view: "thresholds".into(),
                        request: None,
                        path,
                        thresholds: Some(thresholds),
                    }),
                    page_token: token,
                    page_size: 5,
                    ..Default::default()
                })
                .await
        }
    };
    let path = format!("/statuses/{i}/event_ids");
    let (mut paged, mut token, mut pages) = (Vec::new(), String::new(), 0);
    loop {
        let page = explain(path.clone(), token.clone())
            .await
            .expect("a page of the window's events")
            .into_inner();
        assert_eq!(page.total, 23, "the status's count");
        assert_eq!(page.as_of_sequence, head);
        assert!(page.events.len() <= 5);
        paged.extend(page.events.iter().map(|e| e.event_id.clone()));
        pages += 1;
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(pages, 5, "23 events in pages of 5");
    assert_eq!(
        paged, expected,
        "every counted event once, in the answer's order"
    );

    for (path, field, says) in [
        (
            "/statuses/x/event_ids".to_owned(),
            "figure.path",
            "names no list",
        ),
        ("/rows/0/total".to_owned(), "figure.path", "names no list"),
        (
            format!("/statuses/{}/event_ids", answer.statuses.len()),
            "figure.path",
            "statuses",
        ),
        (
            format!("/statuses/{i}/steps/99/effective_too_early_event_ids"),
            "figure.path",
            "steps",
        ),
    ] {
        let refused = explain(path.clone(), String::new())
            .await
            .expect_err("a path that names no list is refused");
        assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{path}");
        assert!(
            refused.message().contains(field) && refused.message().contains(says),
            "{path}: {}",
            refused.message()
        );
    }
    let unknown_pack = views
        .clone()
        .explain(pb::ExplainRequest {
            figure: Some(pb::Figure {
                view: "thresholds".into(),
                request: None,
                path: path.clone(),
                thresholds: Some(pb::ThresholdRequest {
                    packs: vec!["XX-NONE".into()],
                    ..asked(false)
                }),
            }),
            ..Default::default()
        })
        .await
        .expect_err("an unknown pack is refused");
    assert_eq!(unknown_pack.code(), tonic::Code::InvalidArgument);
    assert!(
        unknown_pack
            .message()
            .contains("figure.thresholds.packs[0]"),
        "{}",
        unknown_pack.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threshold_alerts_are_published_on_nats() {
    use futures::StreamExt;
    let node = Node::start(Mode::Nats);
    let client = async_nats::connect(node.nats.as_ref().expect("nats").url())
        .await
        .expect("nats");
    let mut alerts = client
        .subscribe(format!("wfl.alerts.{ORG}.>"))
        .await
        .expect("subscribe");
    client.flush().await.expect("flush");
    let ch = node.channel().await;
    let (baseline, exits) = worked_example();
    record_batch(&ch, &baseline).await;
    record_batch(&ch, &exits).await;
    let met = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        while let Some(m) = alerts.next().await {
            let v: serde_json::Value = serde_json::from_slice(&m.payload).expect("alert is JSON");
            if m.subject.as_str() == format!("wfl.alerts.{ORG}.CN-LCL-41")
                && v["count_type"] == "assimilated"
                && v["level"] == "met"
            {
                return v;
            }
        }
        panic!("alert subscription ended");
    })
    .await
    .expect("a met alert for CN-LCL-41 arrives");
    assert_eq!(met["count"], 23);
    assert_eq!(met["event_ids"].as_array().map(Vec::len), Some(23));
    assert_eq!(
        met["event_count"], 23,
        "the full count beside the (bounded) list"
    );
    assert!(met["label"].as_str().is_some_and(|l| !l.is_empty()));
}

/// Waits until the threshold watch's published alerts reflect every committed event of every
/// org (`wfl_watch_evaluated_sequence` at the ledger's head) and returns its run and org counts.
fn watch_settled(node: &Node) -> (u64, u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let head = node.proc.metric("wfl_ledger_head_sequence");
        if head > 0 && node.proc.metric("wfl_watch_evaluated_sequence") == head {
            return (
                node.proc.metric("wfl_watch_runs_total"),
                node.proc.metric("wfl_watch_orgs_evaluated_total"),
            );
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the watch did not evaluate sequence {head} within 60 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The alert loop evaluates only the orgs whose events changed: a second tenant's events make
/// every later run evaluate that tenant alone (the first one's rows depend on its own events
/// and the evaluation day, neither of which moved), and its alert arrives; an event that moves
/// the evaluation day (the latest effective date) makes the next run evaluate both again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alert_loop_evaluates_only_the_orgs_that_changed() {
    use futures::StreamExt;
    let node = Node::start(Mode::Nats);
    let client = async_nats::connect(node.nats.as_ref().expect("nats").url())
        .await
        .expect("nats");
    let mut alerts = client.subscribe("wfl.alerts.>").await.expect("subscribe");
    client.flush().await.expect("flush");
    let ch = node.channel().await;
    let (baseline, exits) = worked_example();
    record_batch(&ch, &baseline).await;
    record_batch(&ch, &exits).await;
    let (runs, orgs) = watch_settled(&node);
    assert!(runs >= 1 && orgs >= 1, "runs {runs}, orgs {orgs}");

    // The same history for a second org, on the same days.
    const OTHER: &str = "cn-entity-2";
    let other = |events: &[Event]| -> Vec<Event> {
        events
            .iter()
            .map(|e| {
                let mut e = e.clone();
                e.org_id = OTHER.into();
                e.event_id = wfl_domain::EventId::new_v7();
                e
            })
            .collect()
    };
    record_batch(&ch, &other(&baseline)).await;
    record_batch(&ch, &other(&exits)).await;
    tokio::time::timeout(std::time::Duration::from_secs(60), async {
        while let Some(m) = alerts.next().await {
            let v: serde_json::Value = serde_json::from_slice(&m.payload).expect("alert is JSON");
            if m.subject.as_str() == format!("wfl.alerts.{OTHER}.CN-LCL-41")
                && v["count_type"] == "assimilated"
                && v["level"] == "met"
            {
                return;
            }
        }
        panic!("alert subscription ended");
    })
    .await
    .expect("the second org's met alert arrives");
    let (runs_after, orgs_after) = watch_settled(&node);
    assert!(runs_after > runs);
    assert_eq!(
        orgs_after - orgs,
        runs_after - runs,
        "each run after the first org settled evaluated the second org alone"
    );

    // A later day for the second org: every org's current windows move with it.
    let late = at(scenario::hire(OTHER, "w-late"), 200);
    record_batch(&ch, std::slice::from_ref(&late)).await;
    let (runs_late, orgs_late) = watch_settled(&node);
    assert_eq!(
        orgs_late - orgs_after,
        2,
        "the day moved: both orgs evaluated, once each"
    );
    // Each org at its own pace: the other org, evaluated just before, may wait its turn.
    assert!(
        (1..=2).contains(&(runs_late - runs_after)),
        "{} runs",
        runs_late - runs_after
    );
}

/// A `ThresholdWatch` of an org whose events and evaluation day are those its rows were last
/// evaluated over (by the alert loop, or by an earlier answer) is answered from those rows:
/// the answer an evaluation gives, with nothing evaluated; so is the first `Explain` page of
/// the events behind one of its statuses. Another org's event leaves it so;
/// the org's own next event is seen in the next answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orgs_watch_is_answered_from_its_kept_rows_until_its_own_events_change() {
    let node = Node::start(Mode::Memory);
    let ch = node.channel().await;
    let (baseline, exits) = worked_example();
    record_batch(&ch, &baseline).await;
    record_batch(&ch, &exits).await;
    watch_settled(&node);
    let ask = |as_of_sequence: u64, min_sequence: u64| {
        let ch = ch.clone();
        async move {
            pb::views_client::ViewsClient::new(ch)
                .threshold_watch(pb::ThresholdRequest {
                    org_id: ORG.into(),
                    as_of_sequence,
                    min_sequence,
                    ..Default::default()
                })
                .await
                .expect("ThresholdWatch")
                .into_inner()
        }
    };
    let counts = || {
        (
            node.proc.metric("wfl_watch_answers_kept_total"),
            node.proc.metric("wfl_watch_answers_evaluated_total"),
        )
    };
    let recent = || node.proc.metric("wfl_watch_answers_recent_total");
    let head = node.proc.metric("wfl_ledger_head_sequence");

    // The alert loop evaluated the org at its latest event: its rows answer.
    let before = counts();
    let kept = ask(0, head).await;
    assert_eq!(
        counts(),
        (before.0 + 1, before.1),
        "answered from the kept rows"
    );
    assert_eq!(kept.as_of_sequence, head);
    assert!(
        kept.statuses
            .iter()
            .any(|s| s.level == pb::AlertLevel::Met as i32),
        "the worked example meets a threshold"
    );
    let evaluated = ask(head, 0).await;
    assert_eq!(
        counts(),
        (before.0 + 1, before.1 + 1),
        "an as-of answer is evaluated"
    );
    assert_eq!(kept, evaluated, "the kept rows are the evaluation's");

    // The first page of the events behind a status comes from the kept rows too, and is the
    // page an evaluation as of the same sequence gives.
    let i = kept
        .statuses
        .iter()
        .position(|s| s.event_count > 3)
        .expect("a status with events");
    let explain = |as_of_sequence: u64| {
        let ch = ch.clone();
        async move {
            pb::views_client::ViewsClient::new(ch)
                .explain(pb::ExplainRequest {
                    figure: Some(pb::Figure {
                        view: "thresholds".into(),
                        request: None,
                        path: format!("/statuses/{i}/event_ids"),
                        thresholds: Some(pb::ThresholdRequest {
                            org_id: ORG.into(),
                            as_of_sequence,
                            ..Default::default()
                        }),
                    }),
                    page_size: 3,
                    ..Default::default()
                })
                .await
                .expect("Explain")
                .into_inner()
        }
    };
    let page = explain(0).await;
    assert_eq!(
        counts().0,
        before.0 + 2,
        "the first page from the kept rows"
    );
    assert_eq!(page.total, kept.statuses[i].event_count);
    assert_eq!(page.events.len(), 3);
    assert!(!page.next_page_token.is_empty(), "more pages");
    let evaluated_page = explain(head).await;
    assert_eq!(page.as_of_sequence, evaluated_page.as_of_sequence);
    assert_eq!(page.total, evaluated_page.total);
    assert_eq!(page.events, evaluated_page.events);

    // Another org's event, on a day before the org's latest: the org's answer is still kept.
    const OTHER: &str = "cn-entity-2";
    record_batch(&ch, &[at(scenario::hire(OTHER, "w-o"), 0)]).await;
    let head = node.proc.metric("wfl_ledger_head_sequence");
    let before = counts();
    let still = ask(0, head).await;
    assert_eq!(
        counts(),
        (before.0 + 1, before.1),
        "another org's event changes nothing"
    );
    assert_eq!(
        still.as_of_sequence, head,
        "answered at the current sequence"
    );
    assert_eq!(still.statuses, kept.statuses);

    // The org's own event: the next answer sees it, whoever evaluated it first.
    let one_more = |worker: &str| {
        let mut e = exits[0].clone();
        e.event_id = wfl_domain::EventId::new_v7();
        if let Payload::RoleAutomated(r) = &mut e.payload {
            if let Some(s) = r.separation.as_mut() {
                s.worker_ref = wfl_domain::WorkerRef(worker.into());
            }
        }
        e
    };
    record_batch(&ch, &[one_more("w-500")]).await;
    let head = node.proc.metric("wfl_ledger_head_sequence");
    let after = ask(0, head).await;
    assert_ne!(after.statuses, kept.statuses, "the org's own event is seen");
    assert_eq!(
        after,
        ask(head, 0).await,
        "as an evaluation at that sequence says"
    );

    // Callers asking together about the org's latest event share one evaluation of it (the
    // others wait for it and answer from its rows), and give the same answer.
    record_batch(&ch, &[one_more("w-501")]).await;
    let head = node.proc.metric("wfl_ledger_head_sequence");
    let before = (counts(), recent());
    let together = futures::future::join_all((0..8).map(|_| ask(0, head))).await;
    let (after, recent_after) = (counts(), recent());
    assert!(
        after.1 - before.0 .1 <= 1,
        "{} evaluations for 8 callers",
        after.1 - before.0 .1
    );
    assert_eq!(
        (after.0 - before.0 .0) + (recent_after - before.1) + (after.1 - before.0 .1),
        8,
        "every answer kept, recent or evaluated"
    );
    assert!(together.iter().all(|a| a == &together[0]));
    assert_eq!(together[0].as_of_sequence, head);

    // An answer that asks no sequence, kept, recent or evaluated, is the evaluation as of the
    // sequence it says.
    record_batch(&ch, &[one_more("w-502")]).await;
    let any = ask(0, 0).await;
    assert_eq!(any, ask(any.as_of_sequence, 0).await);
}

#[test]
fn a_malformed_rule_pack_stops_start_up_naming_file_and_field() {
    let dir = wfl_testkit::temp_dir();
    let packs = dir.path().join("packs");
    std::fs::create_dir_all(&packs).expect("dir");
    let good = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../rulepacks/CN-LCL-41.toml");
    let text = std::fs::read_to_string(good).expect("shipped pack");
    let broken = text.replacen("[[thresholds]]", "[[thresholds]]\nshare_typo = 1", 1);
    assert_ne!(broken, text, "the pack has thresholds to break");
    std::fs::write(packs.join("CN-LCL-41.toml"), broken).expect("write");
    let out = Command::new(common::bin("wfl"))
        .args([
            "up",
            "--data-dir",
            &dir.path().join("d").display().to_string(),
            "--grpc-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
            "--rulepacks",
            &packs.display().to_string(),
        ])
        .output()
        .expect("wfl up runs");
    assert!(!out.status.success(), "start-up must fail");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("CN-LCL-41.toml") && err.contains("share_typo"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "nothing was served");
}

/// design.md invariant 7 (bitemporal): a backdated event recorded later changes the figures for its
/// effective period, but not the answer "as the ledger knew it" before it was recorded; `Read` with
/// the same bound leaves it out too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backdated_event_changes_the_effective_period_but_not_what_was_known_before() {
    let node = Node::start(Mode::Memory);
    let ch = node.channel().await;
    let march = |mut e: Event| {
        e.effective_date = Date::from_ymd(2026, 3, 10).expect("date");
        e
    };
    let first = vec![
        march(scenario::hire(ORG, "w-1")),
        march(scenario::hire(ORG, "w-2")),
    ];
    assert_eq!(record_batch(&ch, &first).await.committed, 2);
    let known = common::replay(&ch).await;
    let known_at = known.last().expect("two events").recorded_at_micros;

    // Recorded later (now, December), effective back in March: two backdated resignations.
    let mut late = scenario::event(
        ORG,
        Payload::Resignation(Box::new(Resignation {
            separation: scenario::separation("w-1"),
            regrettable: false,
            pressured: false,
        })),
    );
    late.effective_date = Date::from_ymd(2026, 3, 12).expect("date");
    let mut backdated = scenario::event(
        ORG,
        Payload::Resignation(Box::new(Resignation {
            separation: scenario::separation("w-2"),
            regrettable: false,
            pressured: false,
        })),
    );
    backdated.effective_date = Date::from_ymd(2026, 3, 11).expect("date");
    let r = record_batch(&ch, &[late, backdated]).await;
    assert_eq!(r.committed, 2);
    // Read your writes: wait for the sequence the record returned, then answer from now.
    let written = r
        .results
        .iter()
        .map(|i| common::ok(i).sequence)
        .max()
        .expect("two results");
    let fresh = views_client(&ch)
        .separations(pb::ViewRequest {
            org_id: ORG.into(),
            min_sequence: written,
            ..Default::default()
        })
        .await
        .expect("Separations with min_sequence")
        .into_inner();
    assert!(fresh.as_of_sequence >= written, "{}", fresh.as_of_sequence);
    let all = common::replay(&ch).await;
    assert!(
        all.last().expect("four events").recorded_at_micros > known_at,
        "recorded in a later commit"
    );

    let views = pb::views_client::ViewsClient::new(ch.clone());
    let separations = |as_of_recorded_at_micros: i64| {
        let mut v = views.clone();
        async move {
            let r = v
                .separations(pb::ViewRequest {
                    org_id: ORG.into(),
                    from_date: "2026-03-01".into(),
                    to_date: "2026-03-31".into(),
                    as_of_recorded_at_micros,
                    ..Default::default()
                })
                .await
                .expect("Separations")
                .into_inner();
            let total = match r.view {
                Some(pb::view_response::View::Separations(v)) => v.total,
                other => panic!("a SeparationsView: {other:?}"),
            };
            (r.as_of_sequence, total)
        }
    };
    assert_eq!(
        separations(0).await,
        (4, 2),
        "now: both separations in March"
    );
    assert_eq!(
        separations(known_at).await,
        (2, 0),
        "as the ledger knew it before they were recorded: none"
    );
    // At every commit's instant, and before the first: the events recorded by then are a prefix
    // of the ledger (recorded-at never goes back), answered at its end; at the last commit's
    // instant (not before the last folded event's) the ledger's events are folded instead. Both
    // name the last event recorded by then.
    for at in std::iter::once(1).chain(all.iter().map(|c| c.recorded_at_micros)) {
        let end = all
            .iter()
            .filter(|c| c.recorded_at_micros <= at)
            .map(|c| c.sequence)
            .max()
            .unwrap_or(0);
        assert_eq!(separations(at).await.0, end, "as of {at}");
    }

    let mut ledger = common::ledger(&ch);
    let mut stream = ledger
        .read(pb::ReadRequest {
            from_sequence: 1,
            as_of_recorded_at_micros: known_at,
            ..Default::default()
        })
        .await
        .expect("Read")
        .into_inner();
    let mut sequences = Vec::new();
    while let Some(c) = stream.message().await.expect("a record") {
        sequences.push(c.sequence);
    }
    assert_eq!(
        sequences,
        vec![1, 2],
        "Read leaves out what was recorded later"
    );

    let refused = views
        .clone()
        .separations(pb::ViewRequest {
            as_of_recorded_at_micros: -1,
            ..Default::default()
        })
        .await
        .expect_err("a negative instant is refused");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(refused.message().contains("as_of_recorded_at_micros"));
}

fn views_client(
    ch: &tonic::transport::Channel,
) -> pb::views_client::ViewsClient<tonic::transport::Channel> {
    pb::views_client::ViewsClient::new(ch.clone())
}

/// `wfl report`'s output, text and JSON, of every view over `examples/events.jsonl`, pinned byte
/// for byte in `tests/data/report-pin.txt` (the typed Views messages replaced Structs without
/// changing a byte). `WFL_BLESS=1` rewrites the file after a deliberate change.
#[test]
fn report_output_over_the_sample_is_pinned() {
    let node = Node::start(Mode::Memory);
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/events.jsonl");
    let lines = std::fs::read_to_string(&file)
        .expect("examples/events.jsonl")
        .lines()
        .count()
        .to_string();
    let run = |args: &[&str]| -> String {
        let out = Command::new(common::bin("wfl"))
            .args(args)
            .args(["--addr", &node.proc.grpc])
            .output()
            .expect("wfl runs");
        assert!(
            out.status.success(),
            "wfl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    };
    run(&["import", &file.display().to_string()]);
    let mut pinned = String::new();
    let asks: &[&[&str]] = &[
        &["separations"],
        &["separations", "--period", "quarter"],
        &[
            "separations",
            "--from",
            "2026-01-01",
            "--cohort",
            "entry_level",
        ],
        &["headcount"],
        &["headcount", "--period", "quarter", "--site", "hz-1"],
        &["cohorts"],
        &["hiring"],
        &["ai"],
        &["thresholds"],
        // One window's events, listed (a status only counts them otherwise).
        &[
            "thresholds",
            "--window-key",
            "rolling-90/current/2026-02-27",
            "--with-event-ids",
        ],
        &["explain", "--figure", "separations", "--path", "/totals/0"],
        &[
            "explain",
            "--figure",
            "headcount",
            "--path",
            "/rows/2/total",
            "--page-size",
            "2",
        ],
        &[
            "explain",
            "--figure",
            "headcount",
            "--path",
            "/rows/4/by_cohort/experienced",
            "--page-size",
            "2",
            "--page-token",
            "2",
        ],
        &[
            "explain",
            "--event-id",
            "0192f0c4-8a7e-7cc0-9a52-000000000001",
            "--event-id",
            "0192f0c4-8a7e-7cc0-9a52-000000000040",
        ],
    ];
    for ask in asks {
        for format in ["text", "json"] {
            let mut args = vec!["report"];
            args.extend_from_slice(ask);
            // Events by id are found whatever their org: `--org` does not apply to them.
            if !ask.contains(&"--event-id") {
                args.extend(["--org", "acme-cn"]);
            }
            args.extend(["--min-sequence", &lines, "--format", format]);
            pinned.push_str(&format!("$ wfl {}\n", args.join(" ")));
            pinned.push_str(&run(&args));
        }
    }
    let golden = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/report-pin.txt");
    if std::env::var_os("WFL_BLESS").is_some() {
        std::fs::write(&golden, &pinned).expect("write the pinned output");
    }
    let want = std::fs::read_to_string(&golden).expect("tests/data/report-pin.txt");
    if want != pinned {
        let first = want
            .lines()
            .zip(pinned.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| want.lines().count().min(pinned.lines().count()));
        panic!(
            "wfl report's output changed at line {}:\n  pinned: {:?}\n  now:    {:?}",
            first + 1,
            want.lines().nth(first),
            pinned.lines().nth(first)
        );
    }
}
