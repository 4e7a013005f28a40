//! Cluster mode: one `Views` endpoint over every partition's projector.
//!
//! Each partition of a cluster has its own projector (`wfl-projector --partition N`), whose
//! views hold that partition's orgs, at that partition's sequences. A gateway started with
//! `--projector N=ADDR` for the partitions serves `Views` by forwarding each call to the
//! projector of the partition it is about:
//!
//! - a call about one org (`org_id`; for `Explain` of a figure, `figure.request.org_id`, or
//!   `figure.thresholds.org_id` for a threshold figure; with neither, the one org of a caller
//!   whose token is scoped to one, which also routes that caller's `Explain` by event ids) goes
//!   to that org's partition;
//! - a call naming a partition with request metadata `wfl-partition: N` goes to it (views of
//!   every org of that partition);
//! - `ThresholdWatch` of every org and `Explain` by event ids ask every partition and merge the
//!   answers: statuses and events name their org, and an org is on one partition only. The
//!   merged answer's `as_of_sequence` is 0 (there is no cluster-wide sequence, so a merged call
//!   with `as_of_sequence` or `min_sequence` is `INVALID_ARGUMENT`) and response
//!   metadata `wfl-partition-sequences` gives each partition's (`0=120,1=98`); a
//!   `ThresholdWatch` without `as_of_date` is evaluated on every partition at the latest
//!   effective date any partition holds, as one ledger would;
//! - a view (`Separations`, `Headcount`...) of every org across partitions is
//!   `INVALID_ARGUMENT`: its figures would add counts of different sequence spaces into one
//!   answer with one `as_of_sequence` and evidence paths of several projectors. Ask per org or
//!   per partition.
//!
//! The caller's `authorization` is passed on, so the projector checks the caller as if called
//! directly (run it with the same tokens file). Answers carry `wfl-partition` in their metadata;
//! a projector's error is returned as it is, and one that cannot be reached is `UNAVAILABLE`
//! naming its partition and address.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use futures::future::join_all;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status};
use wfl_auth::Conn;
use wfl_bus::cluster::LiveMap;
use wfl_proto::pb;
use wfl_proto::pb::views_client::ViewsClient;

pub use wfl_bus::cluster::PARTITION_HEADER;
/// Response metadata of a merged answer: each partition's sequence (`0=120,1=98`).
pub const SEQUENCES_HEADER: &str = "wfl-partition-sequences";
/// The largest answer taken from a projector (a view of a big org is several MiB).
const MAX_ANSWER: usize = 256 << 20;

/// The projectors of a cluster's partitions, by partition.
#[derive(Clone)]
pub struct ViewsRouter {
    /// Followed: an org placed since creation is asked at its new partition.
    map: LiveMap,
    projectors: Arc<BTreeMap<u32, (String, ViewsClient<Conn>)>>,
    /// Callers are authenticated here ([`ViewsRouter::guarded`]): only a bearer token can be
    /// passed on, so a caller known by its client certificate alone is refused.
    guarded: bool,
}

impl std::fmt::Debug for ViewsRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ViewsRouter")
            .field("partitions", &self.map.map().count)
            .field(
                "projectors",
                &self
                    .projectors
                    .iter()
                    .map(|(p, (addr, _))| (p, addr))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// A projector address that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("--projector {partition}=...: partition {partition} does not exist (the cluster has {count})")]
    NoSuchPartition { partition: u32, count: u32 },
    #[error("--projector {partition}={addr}: {source}")]
    Address {
        partition: u32,
        addr: String,
        source: wfl_auth::client::Error,
    },
}

