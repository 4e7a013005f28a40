//! `wfl cluster map` and `wfl cluster place`: a cluster's partition map, and putting a new
//! tenant on a partition of its own after the cluster was created.
//!
//! An org's events must all be on one partition (its chain, its views, the audit's "every org
//! on its partition"), so an org can be placed only while it has no events anywhere. Placing
//! org X from partition `h` (where the map sends it now) onto partition `r` is three
//! compare-and-set writes of the map in KV and one wait, with nothing of wfl's own deciding:
//!
//! 1. **Close.** The map gets `moving X=r` (revision R). A gateway that has read R refuses X's
//!    events `UNAVAILABLE` (retryable), and from the moment a partition's writer routes by R it
//!    commits none of them: those published before are handed back to the broker and delivered
//!    again a second later ([`wfl_bus::Acker::defer`]).
//! 2. **Fence.** Wait until `h`'s partition log holds a map notice of revision ≥ R (the writer
//!    writes one whenever it sees a new map revision, and at every start, so a takeover in
//!    between writes one too). Everything after the notice in `h`'s log was decided under R or
//!    later, so the notice's word on X (the sequence of X's first event on `h`, 0 for none)
//!    is final.
//! 3. **Move or give up.** No events: the map gets `X=r` in its table and loses `moving X`;
//!    from then every gateway routes X to `r`, and a writer of any other partition forwards the
//!    messages of X it still receives to `r`'s range ([`wfl_bus::Acker::redirect`]: new
//!    message id, same payload; the ledger's event-id check makes a repeat harmless). Events
//!    found, or no notice within the patience (no live owner of `h`): `moving X` is taken
//!    out again and X stays where it was, with nothing lost (its held messages are delivered
//!    again and committed on `h`).
//!
//! A placer that dies between 1 and 3 leaves X closed (its events refused, retryable);
//! `wfl cluster place X r` again carries on (it writes the map again, which makes a new revision to wait for), and
//! `wfl cluster place X --abort` reopens it where it was.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use prost::Message;
use wfl_bus::cluster::{Cluster, PartitionMap};
use wfl_proto::internal as ipb;

/// Connects to the cluster at `nats_url` (comma-separated node URLs) without creating anything.
///
/// # Errors
/// NATS cannot be reached, or no ledger instance has created the cluster.
pub async fn attach(nats_url: &str, config: wfl_bus::NatsConfig) -> anyhow::Result<Cluster> {
    let config = wfl_bus::NatsConfig {
        provision: false,
        ..config
    };
    let bus = wfl_bus::NatsBus::connect(nats_url, config).await?;
    Ok(Cluster::attach(bus.client()).await?)
}

/// The map as `wfl cluster map` prints it.
#[must_use]
pub fn describe(revision: u64, map: &PartitionMap) -> String {
    let mut s = format!(
        "partition map (KV revision {revision}): {} partitions; orgs hashed over 0..{}",
        map.count,
        map.hashed()
    );
    if map.reserved > 0 {
        s.push_str(&format!(
            "; {}..{} reserved for placed orgs",
            map.hashed(),
            map.count
        ));
    }
    for (org, p) in &map.table {
        s.push_str(&format!("\n  {org} -> partition {p}"));
    }
    for (org, p) in &map.moving {
        s.push_str(&format!(
            "\n  {org} -> partition {p}: being placed (its events are refused, retryable; `wfl cluster place {org} {p}` carries on, `--abort` gives up)"
        ));
    }
    s
}

/// What [`place`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    /// The partition the org was on.
    pub from: u32,
    /// The partition it is on now.
    pub to: u32,
    /// The map revision that placed it.
    pub revision: u64,
}

/// Changes the map with `change` by compare-and-set, reading it again after a concurrent
/// change, until it lands; `change` says `Ok(None)` when there is nothing to write. Returns
/// the map and revision written (or read, when nothing was).
async fn update(
    cluster: &Cluster,
    at_least: u64,
    mut change: impl FnMut(&PartitionMap) -> anyhow::Result<Option<PartitionMap>>,
) -> anyhow::Result<(u64, PartitionMap)> {
    let patience = Instant::now() + Duration::from_secs(10);
    loop {
        let (revision, map) = cluster.map_entry().await?;
        if revision < at_least {
            // A replica behind a write this placer saw (reads are direct gets): read again,
            // rather than decide "nothing to do" on an old map.
            if Instant::now() >= patience {
                bail!("the partition map read is still at revision {revision}, before {at_least}");
            }
            tokio::time::sleep(POLL).await;
            continue;
        }
        let Some(next) = change(&map)? else {
            return Ok((revision, map));
        };
        if let Some(written) = cluster.update_map(&next, revision).await? {
            return Ok((written, next));
        }
    }
}

/// How often the placer reads the partition log while it waits for the notice.
const POLL: Duration = Duration::from_millis(100);

