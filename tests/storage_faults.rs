//! Storage faults on a real, size-limited file system: the test mounts a small tmpfs (or, where
//! tmpfs cannot be mounted, a loop-mounted ext4 image it creates; it fails loudly if neither
//! works), runs the real `wfl up` on it against a real nats-server, fills the disk, and checks
//! what a user sees: one ERROR naming the path and errno, `RESOURCE_EXHAUSTED` at once for
//! committed-level ingest, health NOT_SERVING (gRPC and `/healthz`), reads still served, SIGTERM
//! obeyed within 10 s, and commits resuming by themselves once space returns, with nothing
//! acknowledged lost.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{assert_valid_chain, err, ok, record_batch, replay, Proc};
use tonic_health::pb::health_check_response::ServingStatus;
use wfl_proto::pb;
use wfl_testkit::{scenario, NatsServer};

/// A size-limited file system mounted for one test, unmounted on drop.
struct SmallFs {
    dir: PathBuf,
    /// Kept so the image file outlives the loop mount.
    _image: Option<PathBuf>,
}

impl SmallFs {
    /// Mounts `size_mb` MiB at `dir`: tmpfs, or else a loop-mounted ext4 image. Panics (never
    /// skips) when neither can be mounted: the suite needs root (CI runs as root).
    fn mount(dir: &Path, size_mb: u64) -> SmallFs {
        std::fs::create_dir_all(dir).expect("mount point");
        let tmpfs = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mb}m"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("run mount");
        if tmpfs.status.success() {
            return SmallFs {
                dir: dir.to_owned(),
                _image: None,
            };
        }
        let image = dir.with_extension("img");
        let steps: [&[&str]; 3] = [
            &["truncate", "-s", &format!("{size_mb}M")],
            &["mkfs.ext4", "-q", "-F"],
            &["mount", "-o", "loop"],
        ];
        for step in steps {
            let mut cmd = Command::new(step[0]);
            cmd.args(&step[1..]).arg(&image);
            if step[0] == "mount" {
                cmd.arg(dir);
            }
            let out = cmd.output().expect("run mkfs/mount");
            assert!(
                out.status.success(),
                "cannot mount a small file system for this test (tmpfs: {}; {:?}: {}); it needs root",
                String::from_utf8_lossy(&tmpfs.stderr).trim(),
                step,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        SmallFs {
            dir: dir.to_owned(),
            _image: Some(image),
        }
    }

    /// Writes a filler file until the file system is full; returns its path.
    fn fill(&self) -> PathBuf {
        let path = self.dir.join("filler");
        let mut f = std::fs::File::create(&path).expect("filler");
        let chunk = vec![0xa5u8; 64 << 10];
        loop {
            match f.write_all(&chunk).and_then(|()| f.sync_data()) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(28) => return path,
                Err(e) => panic!("filling {}: {e}", path.display()),
            }
        }
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

fn hires(n: usize, offset: usize) -> Vec<wfl_domain::Event> {
    (0..n)
        .map(|i| scenario::hire("acme", &format!("w-{}", offset + i)))
        .collect()
}

async fn health(ch: &tonic::transport::Channel) -> Result<ServingStatus, tonic::Status> {
    let r = tonic_health::pb::health_client::HealthClient::new(ch.clone())
        .check(tonic_health::pb::HealthCheckRequest {
            service: "wfl.v1.Ingest".into(),
        })
        .await?
        .into_inner();
    Ok(ServingStatus::try_from(r.status).expect("status"))
}

/// Polls health until it reports `want`, within `limit`; a failure shows the node's log.
async fn wait_health(
    node: &Proc,
    ch: &tonic::transport::Channel,
    want: ServingStatus,
    limit: Duration,
) {
    let deadline = Instant::now() + limit;
    loop {
        let now = match health(ch).await {
            Ok(now) => now,
            Err(s) => panic!("health check: {s:?}\nnode log:\n{}", node.log_text()),
        };
        if now == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "health stayed {now:?}, want {want:?}\nnode log:\n{}",
            node.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn fault_lines(log: &str) -> usize {
    log.lines()
        .filter(|l| l.contains("ERROR") && l.contains("ledger storage fault"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_pauses_commits_clearly_and_they_resume_when_space_returns() {
    let tmp = wfl_testkit::temp_dir();
    let fs = SmallFs::mount(&tmp.path().join("fs"), 48);
    let nats = NatsServer::start();
    let data = fs.dir.join("data").display().to_string();
    let start = || {
        let mut args: Vec<String> = [
            "up",
            "--data-dir",
            &data,
            "--grpc-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
            "--nats-url",
            &nats.url(),
            "--min-free-mb",
            "8",
        ]
        .map(String::from)
        .to_vec();
        args.push("--rulepacks".into());
        args.push(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../rulepacks")
                .display()
                .to_string(),
        );
        Proc::start("wfl", &args, &tmp.path().join("logs"))
    };
    let mut node = start();
    let ch = common::connect(&node.grpc).await;
    let http = node.http.clone().expect("http address");

    let before = hires(200, 0);
    let r = record_batch(&ch, &before).await;
    assert_eq!(r.committed, 200);
    assert!(common::http_get(&http, "/healthz").starts_with("ok"));

    // Another process fills the disk.
    let filler = fs.fill();
    let paused = hires(50, 200);
    let asked = Instant::now();
    let r = record_batch(&ch, &paused).await;
    let took = asked.elapsed();
    for item in &r.results {
        let e = err(item);
        assert_eq!(e.code, tonic::Code::ResourceExhausted as i32, "{e:?}");
        assert!(e.message.contains("ENOSPC"), "{e:?}");
    }
    assert!(
        took < Duration::from_secs(5),
        "refused at once, not after the commit timeout: {took:?}"
    );
    println!("full disk: 50 committed-level events refused in {took:?}");
    let single = hires(1, 250);
    let status = common::ingest(&ch)
        .record(pb::RecordRequest {
            event: Some(common::wire(&single[0])),
            ack: pb::AckLevel::Committed as i32,
            include_proof: false,
        })
        .await
        .expect_err("refused while paused");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    wait_health(
        &node,
        &ch,
        ServingStatus::NotServing,
        Duration::from_secs(5),
    )
    .await;
    let healthz = common::http_get(&http, "/healthz");
    assert!(
        healthz.contains("not ready") && healthz.contains("ENOSPC"),
        "{healthz}"
    );
    assert!(common::http_get(&http, "/metrics").contains("wfl_ledger_storage_paused 1"));

    // Reads keep working.
    let read = tokio::time::timeout(Duration::from_secs(5), replay(&ch))
        .await
        .expect("Read answers while paused");
    assert_eq!(read.len(), 200);
    let head = common::ledger(&ch)
        .head(pb::HeadRequest {})
        .await
        .expect("Head while paused")
        .into_inner();
    assert_eq!(head.sequence, 200);
    let mut sub = common::subscribe(&ch, 1).await;
    let first = tokio::time::timeout(Duration::from_secs(5), common::next_event(&mut sub))
        .await
        .expect("Subscribe answers while paused")
        .expect("an event")
        .expect("no error");
    assert_eq!(first.sequence, 1);
    // ACCEPTED still works: the inbox (NATS, another disk) keeps the events.
    let accepted = hires(30, 260);
    let r = common::ingest(&ch)
        .record_batch(pb::RecordBatchRequest {
            events: accepted.iter().map(common::wire).collect(),
            ack: pb::AckLevel::Accepted as i32,
            include_proof: false,
        })
        .await
        .expect("RecordBatch")
        .into_inner();
    assert_eq!(r.accepted, 30, "{r:?}");

    let log = node.log_text();
    assert_eq!(fault_lines(&log), 1, "one ERROR per fault:\n{log}");
    let line = log
        .lines()
        .find(|l| l.contains("ledger storage fault"))
        .expect("fault line");
    assert!(
        line.contains(&format!("{data}/ledger")) && line.contains("ENOSPC"),
        "{line}"
    );

    // Space returns: commits resume by themselves.
    std::fs::remove_file(&filler).expect("free the space");
    let freed = Instant::now();
    wait_health(&node, &ch, ServingStatus::Serving, Duration::from_secs(30)).await;
    println!("space freed: commits resumed after {:?}", freed.elapsed());
    // Every probe (the views' store too, rechecked once a second) comes back by itself.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let healthz = common::http_get(&http, "/healthz");
        if healthz.starts_with("ok") {
            break;
        }
        assert!(Instant::now() < deadline, "/healthz stayed {healthz:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut all = before.clone();
    all.extend(paused.iter().cloned());
    all.extend(accepted.iter().cloned());
    all.extend(single);
    // Clients retry with the same event ids: every one is in the ledger exactly once.
    let r = record_batch(&ch, &all).await;
    assert_eq!(
        (r.committed as usize, r.rejected),
        (all.len(), 0),
        "every retried event is in the ledger"
    );
    for item in &r.results {
        assert!(ok(item).sequence > 0);
    }
    let ledger = replay(&ch).await;
    assert_eq!(ledger.len(), all.len(), "nothing lost, nothing twice");
    assert_valid_chain(&ledger);
    let ids: std::collections::HashSet<String> = ledger
        .iter()
        .filter_map(|c| c.event.as_ref().map(|e| e.event_id.clone()))
        .collect();
    assert_eq!(ids.len(), all.len());
    assert!(node.log_text().contains("commits resume"));

    // Full again, then SIGTERM: the node stops within 10 s.
    let filler = fs.fill();
    let held = hires(5, 300);
    let r = record_batch(&ch, &held).await;
    assert_eq!(
        err(&r.results[0]).code,
        tonic::Code::ResourceExhausted as i32
    );
    wait_health(
        &node,
        &ch,
        ServingStatus::NotServing,
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(fault_lines(&node.log_text()), 2, "one ERROR per fault");
    let asked = Instant::now();
    let _ = Command::new("kill")
        .args(["-TERM", &node.child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if node.child.try_wait().expect("try_wait").is_some() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "SIGTERM did not stop the node within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("SIGTERM while paused: stopped in {:?}", asked.elapsed());

    // Restarted once space returned: the chain continues.
    std::fs::remove_file(&filler).expect("free the space");
    node = start();
    let ch = common::connect(&node.grpc).await;
    // The five refused while paused stayed in the inbox (as their RESOURCE_EXHAUSTED said); the
    // restarted ledger may commit them before the client's retry (with the same event ids), which
    // then hears them committed (`duplicate`) with their sequences. Either way each is in the
    // ledger once.
    let r = record_batch(&ch, &held).await;
    assert_eq!(
        (r.committed, r.rejected),
        (5, 0),
        "the retry learns all five committed: {r:?}"
    );
    for item in &r.results {
        assert!(ok(item).sequence > 0);
    }
    let ledger = replay(&ch).await;
    assert_valid_chain(&ledger);
    assert_eq!(ledger.len(), all.len() + 5);

    // A read-only data directory (a file system cannot be remounted read-only under open files,
    // so this is at start): the node exits naming the path and the errno.
    assert!(node.terminate().success());
    let remount = Command::new("mount")
        .args(["-o", "remount,ro"])
        .arg(&fs.dir)
        .status()
        .expect("remount");
    assert!(remount.success(), "remount read-only");
    let mut node = start();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = node.child.try_wait().expect("try_wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "a read-only data dir must stop the node"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(!status.success());
    let log = node.log_text();
    assert!(
        log.contains(&format!("{data}/ledger")) && log.contains("Read-only file system"),
        "{log}"
    );
}