impl ViewsRouter {
    /// A router over `projectors` (partition → address), reached with `credentials` (TLS; the
    /// token is each caller's own). Connects on first use.
    ///
    /// # Errors
    /// A partition the map does not have, or an address that cannot be used.
    pub fn new(
        map: LiveMap,
        projectors: &BTreeMap<u32, String>,
        credentials: &wfl_auth::Credentials,
    ) -> Result<Self, RouteError> {
        let credentials = wfl_auth::Credentials {
            token: None,
            partition: None,
            ..credentials.clone()
        };
        let mut clients = BTreeMap::new();
        let count = map.map().count;
        for (&partition, addr) in projectors {
            if partition >= count {
                return Err(RouteError::NoSuchPartition { partition, count });
            }
            let conn = credentials
                .connect_lazy(addr)
                .map_err(|source| RouteError::Address {
                    partition,
                    addr: addr.clone(),
                    source,
                })?;
            let client = ViewsClient::new(conn).max_decoding_message_size(MAX_ANSWER);
            clients.insert(partition, (addr.clone(), client));
        }
        Ok(Self {
            map,
            projectors: Arc::new(clients),
            guarded: false,
        })
    }

    /// Says whether this gateway authenticates its callers (a tokens file): then a call must
    /// carry a bearer token, the only credential the projector can be shown on the caller's
    /// behalf (a client certificate stays with the connection it was presented on).
    #[must_use]
    pub fn guarded(self, guarded: bool) -> Self {
        Self { guarded, ..self }
    }

    /// The `Views` service to serve.
    #[must_use]
    pub fn into_service(self) -> pb::views_server::ViewsServer<Self> {
        pb::views_server::ViewsServer::new(self).max_encoding_message_size(MAX_ANSWER)
    }

    /// The partition named by request metadata, if any.
    fn named<T>(&self, request: &Request<T>) -> Result<Option<u32>, Status> {
        request
            .metadata()
            .get(PARTITION_HEADER)
            .map(|v| self.map.map().named_partition(v.to_str().ok()))
            .transpose()
            .map_err(Status::invalid_argument)
    }

    /// The partition a call is about: its org's, the one its metadata names (they must agree),
    /// or `None` for every org of every partition (only with more than one partition).
    fn partition_of<T>(&self, request: &Request<T>, org: &str) -> Result<Option<u32>, Status> {
        let named = self.named(request)?;
        let map = self.map.map();
        if org.is_empty() {
            return Ok(named.or((map.count == 1).then_some(0)));
        }
        let p = map.partition_of(org);
        match named {
            Some(n) if n != p => Err(Status::invalid_argument(format!(
                "metadata {PARTITION_HEADER}: org {org} is on partition {p}, not {n}"
            ))),
            _ => Ok(Some(p)),
        }
    }

    fn client(&self, partition: u32) -> Result<(&str, ViewsClient<Conn>), Status> {
        self.projectors
            .get(&partition)
            .map(|(addr, c)| (addr.as_str(), c.clone()))
            .ok_or_else(|| {
                Status::unavailable(format!(
                    "no projector is configured for partition {partition} (gateway flag --projector {partition}=ADDR)"
                ))
            })
    }

    /// `message` as a request to a projector, carrying the caller's credentials.
    fn forward<T, M>(&self, request: &Request<T>, message: M) -> Result<Request<M>, Status> {
        let mut out = Request::new(message);
        match request.metadata().get("authorization") {
            Some(auth) => {
                out.metadata_mut().insert("authorization", auth.clone());
            }
            None if self.guarded => {
                return Err(Status::unauthenticated(
                    "Views through a cluster gateway pass the caller's bearer token on to the partition's projector; a caller known by its client certificate alone cannot be passed on: give a token (--token), or call the projector directly",
                ))
            }
            None => {}
        }
        Ok(out)
    }

    /// Calls partition `p`'s projector with `message`; the answer names the partition.
    async fn call<T, M, R, F, Fut>(
        &self,
        request: &Request<T>,
        partition: u32,
        message: M,
        rpc: F,
    ) -> Result<Response<R>, Status>
    where
        F: FnOnce(ViewsClient<Conn>, Request<M>) -> Fut,
        Fut: std::future::Future<Output = Result<Response<R>, Status>>,
    {
        let (addr, client) = self.client(partition)?;
        let answer = rpc(client, self.forward(request, message)?)
            .await
            .map_err(|s| unreachable_named(s, partition, addr))?;
        let mut out = Response::new(answer.into_inner());
        out.metadata_mut()
            .insert(PARTITION_HEADER, MetadataValue::from(partition));
        Ok(out)
    }

