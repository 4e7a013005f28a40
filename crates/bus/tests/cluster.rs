//! Cluster mode's JetStream primitives against a real nats-server: the partition map recorded
//! once, leases (exclusive, renewed, lost, re-created after expiry), and the partition log's fence.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use wfl_bus::cluster::{Appended, Cluster, ClusterConfig, PartitionMap};
use wfl_testkit::NatsServer;

async fn open(server: &NatsServer, ttl: Duration) -> Cluster {
    let client = async_nats::connect(server.url()).await.expect("connect");
    Cluster::open(
        &client,
        ClusterConfig {
            replicas: 1,
            lease_ttl: ttl,
        },
    )
    .await
    .expect("open the cluster's buckets")
}

#[tokio::test]
async fn the_partition_map_is_recorded_once_and_a_different_one_is_refused() {
    let server = NatsServer::start();
    let cluster = open(&server, Duration::from_secs(10)).await;
    let none = cluster.partition_map(None).await.expect_err("no map yet");
    assert!(none.to_string().contains("--partitions"), "{none}");
    let map = PartitionMap::new(4, BTreeMap::from([("big".to_owned(), 3)])).expect("map");
    assert_eq!(
        cluster.partition_map(Some(&map)).await.expect("create"),
        map
    );
    assert_eq!(cluster.partition_map(None).await.expect("read"), map);
    assert_eq!(cluster.partition_map(Some(&map)).await.expect("same"), map);
    let other = PartitionMap::new(8, BTreeMap::new()).expect("map");
    let e = cluster
        .partition_map(Some(&other))
        .await
        .expect_err("partitions are fixed");
    assert!(e.to_string().contains("created with 4 partitions"), "{e}");
}

#[tokio::test]
async fn a_lease_is_exclusive_renewable_and_lost_to_whoever_takes_it_after_expiry() {
    let server = NatsServer::start();
    let ttl = Duration::from_secs(2);
    let cluster = open(&server, ttl).await;
    let mut a = cluster
        .acquire(0, "a")
        .await
        .expect("acquire")
        .expect("free");
    assert_eq!(
        cluster.acquire(0, "b").await.expect("acquire"),
        None,
        "held"
    );
    let before = a.revision;
    cluster.renew(&mut a).await.expect("renew");
    assert!(a.revision > before);
    assert_eq!(
        cluster.holder(0).await.expect("holder").as_deref(),
        Some("a")
    );

    // A renewal whose answer was lost: the holder's revision is stale, the entry still its own.
    let mut stale = a.clone();
    cluster.renew(&mut a).await.expect("renew");
    cluster
        .renew(&mut stale)
        .await
        .expect("still a's: carries on");
    assert_eq!(stale.revision, a.revision);

    // Expired and unclaimed: the holder creates it again.
    tokio::time::sleep(ttl + Duration::from_millis(1500)).await;
    assert_eq!(cluster.holder(0).await.expect("holder"), None, "expired");
    cluster.renew(&mut a).await.expect("re-created");
    assert_eq!(
        cluster.holder(0).await.expect("holder").as_deref(),
        Some("a")
    );

    // Expired and taken by b: a has lost it, and releasing it does not touch b's.
    tokio::time::sleep(ttl + Duration::from_millis(1500)).await;
    let b = cluster
        .acquire(0, "b")
        .await
        .expect("acquire")
        .expect("expired");
    let lost = cluster.renew(&mut a).await.expect_err("lost");
    assert!(lost.to_string().contains("held by b"), "{lost}");
    cluster
        .release(&a)
        .await
        .expect("a stale release is harmless");
    assert_eq!(
        cluster.holder(0).await.expect("holder").as_deref(),
        Some("b")
    );
    cluster.release(&b).await.expect("release");
    assert_eq!(cluster.holder(0).await.expect("holder"), None);
    assert!(cluster.acquire(0, "c").await.expect("acquire").is_some());
}

