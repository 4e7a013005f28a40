//! Republishes committed events on the bus (`wfl.ledger.<org>.<type>`, stream `WFL_LEDGER`).
//!
//! It follows the head sequence and reads what to publish back from the store, so it can never
//! skip an event: at start it asks the bus for the last sequence the stream holds and resumes after
//! the smaller of that and its own cursor (the last sequence it fully published), so a stream that
//! lacks history (a data dir that ran on the embedded bus, a new or emptied stream) is filled from
//! the first sequence it lacks. It never blocks the writer; if the bus is down, it retries and
//! catches up.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use prost::Message;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use wfl_bus::{Bus, CommittedMessage};
use wfl_store::{Filter, Log};

use crate::{codec, Error};

const CHUNK: usize = 1000;

/// Store metadata key: the last sequence fully published on the committed stream.
const CURSOR: &str = "publisher.cursor";

pub(crate) async fn run(
    store: Arc<dyn Log>,
    bus: Arc<dyn Bus>,
    mut head: watch::Receiver<u64>,
    mut stall: crate::liveness::PublisherWatch,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let mut backoff = Backoff::default();
    let cursor = {
        let s = store.clone();
        tokio::task::spawn_blocking(move || s.meta_get(CURSOR))
            .await
            .map_err(Error::join)??
    };
    let cursor = cursor
        .and_then(|c| <[u8; 8]>::try_from(c.as_slice()).ok())
        .map(u64::from_be_bytes);
    let durable = bus.durable_inbox();
    let mut published = if durable {
        // Where the stream stands, whatever the cursor says: a data dir that ran on the embedded
        // bus, or a new or emptied stream, holds less than the cursor, and the history must be
        // republished from the first sequence the stream lacks (no gap for its consumers).
        let in_stream = loop {
            match bus.last_published_sequence().await {
                Ok(s) => break s.unwrap_or(0),
                Err(e) => {
                    warn!(error = %e, "cannot read the committed stream's last sequence; retrying");
                    if !backoff.wait(&shutdown).await {
                        return Ok(());
                    }
                }
            }
        };
        // Everything up to the cursor was fully published; a message after it may be missing from
        // the stream even if a later one is there (a pipelined publish interrupted mid-way).
        let from = cursor.map_or(in_stream, |c| c.min(in_stream));
        let head_now = *head.borrow();
        if from < head_now {
            info!(
                stream_last = in_stream,
                cursor = cursor.unwrap_or(0),
                head = head_now,
                "the committed stream lacks sequences {}..={head_now}; republishing them",
                from + 1
            );
        }
        from
    } else {
        // The in-process bus keeps no history: only events committed from now on are fanned out.
        *head.borrow()
    };
    loop {
        let target = *head.borrow_and_update();
        while published < target {
            match publish_chunk(&store, bus.as_ref(), published + 1, target).await {
                Ok(last) => {
                    published = last;
                    backoff = Backoff::default();
                    stall.progressed();
                    // The cursor describes the durable stream only: the in-process bus holds
                    // nothing a later start on NATS could count on.
                    if durable {
                        let s = store.clone();
                        // Not flushed: a cursor that lags after a crash only republishes events
                        // the stream deduplicates (Nats-Msg-Id) or consumers skip by
                        // Wfl-Sequence.
                        tokio::task::spawn_blocking(move || {
                            s.meta_put(CURSOR, &last.to_be_bytes())
                        })
                        .await
                        .map_err(Error::join)??;
                    }
                }
                Err(Error::Bus(e)) => {
                    warn!(error = %e, "publishing committed events failed; retrying");
                    stall.failed(target - published, &e);
                    if !backoff.wait(&shutdown).await {
                        return Ok(());
                    }
                }
                Err(e) => return Err(e),
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            changed = head.changed() => if changed.is_err() { return Ok(()) },
        }
    }
}

async fn publish_chunk(
    store: &Arc<dyn Log>,
    bus: &dyn Bus,
    from: u64,
    to: u64,
) -> Result<u64, Error> {
    let s = store.clone();
    let records =
        tokio::task::spawn_blocking(move || s.read(from, Some(to), &Filter::default(), CHUNK))
            .await
            .map_err(Error::join)??;
    let Some(last) = records.last().map(|r| r.sequence) else {
        return Ok(to);
    };
    let mut msgs = Vec::with_capacity(records.len());
    for r in &records {
        let c = codec::decode(r)?;
        let event = c.event.as_ref();
        let org_id = event.map(|e| e.org_id.clone()).unwrap_or_default();
        let event_type = event
            .and_then(wfl_proto::convert::event_type_of)
            .map(|t| t.as_str().to_owned())
            .unwrap_or_default();
        msgs.push(CommittedMessage {
            org_id,
            event_type,
            sequence: r.sequence,
            hash: r.hash,
            event_id: r.event_id,
            payload: Bytes::from(c.encode_to_vec()),
        });
    }
    bus.publish_committed(msgs).await?;
    Ok(last)
}

struct Backoff(Duration);

impl Default for Backoff {
    fn default() -> Self {
        Self(Duration::from_millis(50))
    }
}

impl Backoff {
    /// Waits before a retry; false when shutting down.
    async fn wait(&mut self, shutdown: &CancellationToken) -> bool {
        let d = self.0;
        self.0 = (self.0 * 2).min(Duration::from_secs(5));
        tokio::select! {
            () = shutdown.cancelled() => false,
            () = tokio::time::sleep(d) => true,
        }
    }
}