    /// A view: one partition's projector (see the module docs).
    async fn view<F, Fut>(
        &self,
        request: Request<pb::ViewRequest>,
        rpc: F,
    ) -> Result<Response<pb::ViewResponse>, Status>
    where
        F: FnOnce(ViewsClient<Conn>, Request<pb::ViewRequest>) -> Fut,
        Fut: std::future::Future<Output = Result<Response<pb::ViewResponse>, Status>>,
    {
        let caller = wfl_auth::caller(&request)?;
        let mut message = request.get_ref().clone();
        message.org_id = caller.single_org("org_id", std::mem::take(&mut message.org_id))?;
        let partition = self.partition_of(&request, &message.org_id)?.ok_or_else(|| {
            Status::invalid_argument(format!(
                "org_id: empty asks for every org, and this cluster's {} partitions each have their own orgs and sequences: name an org, or a partition with metadata {PARTITION_HEADER}",
                self.map.map().count
            ))
        })?;
        self.call(&request, partition, message, rpc).await
    }

    /// Asks every partition's projector `message` at once; each answer with its partition.
    async fn ask_every<T, M, R, F, Fut>(
        &self,
        request: &Request<T>,
        message: &M,
        rpc: F,
    ) -> Result<Vec<(u32, R)>, Status>
    where
        M: Clone,
        F: Fn(ViewsClient<Conn>, Request<M>) -> Fut + Clone,
        Fut: std::future::Future<Output = Result<Response<R>, Status>>,
    {
        join_all((0..self.map.map().count).map(|p| {
            let (message, rpc) = (message.clone(), rpc.clone());
            async move {
                self.call(request, p, message, rpc)
                    .await
                    .map(|a| (p, a.into_inner()))
            }
        }))
        .await
        .into_iter()
        .collect()
    }
}

/// A projector that cannot be reached is `UNAVAILABLE` naming it; its own answers pass as they
/// are.
fn unreachable_named(s: Status, partition: u32, addr: &str) -> Status {
    if s.code() == tonic::Code::Unavailable {
        Status::unavailable(format!(
            "partition {partition}'s projector at {addr}: {}",
            s.message()
        ))
    } else {
        s
    }
}

/// `0=120,1=98`: each partition's sequence in a merged answer.
/// Most events one `ThresholdWatch` answer lists (`ThresholdRequest.with_event_ids`), as a
/// projector answers.
const MAX_LISTED: usize = 10_000;

/// The merged statuses with at most `budget` events listed among them, shared as one projector
/// shares them: the counted events of every status first, then the excluded, the notice-only
/// and the steps' (each partition listed up to its own budget; the counts say how many there
/// are).
fn listed_within(
    mut statuses: Vec<pb::ThresholdStatus>,
    mut budget: usize,
) -> Vec<pb::ThresholdStatus> {
    fn keep<T>(list: &mut Vec<T>, budget: &mut usize) {
        list.truncate(*budget);
        *budget -= list.len();
    }
    for s in &mut statuses {
        keep(&mut s.event_ids, &mut budget);
    }
    for s in &mut statuses {
        keep(&mut s.excluded, &mut budget);
    }
    for s in &mut statuses {
        keep(&mut s.notice_only_event_ids, &mut budget);
    }
    for s in &mut statuses {
        for step in &mut s.steps {
            keep(&mut step.effective_too_early_event_ids, &mut budget);
        }
    }
    statuses
}

/// A merged answer has no sequence of its own: `as_of_sequence` and `min_sequence` name one
/// partition's sequence, so they need the call to go to one partition (`how`: how to name it).
fn refuse_sequences(as_of_sequence: u64, min_sequence: u64, how: &str) -> Result<(), Status> {
    for (field, value) in [
        ("as_of_sequence", as_of_sequence),
        ("min_sequence", min_sequence),
    ] {
        if value != 0 {
            return Err(Status::invalid_argument(format!(
                "{field}: every partition has its own sequences; with {field} name {how}"
            )));
        }
    }
    Ok(())
}

