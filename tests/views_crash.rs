//! The views survive SIGKILL at any point of a catch-up: a `wfl up` folding an 8,000-event
//! restructuring ledger from sequence 1 (`--rebuild-views`) is killed three times at different
//! depths; each restart resumes from its keyed, persisted checkpoint, and the final figures are
//! identical to those of the node that folded everything without interruption (which folded
//! them as its ledger handed them over, where the catch-ups read them through `Subscribe`).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Mode, Node, Proc};
use wfl_proto::pb;

const EVENTS: u64 = 8_000;

/// `(checkpoint, ledger head)` from `/metrics`.
fn progress(proc: &Proc) -> (u64, u64) {
    let (c, _, h) = progress3(proc);
    (c, h)
}

/// `(checkpoint, persisted checkpoint, ledger head)` from `/metrics`.
fn progress3(proc: &Proc) -> (u64, u64, u64) {
    (
        proc.metric("wfl_views_checkpoint_sequence"),
        proc.metric("wfl_views_persisted_sequence"),
        proc.metric("wfl_ledger_head_sequence"),
    )
}

/// Polls `/metrics` until `done(checkpoint, head)`; fails after 120 s with the last figures.
fn wait_for(proc: &Proc, what: &str, done: impl Fn(u64, u64) -> bool) -> (u64, u64) {
    let started = Instant::now();
    loop {
        let (c, h) = progress(proc);
        if done(c, h) {
            return (c, h);
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "{what}: views at {c}, ledger at {h}; log:\n{}",
            proc.log_text()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Records `events` events of the restructuring mix through `proc` (`wfl load`).
fn load(proc: &Proc, events: u64) {
    let load = Command::new(common::bin("wfl"))
        .args([
            "load",
            "--mix",
            "restructuring",
            "--events",
            &events.to_string(),
        ])
        .args(["--addr", &proc.grpc])
        .output()
        .expect("wfl load runs");
    assert!(
        load.status.success(),
        "{}",
        String::from_utf8_lossy(&load.stderr)
    );
}

fn spawn(dir: &Path, rebuild: bool) -> Proc {
    common::up(dir, if rebuild { &["--rebuild-views"] } else { &[] })
}

/// Every view, all orgs, by month, as the client sees it.
async fn figures(proc: &Proc) -> Vec<String> {
    let ch = common::connect(&proc.grpc).await;
    let mut views = pb::views_client::ViewsClient::new(ch).max_decoding_message_size(64 << 20);
    let r = pb::ViewRequest::default();
    let mut out = Vec::new();
    let mut push = |name: &str, v: Result<tonic::Response<pb::ViewResponse>, tonic::Status>| {
        let v = v.unwrap_or_else(|s| panic!("{name}: {s}")).into_inner();
        assert_eq!(v.as_of_sequence, EVENTS, "{name} names the head");
        out.push(format!("{name}: {:?}", v.view));
    };
    push("separations", views.separations(r.clone()).await);
    push("headcount", views.headcount(r.clone()).await);
    push("cohort_exposure", views.cohort_exposure(r.clone()).await);
    push("hiring_signals", views.hiring_signals(r.clone()).await);
    push("ai_adoption", views.ai_adoption(r.clone()).await);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projector_killed_at_any_point_resumes_to_the_same_figures() {
    let mut node = Node::start(Mode::Memory);
    assert_eq!(node.mode, Mode::Memory);
    load(&node.proc, EVENTS);
    wait_for(&node.proc, "first fold", |c, h| h == EVENTS && c == EVENTS);
    // Folded while the load ran, as the ledger beside it handed the batches over; the folds
    // below, from sequence 1 on an idle ledger, read every event through `Subscribe`: the
    // figures must not depend on the way.
    let handed = node.proc.metric("wfl_views_handed_over_total");
    assert!(
        handed > 0,
        "the views followed the hand-over for {handed} of {EVENTS} events"
    );
    let reference = figures(&node.proc).await;

    // Fold again from sequence 1, killing the node three times on the way.
    node.proc.kill();
    let dir = node.dir.path().to_path_buf();
    let mut proc = spawn(&dir, true);
    let mut last = 0;
    for depth in [EVENTS / 10, EVENTS / 3, EVENTS * 3 / 4] {
        wait_for(&proc, "catching up", |c, _| c >= depth);
        proc.kill();
        proc = spawn(&dir, false);
        let (resumed, head) = progress(&proc);
        assert_eq!(head, EVENTS);
        assert!(
            resumed >= last && resumed <= EVENTS,
            "resumed at {resumed}: never before the previous restart's checkpoint {last}"
        );
        last = resumed;
    }
    wait_for(&proc, "final fold", |c, _| c == EVENTS);
    assert_eq!(proc.metric("wfl_views_handed_over_total"), 0);
    let resumed = figures(&proc).await;
    assert_eq!(resumed.len(), reference.len());
    for (a, b) in resumed.iter().zip(&reference) {
        assert_eq!(
            a, b,
            "a resumed fold gives the uninterrupted fold's figures"
        );
    }
}

/// A node stopped cleanly right after its views folded the last event leaves them persisted: the
/// next start reads them back and folds nothing again. Three rounds of 300 events (fewer than a
/// persist's 1,000), each stopped within milliseconds of the fold, before an idle persist: the
/// stop itself persists them, whether the follower sees the shutdown or the end of the ledger's
/// hand-over first.
#[test]
fn a_clean_stop_persists_everything_the_views_folded() {
    let dir = wfl_testkit::temp_dir();
    let mut proc = spawn(dir.path(), false);
    for round in 1..=3u64 {
        load(&proc, 300);
        let events = round * 300;
        wait_for(&proc, "fold", |c, h| h == events && c == events);
        assert!(proc.terminate().success(), "wfl up stops cleanly");
        proc = spawn(dir.path(), false);
        wait_for(&proc, "read back", |c, h| h == events && c == events);
        assert_eq!(
            proc.metric("wfl_views_persisted_sequence"),
            events,
            "round {round}: everything folded was persisted"
        );
        assert_eq!(
            proc.metric("wfl_views_folded_total"),
            0,
            "round {round}: nothing folded again after a clean stop"
        );
    }
}

/// A ledger replaced behind the views' back (here: its directory emptied) holds fewer events than
/// the views folded: the node refuses to serve them, says why, and exits non-zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_ahead_of_the_ledger_are_refused_not_served() {
    let mut node = Node::start(Mode::Memory);
    let ch = node.channel().await;
    let events: Vec<wfl_domain::Event> = (0..20)
        .map(|i| wfl_testkit::scenario::hire("acme", &format!("w-{i}")))
        .collect();
    assert_eq!(common::record_batch(&ch, &events).await.committed, 20);
    // The views persist when the stream goes idle; wait until they have.
    let started = Instant::now();
    while progress3(&node.proc).1 < 20 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the views never persisted 20"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    node.proc.kill();
    let dir = node.dir.path().to_path_buf();
    std::fs::remove_dir_all(dir.join("data/ledger")).expect("the ledger dir is removed");

    let mut proc = spawn(&dir, false);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = proc.child.try_wait().expect("the node can be waited for") {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the node still runs; log:\n{}",
            proc.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success(), "a refusal is a failure exit");
    let log = proc.log_text();
    assert!(
        log.contains("behind the views' checkpoint (20)") && log.contains("--rebuild-views"),
        "{log}"
    );
}