/// Places `org` on `to` (see the module docs), waiting up to `patience` for the partition it
/// leaves to confirm.
///
/// # Errors
/// The org has events (it stays where it is), the partition does not exist, the org is being
/// placed elsewhere, its partition has no live owner within `patience`, or NATS fails.
pub async fn place(
    cluster: &Cluster,
    org: &str,
    to: u32,
    patience: Duration,
) -> anyhow::Result<Placed> {
    // The gateway's own rule: an org it would refuse is never placed.
    if let Err(why) = wfl_domain::validate::check_token(org, false) {
        bail!("org {org:?}: {why}");
    }
    let (start, map) = cluster.map_entry().await?;
    if to >= map.count {
        bail!(
            "partition {to} does not exist (the cluster has {}: 0..{})",
            map.count,
            map.count
        );
    }
    if let Some(other) = map.moving.get(org).filter(|p| **p != to) {
        bail!("org {org} is being placed on partition {other}; finish that (`wfl cluster place {org} {other}`) or give it up (`--abort`) first");
    }
    let from = map.partition_of(org);
    if from == to && !map.is_moving(org) {
        // Nothing moves: record it in the table, so the hash can never send it elsewhere.
        let (revision, _) = update(cluster, start, |m| {
            Ok((m.table.get(org) != Some(&to)).then(|| {
                let mut next = m.clone();
                next.table.insert(org.to_owned(), to);
                next
            }))
        })
        .await?;
        return Ok(Placed { from, to, revision });
    }
    let log = cluster
        .existing_partition_log(from)
        .await?
        .ok_or_else(|| anyhow!("partition {from} (org {org}'s now) has no log yet: no ledger instance has written it; start the cluster's instances first"))?;
    // 1. Close: every notice after this position is about this placement or a later map.
    let seen = log.last().await?;
    let closing = update(cluster, start, |m| {
        if m.partition_of(org) != from {
            bail!(
                "org {org} was placed on partition {} meanwhile",
                m.partition_of(org)
            );
        }
        let mut next = m.clone();
        next.moving.insert(org.to_owned(), to);
        Ok(Some(next))
    })
    .await;
    let (result, known) = match closing {
        Ok((closed, _)) => (
            fence_and_move(cluster, &log, org, from, to, closed, seen, patience).await,
            closed,
        ),
        // The close may have landed although its answer was lost.
        Err(e) => (Err(e), start),
    };
    let Err(e) = result else {
        return result;
    };
    // The move may have landed although its answer was lost: say so rather than "stays".
    if let Ok((revision, m)) = cluster.map_entry().await {
        if m.table.get(org) == Some(&to) && !m.is_moving(org) {
            return Ok(Placed { from, to, revision });
        }
    }
    // Whatever failed after the close, the org must not stay closed: gateways would refuse its
    // events, and those held would hold up the partition's inbox.
    match reopen_at(cluster, org, known).await {
        Ok(_) => Err(e.context(format!("org {org} stays on partition {from}"))),
        Err(r) => Err(e.context(format!(
            "org {org} may still be closed for placement (its events refused until it is reopened; reopening failed: {r:#}); run `wfl cluster place {org} --abort`"
        ))),
    }
}

/// Steps 2 and 3 of [`place`], from the close at map revision `closed` (the partition log of
/// `from` read up to stream sequence `seen` before it).
#[allow(clippy::too_many_arguments)]
async fn fence_and_move(
    cluster: &Cluster,
    log: &wfl_bus::cluster::PartitionLog,
    org: &str,
    from: u32,
    to: u32,
    mut closed: u64,
    mut seen: u64,
    patience: Duration,
) -> anyhow::Result<Placed> {
    let deadline = Instant::now() + patience;
    loop {
        // 2. Fence: the notice of `from`'s writer for this revision or a later one.
        let presence = loop {
            let last = log.last().await?;
            let mut found = None;
            while seen < last && found.is_none() {
                seen += 1;
                let bytes = log.get(seen).await?;
                let batch = ipb::PartitionBatch::decode(bytes)
                    .with_context(|| format!("partition {from} log message {seen}"))?;
                found = batch.notice.filter(|n| n.revision >= closed);
            }
            if let Some(notice) = found {
                break notice.leaving.into_iter().find(|o| o.org_id == org);
            }
            if Instant::now() >= deadline {
                bail!(
                    "partition {from}'s writer did not confirm map revision {closed} within {}s (is an instance owning it running?)",
                    patience.as_secs()
                );
            }
            tokio::time::sleep(POLL).await;
        };
        match presence {
            None => bail!("org {org} is no longer being placed (the placement was given up meanwhile)"),
            Some(p) if p.first_sequence > 0 => bail!(
                "org {org} has events on partition {from} (the first at ledger sequence {}): an org with history cannot be moved",
                p.first_sequence
            ),
            Some(_) => {}
        }
        // 3. Move, only from the very map the notice answered: if anything changed the map
        // since (another placement, an abort and a new close), fence again at its revision.
        let (revision, map) = cluster.map_entry().await?;
        if map.moving.get(org) != Some(&to) {
            bail!("org {org} is no longer being placed on partition {to} (changed meanwhile)");
        }
        if revision == closed {
            let mut next = map.clone();
            next.moving.remove(org);
            next.table.insert(org.to_owned(), to);
            if let Some(revision) = cluster.update_map(&next, closed).await? {
                return Ok(Placed { from, to, revision });
            }
        }
        closed = cluster.map_entry().await?.0;
    }
}

/// Gives up `org`'s placement: it stays on the partition it was on, and its held events are
/// committed there. Returns the partition, or `None` when it was not being placed.
///
/// # Errors
/// NATS fails.
pub async fn reopen(cluster: &Cluster, org: &str) -> anyhow::Result<Option<u32>> {
    reopen_at(cluster, org, 0).await
}

/// [`reopen`] on a map read at revision `at_least` or later (the close this placer wrote).
async fn reopen_at(cluster: &Cluster, org: &str, at_least: u64) -> anyhow::Result<Option<u32>> {
    let mut was = None;
    let (_, map) = update(cluster, at_least, |m| {
        was = m.moving.get(org).copied();
        Ok(was.map(|_| {
            let mut next = m.clone();
            next.moving.remove(org);
            next
        }))
    })
    .await?;
    Ok(was.map(|_| map.partition_of(org)))
}