fn sequences(
    of: impl Iterator<Item = (u32, u64)>,
) -> Result<MetadataValue<tonic::metadata::Ascii>, Status> {
    of.map(|(p, s)| format!("{p}={s}"))
        .collect::<Vec<_>>()
        .join(",")
        .parse()
        .map_err(|_| Status::internal("partition sequences are not a header value"))
}

#[tonic::async_trait]
impl pb::views_server::Views for ViewsRouter {
    async fn separations(
        &self,
        r: Request<pb::ViewRequest>,
    ) -> Result<Response<pb::ViewResponse>, Status> {
        self.view(r, |mut c, m| async move { c.separations(m).await })
            .await
    }

    async fn headcount(
        &self,
        r: Request<pb::ViewRequest>,
    ) -> Result<Response<pb::ViewResponse>, Status> {
        self.view(r, |mut c, m| async move { c.headcount(m).await })
            .await
    }

    async fn cohort_exposure(
        &self,
        r: Request<pb::ViewRequest>,
    ) -> Result<Response<pb::ViewResponse>, Status> {
        self.view(r, |mut c, m| async move { c.cohort_exposure(m).await })
            .await
    }

    async fn hiring_signals(
        &self,
        r: Request<pb::ViewRequest>,
    ) -> Result<Response<pb::ViewResponse>, Status> {
        self.view(r, |mut c, m| async move { c.hiring_signals(m).await })
            .await
    }

    async fn ai_adoption(
        &self,
        r: Request<pb::ViewRequest>,
    ) -> Result<Response<pb::ViewResponse>, Status> {
        self.view(r, |mut c, m| async move { c.ai_adoption(m).await })
            .await
    }

    async fn threshold_watch(
        &self,
        r: Request<pb::ThresholdRequest>,
    ) -> Result<Response<pb::ThresholdResponse>, Status> {
        let caller = wfl_auth::caller(&r)?;
        let mut message = r.get_ref().clone();
        message.org_id = caller.single_org("org_id", std::mem::take(&mut message.org_id))?;
        if let Some(p) = self.partition_of(&r, &message.org_id)? {
            return self
                .call(&r, p, message, |mut c, m| async move {
                    c.threshold_watch(m).await
                })
                .await;
        }
        refuse_sequences(
            message.as_of_sequence,
            message.min_sequence,
            "an org, or a partition with metadata wfl-partition",
        )?;
        let watch = |mut c: ViewsClient<Conn>, m| async move { c.threshold_watch(m).await };
        let mut answers = self.ask_every(&r, &message, watch).await?;
        if message.as_of_date.is_empty() {
            // Evaluated at the latest effective date of the whole cluster, as one ledger would (a
            // partition with no events yet answers with today's date: not an effective date).
            let latest = answers
                .iter()
                .filter(|(_, a)| a.as_of_sequence > 0)
                .map(|(_, a)| a.as_of_date.clone())
                .max();
            if let Some(latest) = latest.filter(|l| {
                answers
                    .iter()
                    .any(|(_, a)| a.as_of_sequence > 0 && a.as_of_date != *l)
            }) {
                message.as_of_date = latest;
                answers = self.ask_every(&r, &message, watch).await?;
            }
        }
        let sequences = sequences(answers.iter().map(|(p, a)| (*p, a.as_of_sequence)))?;
        // The date every non-empty partition was evaluated at (they agree after the re-ask).
        let as_of_date = answers
            .iter()
            .filter(|(_, a)| a.as_of_sequence > 0)
            .chain(&answers)
            .map(|(_, a)| a.as_of_date.clone())
            .next()
            .unwrap_or_default();
        let mut out = Response::new(pb::ThresholdResponse {
            as_of_sequence: 0,
            views_sequence: 0,
            as_of_date,
            statuses: listed_within(
                answers.into_iter().flat_map(|(_, a)| a.statuses).collect(),
                MAX_LISTED,
            ),
        });
        out.metadata_mut().insert(SEQUENCES_HEADER, sequences);
        Ok(out)
    }