#[tokio::test]
async fn a_writer_that_lost_the_log_can_never_append_again() {
    let server = NatsServer::start();
    let cluster = open(&server, Duration::from_secs(10)).await;
    let log = cluster.partition_log(3).await.expect("log");
    assert_eq!(log.last().await.expect("last"), 0);
    // Writer A: from an empty log.
    let Appended::Written(a1) = log.append(Bytes::from("a1"), 0).await.expect("append") else {
        panic!("first append refused");
    };
    let Appended::Written(a2) = log.append(Bytes::from("a2"), a1).await.expect("append") else {
        panic!("second append refused");
    };
    // B takes over: reads the end, writes its marker on it.
    let end = log.last().await.expect("last");
    assert_eq!(end, a2);
    let Appended::Written(marker) = log
        .append(Bytes::from("b-marker"), end)
        .await
        .expect("marker")
    else {
        panic!("marker refused");
    };
    // A, late, appends where it believes the log ends: refused, nothing written.
    assert_eq!(
        log.append(Bytes::from("a3"), a2).await.expect("answer"),
        Appended::Fenced
    );
    assert_eq!(log.last().await.expect("last"), marker);
    assert_eq!(log.get(marker).await.expect("get"), Bytes::from("b-marker"));
    assert_eq!(log.get(a1).await.expect("get"), Bytes::from("a1"));
    // And the logs of other partitions are their own.
    let other = cluster.partition_log(4).await.expect("log");
    assert_eq!(other.last().await.expect("last"), 0);
}

/// The map changes after creation only by compare-and-set (orgs placed since), every process
/// follows it, and an instance restarted with the creation flags is still accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_partition_map_changes_by_compare_and_set_and_is_followed() {
    let server = NatsServer::start();
    let cluster = open(&server, Duration::from_secs(10)).await;
    let created = PartitionMap::new(4, BTreeMap::from([("big".to_owned(), 3)]))
        .and_then(|m| m.with_reserved(2))
        .expect("map");
    cluster.partition_map(Some(&created)).await.expect("create");
    let live = cluster.live_map().await.expect("live");
    let (first, map) = live.current();
    assert_eq!(*map, created);
    assert!((0..50).all(|i| map.partition_of(&format!("org-{i}")) < 2));

    let mut placed = created.clone();
    placed.table.insert("new".to_owned(), 2);
    let second = cluster
        .update_map(&placed, first)
        .await
        .expect("update")
        .expect("at the revision read");
    assert!(second > first);
    assert_eq!(
        cluster.update_map(&created, first).await.expect("update"),
        None,
        "a writer that read an older revision is refused"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while live.current().0 != second {
        assert!(std::time::Instant::now() < deadline, "the live map follows");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(live.map().partition_of("new"), 2);
    // Restarted with the creation flags: accepted; other fixed settings are not.
    assert_eq!(
        cluster.partition_map(Some(&created)).await.expect("same"),
        placed
    );
    let other = PartitionMap::new(4, BTreeMap::new())
        .and_then(|m| m.with_reserved(1))
        .expect("map");
    let e = cluster
        .partition_map(Some(&other))
        .await
        .expect_err("fixed");
    assert!(e.to_string().contains("(2 reserved)"), "{e}");
}

#[tokio::test]
async fn each_live_instance_is_counted_once_while_heartbeats_go_on() {
    let server = NatsServer::start();
    let cluster = open(&server, Duration::from_secs(10)).await;
    cluster.heartbeat("a").await.expect("heartbeat");
    cluster.heartbeat("b").await.expect("heartbeat");
    // Both instances heartbeat without pause while the instances are listed: the listing's
    // consumer delivers those puts too.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let beating = {
        let (cluster, stop) = (cluster.clone(), stop.clone());
        tokio::spawn(async move {
            let mut beats = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for i in ["a", "b"] {
                    cluster.heartbeat(i).await.expect("heartbeat");
                    beats += 1;
                }
            }
            beats
        })
    };
    for _ in 0..200 {
        assert_eq!(
            cluster.live_instances().await.expect("list"),
            ["a", "b"],
            "each instance once"
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(beating.await.expect("heartbeats") > 0);
}

#[tokio::test]
async fn an_instance_that_stops_heartbeating_is_no_longer_counted_after_a_ttl() {
    let server = NatsServer::start();
    let ttl = Duration::from_secs(1);
    let cluster = open(&server, ttl).await;
    cluster.heartbeat("gone").await.expect("heartbeat");
    cluster.heartbeat("stays").await.expect("heartbeat");
    assert_eq!(
        cluster.live_instances().await.expect("list"),
        ["gone", "stays"]
    );
    // Only "stays" goes on; the bucket's max age removes the other's last heartbeat.
    let deadline = std::time::Instant::now() + ttl * 5;
    loop {
        cluster.heartbeat("stays").await.expect("heartbeat");
        let live = cluster.live_instances().await.expect("list");
        if live == ["stays"] {
            break;
        }
        assert_eq!(live, ["gone", "stays"], "nothing else is ever counted");
        assert!(
            std::time::Instant::now() < deadline,
            "still counted 5 TTLs after its last heartbeat"
        );
        tokio::time::sleep(ttl / 4).await;
    }
}