    async fn explain(
        &self,
        r: Request<pb::ExplainRequest>,
    ) -> Result<Response<pb::ExplainResponse>, Status> {
        let caller = wfl_auth::caller(&r)?;
        let mut message = r.get_ref().clone();
        if let Some(figure) = &mut message.figure {
            // The org the projector reads the figure for: a threshold figure's is in its
            // `ThresholdWatch` request, every other figure's in its view request.
            let (field, org) = if figure.view == "thresholds" {
                let t = figure.thresholds.get_or_insert_with(Default::default);
                ("figure.thresholds.org_id", &mut t.org_id)
            } else {
                let request = figure.request.get_or_insert_with(Default::default);
                ("figure.request.org_id", &mut request.org_id)
            };
            *org = caller.single_org(field, std::mem::take(org))?;
            let org = org.clone();
            let p = self.partition_of(&r, &org)?.ok_or_else(|| {
                Status::invalid_argument(format!(
                    "{field}: a figure of every org spans partitions; name an org, or a partition with metadata wfl-partition"
                ))
            })?;
            return self
                .call(&r, p, message, |mut c, m| async move { c.explain(m).await })
                .await;
        }
        // Events by id: a caller of one org can only be shown that org's, which live on its
        // partition; anyone else's ids may be on any.
        let own = caller
            .single_org("event_ids", String::new())
            .unwrap_or_default();
        if let Some(p) = self.partition_of(&r, &own)? {
            return self
                .call(&r, p, message, |mut c, m| async move { c.explain(m).await })
                .await;
        }
        refuse_sequences(
            message.as_of_sequence,
            message.min_sequence,
            "a partition with metadata wfl-partition",
        )?;
        let answers = self
            .ask_every(&r, &message, |mut c: ViewsClient<Conn>, m| async move {
                c.explain(m).await
            })
            .await?;
        let sequences = sequences(answers.iter().map(|(p, a)| (*p, a.as_of_sequence)))?;
        // In the order asked (each id is on one partition at most).
        let mut found: HashMap<String, pb::ExplainedEvent> = answers
            .into_iter()
            .flat_map(|(_, a)| a.events)
            .map(|e| (e.event_id.clone(), e))
            .collect();
        let mut events: Vec<pb::ExplainedEvent> = message
            .event_ids
            .iter()
            .filter_map(|id| {
                found
                    .remove(id.trim())
                    .or_else(|| found.remove(&id.trim().to_lowercase()))
            })
            .collect();
        events.extend(found.into_values());
        let mut out = Response::new(pb::ExplainResponse {
            as_of_sequence: 0,
            total: events.len() as u64,
            events,
            next_page_token: String::new(),
        });
        out.metadata_mut().insert(SEQUENCES_HEADER, sequences);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::{listed_within, pb};

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| i.to_string()).collect()
    }

    /// Two partitions' statuses, each within its own budget, are cut to one answer's: counted
    /// events of every status first, then the excluded, the notice-only and the steps'.
    #[test]
    fn a_merged_watch_lists_at_most_one_answers_events_counted_first() {
        let status = |counted, notice, late| pb::ThresholdStatus {
            event_ids: ids(counted),
            notice_only_event_ids: ids(notice),
            steps: vec![pb::ThresholdStep {
                effective_too_early_event_ids: ids(late),
                ..Default::default()
            }],
            ..Default::default()
        };
        let merged = listed_within(vec![status(6, 3, 1), status(3, 2, 2)], 10);
        let lens: Vec<_> = merged
            .iter()
            .map(|s| {
                (
                    s.event_ids.len(),
                    s.notice_only_event_ids.len(),
                    s.steps[0].effective_too_early_event_ids.len(),
                )
            })
            .collect();
        assert_eq!(lens, vec![(6, 1, 0), (3, 0, 0)]);
        let all = listed_within(vec![status(2, 1, 1), status(1, 1, 1)], 10);
        assert_eq!(
            all[0].event_ids.len() + all[1].steps[0].effective_too_early_event_ids.len(),
            3
        );
    }
}
