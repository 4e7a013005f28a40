//! The gRPC `wfl.v1.Views` service. Views are answered from the projector's state: the current
//! one, or, with `as_of_sequence`, the state read as it stood at that sequence
//! ([`Projection::at`]: every effect keeps the sequences it held between, so this costs what a
//! current answer costs). An `as_of_recorded_at_micros` answer is the as-of answer at the end of
//! the ledger's prefix recorded by that instant, found by a binary search over the ledger
//! (recorded-at never decreases along a ledger written by this build: [`crate::RecordedOrder`]);
//! only for views stored before that order was checked, or an instant at or after the last
//! folded event's, does it fold the ledger's events recorded by then (read over gRPC). Errors
//! become `tonic::Status` in [`invalid`] and [`unavailable`] only.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tonic::{Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};
use wfl_domain::{Cohort, Date, OrgId, SiteId};
use wfl_projections::rules::ThresholdStatus;
use wfl_projections::views::{At, Period, Projection, Query};
use wfl_proto::pb;

use crate::typed::TypedView;
use crate::{thresholds, Shared};

/// How long a view request waits for the projector to reach its `as_of_sequence`.
const READ_YOUR_WRITES: std::time::Duration = std::time::Duration::from_secs(10);

/// A `ThresholdWatch` answer from kept rows ([`ViewsApi::kept_rows`]).
struct KeptRows {
    /// The sequence it is the answer as of.
    seq: u64,
    /// The sequence the views held.
    views: u64,
    day: wfl_domain::Date,
    /// The statuses of the packs asked.
    statuses: Vec<thresholds::Kept>,
    /// From rows evaluated before the org's latest events.
    recent: bool,
}

/// What an answer is asked "as of": a ledger sequence (0 = now) and a recorded-at instant (µs
/// since the epoch; 0 = no bound).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct AsOf {
    pub sequence: u64,
    pub recorded_at_micros: i64,
    /// Wait until the views hold this sequence, then answer from the current state.
    pub min_sequence: u64,
}

impl AsOf {
    /// A request's bounds, checking the recorded-at one (`field` names it in the error).
    pub(crate) fn new(
        sequence: u64,
        recorded_at_micros: i64,
        min_sequence: u64,
        field: &str,
    ) -> Result<Self, Status> {
        if recorded_at_micros < 0 {
            return Err(invalid(field, "µs since the Unix epoch, or 0 for no bound"));
        }
        Ok(Self {
            sequence,
            recorded_at_micros,
            min_sequence,
        })
    }
}

/// The `Views` gRPC service.
pub struct ViewsApi {
    shared: Arc<Shared>,
    /// The evidence lists of the figures explained last, so that the pages after the first cost
    /// a page, not a view (see [`Figures`]).
    figures: Figures,
    /// One whole-history answer at a time ([`Self::with_copy`]): each holds a copy of the
    /// state's maps (hundreds of MB at millions of events), so concurrent requests wait their
    /// turn instead of multiplying it.
    copies: Arc<tokio::sync::Semaphore>,
    /// [`SMALL_COPIES`] copies of one small org at a time ([`Self::with_copy`]).
    small_copies: Arc<tokio::sync::Semaphore>,
}

/// Copies of one small org that may run at once (each a blocking thread for milliseconds).
const SMALL_COPIES: usize = 2;

impl ViewsApi {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            figures: Figures::default(),
            copies: Arc::new(tokio::sync::Semaphore::new(1)),
            small_copies: Arc::new(tokio::sync::Semaphore::new(SMALL_COPIES)),
        }
    }

    /// Runs `f` on the projection as of `as_of`: the current state, the state as it stood at
    /// `as_of.sequence`, or (with a recorded-at bound) a fresh fold of the ledger's events recorded
    /// by then. A sequence the projector has not reached yet is waited for (up to
    /// [`READ_YOUR_WRITES`]), so a client can pass the sequence its `Record` returned and read its
    /// own writes. With `tallied`, an as-of answer gets the tallies of its sequence (a snapshot
    /// moved over at most the snapshot spacing: `Projection::read_at`), which the `*_counts`
    /// answers read; without, it reads the entries only.
    async fn with_projection<T>(
        &self,
        as_of: AsOf,
        tallied: bool,
        f: impl FnOnce(&At<'_>) -> T,
    ) -> Result<(u64, T), Status> {
        self.ready(&as_of).await?;
        // A recorded-at bound: the prefix recorded by then, when the folded history says where
        // it ends; else a fold of the ledger (below).
        let prefix = self.prefix(&as_of).await?;
        let current = self.shared.projection.read().await;
        if as_of.recorded_at_micros == 0 || prefix.is_some() {
            let sequence = answered_at(&as_of, prefix, current.last_sequence());
            if tallied {
                // An as-of answer may move a tally snapshot (tens of milliseconds): off the
                // async threads' run queue where the runtime allows it.
                let answer = || current.read_at(sequence, |at| (at.last_sequence(), f(at)));
                let multi_thread = tokio::runtime::Handle::current().runtime_flavor()
                    == tokio::runtime::RuntimeFlavor::MultiThread;
                return Ok(if multi_thread && sequence < current.last_sequence() {
                    tokio::task::block_in_place(answer)
                } else {
                    answer()
                });
            }
            let at = current.at(sequence);
            return Ok((at.last_sequence(), f(&at)));
        }
        drop(current);
        let p = self.fold_as_of(as_of).await?;
        let now = p.now();
        Ok((now.last_sequence(), f(&now)))
    }

    /// For a watch of one org in the current state (`bound` asks no sequence and no recorded-at
    /// bound): the sequence the answer is as of, its day and the rows of the packs asked, from
    /// the rows kept for the org ([`crate::watch_cache`]):
    /// - kept for the org's latest event and the day: the answer at the current sequence;
    /// - else kept recently ([`crate::watch_cache::Rows::recent`]), as of a sequence at or
    ///   after `min_sequence`: the answer as of that sequence (the org is being written to,
    ///   and its evaluation reads its whole history).
    ///
    /// `None` when neither, or the watch asks for another state.
    async fn kept_rows(
        &self,
        request: &thresholds::Request,
        bound: &AsOf,
    ) -> Result<Option<KeptRows>, Status> {
        let Some(org) = request
            .org
            .as_ref()
            .filter(|_| bound.sequence == 0 && bound.recorded_at_micros == 0)
        else {
            return Ok(None);
        };
        self.ready(bound).await?;
        let Some((seq, key)) = self.watch_key(org, request.as_of_date).await else {
            return Ok(None);
        };
        let views = seq;
        let (seq, day, rows, recent) = {
            let mut kept = self
                .shared
                .watch_rows
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(rows) = kept.get(&key, seq) {
                (seq, key.day, rows, false)
            } else if let Some((seq, day, rows)) =
                kept.recent(org, request.as_of_date, bound.min_sequence, Instant::now())
            {
                (seq, day, rows, true)
            } else {
                return Ok(None);
            }
        };
        let statuses = rows
            .iter()
            .filter(|k| request.packs.is_empty() || request.packs.contains(&k.status.pack))
            .cloned()
            .collect();
        Ok(Some(KeptRows {
            seq,
            views,
            day,
            statuses,
            recent,
        }))
    }

    /// The `ThresholdWatch` answer from the org's kept rows ([`Self::kept_rows`]), counted.
    async fn kept_answer(
        &self,
        request: &thresholds::Request,
        bound: &AsOf,
    ) -> Result<Option<pb::ThresholdResponse>, Status> {
        let Some(kept) = self.kept_rows(request, bound).await? else {
            return Ok(None);
        };
        self.answered_from_kept(kept.recent);
        let mut answer = thresholds::response(kept.seq, kept.day, kept.statuses, request);
        answer.views_sequence = kept.views;
        Ok(Some(answer))
    }

    /// Counts an answer given from kept rows (`recent`: rows evaluated before the org's
    /// latest events).
    fn answered_from_kept(&self, recent: bool) {
        let progress = &self.shared.progress;
        if recent {
            progress.watch_answers_recent.fetch_add(1, Relaxed);
        } else {
            progress.watch_answers_kept.fetch_add(1, Relaxed);
        }
    }

    /// The current sequence and what `org`'s rows at it were evaluated over (its latest event,
    /// and `day`, else its default day); `None` when the views keep no org index.
    async fn watch_key(
        &self,
        org: &OrgId,
        day: Option<wfl_domain::Date>,
    ) -> Option<(u64, crate::watch_cache::Key)> {
        let p = self.shared.projection.read().await;
        let seq = p.last_sequence();
        let head = p.org_head_at(org, seq)?;
        let day = day.unwrap_or_else(|| thresholds::default_as_of(&p.now(), Some(org)));
        Some((
            seq,
            crate::watch_cache::Key {
                org: org.clone(),
                head,
                day,
            },
        ))
    }

    /// [`Self::with_projection`] for an answer that reads the whole history of `org` (every
    /// org when `None`): the threshold watch, seconds at millions of events. `f` runs on a
    /// blocking thread over a copy of the state (of `org`'s entries and workers only, when
    /// given: an org's answer costs its own history, not every tenant's) gathered a part at a
    /// time, the lock released between parts, so neither the fold (which needs the lock to
    /// write) nor the runtime's workers wait for it. One large copy runs at a time (`copies`);
    /// a copy of one org of at most [`crate::WATCH_COPY_PART`] events takes its turn apart
    /// (`small_copies`), so a small tenant does not queue behind a large one's seconds.
    /// Gives the sequence answered at, the answer, and what its copy and `f` took once its turn
    /// came.
    async fn with_copy<T: Send + 'static>(
        &self,
        as_of: AsOf,
        org: Option<OrgId>,
        f: impl FnOnce(&At<'_>) -> T + Send + 'static,
    ) -> Result<(u64, T, Duration), Status> {
        self.ready(&as_of).await?;
        let prefix = self.prefix(&as_of).await?;
        let folded = if as_of.recorded_at_micros == 0 || prefix.is_some() {
            None
        } else {
            Some(self.fold_as_of(as_of).await?)
        };
        let shared = self.shared.clone();
        // A copy of one small org (a part's worth of events, and copied alone: at most half
        // the state) takes a turn of its own, so it does not queue behind a large one.
        let small = match &org {
            Some(org) => self
                .shared
                .projection
                .read()
                .await
                .copies_alone_within(org, crate::WATCH_COPY_PART as u64),
            None => false,
        };
        let turns = if small {
            &self.small_copies
        } else {
            &self.copies
        };
        let turn = Arc::clone(turns)
            .acquire_owned()
            .await
            .map_err(|_| Status::unavailable("the views are stopping"))?;
        tokio::task::spawn_blocking(move || {
            let _turn = turn;
            let started = Instant::now();
            let copy = match folded {
                Some(p) => {
                    let answer = f(&p.now());
                    return (p.last_sequence(), answer, started.elapsed());
                }
                None => crate::copy_in_parts(|| shared.projection.blocking_read(), org.as_ref()).0,
            };
            let at = copy.at(answered_at(&as_of, prefix, copy.last_sequence()));
            let answer = f(&at);
            (at.last_sequence(), answer, started.elapsed())
        })
        .await
        .map_err(|e| Status::internal(format!("the answer's evaluation failed: {e}")))
    }

    /// With a recorded-at bound, the end of the prefix recorded by then, when the folded history
    /// says where it ends (`None` without a bound, or when the ledger must be folded instead).
    async fn prefix(&self, as_of: &AsOf) -> Result<Option<u64>, Status> {
        match as_of.recorded_at_micros {
            0 => Ok(None),
            bound => self.recorded_prefix(bound).await,
        }
    }

    /// Waits until the views can answer `as_of`: the stored state read back, and the sequence
    /// asked (or the `min_sequence`) folded.
    async fn ready(&self, as_of: &AsOf) -> Result<(), Status> {
        let mut loaded = self.shared.loaded.subscribe();
        if !*loaded.borrow() {
            let ready = tokio::time::timeout(READ_YOUR_WRITES, loaded.wait_for(|l| *l)).await;
            if !matches!(ready, Ok(Ok(_))) {
                return Err(Status::unavailable(format!(
                    "the views are still reading their stored state back (not done within {READ_YOUR_WRITES:?}); retry shortly"
                )));
            }
        }
        let wait_for = as_of.sequence.max(as_of.min_sequence);
        if wait_for > 0 {
            let mut checkpoint = self.shared.checkpoint.subscribe();
            let reached = matches!(
                tokio::time::timeout(READ_YOUR_WRITES, checkpoint.wait_for(|c| *c >= wait_for))
                    .await,
                Ok(Ok(_))
            );
            if !reached {
                let now = *checkpoint.borrow();
                return Err(Status::unavailable(format!(
                    "the views reflect sequence {now}; sequence {wait_for} was not reached within {READ_YOUR_WRITES:?}"
                )));
            }
        }
        Ok(())
    }

    /// Answers one of the five document views.
    async fn view<T: TypedView>(
        &self,
        caller: &wfl_auth::Caller,
        mut r: pb::ViewRequest,
        tallied: bool,
        view: fn(&At<'_>, &Query) -> T,
    ) -> Result<Response<pb::ViewResponse>, Status> {
        r.org_id = caller.single_org("org_id", r.org_id)?;
        let q = query(&r)?;
        let as_of = AsOf::new(
            r.as_of_sequence,
            r.as_of_recorded_at_micros,
            r.min_sequence,
            "as_of_recorded_at_micros",
        )?;
        let (seq, v) = self
            .with_projection(as_of, tallied, |p| view(p, &q))
            .await?;
        let hash = self.hash_at(seq).await?;
        let root = self.root_at(seq).await;
        let mut response = view_response(seq, hash, &v);
        response.get_mut().as_of_root = root;
        Ok(response)
    }

    /// The ledger's Merkle root at tree size `sequence` (empty for 0, or when the ledger does not
    /// answer: the principal the projector uses lacks the auditor role, or the ledger is away;
    /// the answer then carries no root and an auditor's check says so). Cached for the last size.
    async fn root_at(&self, sequence: u64) -> Vec<u8> {
        if sequence == 0 {
            return Vec::new();
        }
        {
            let last = self
                .shared
                .last_root
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if last.0 == sequence {
                return last.1.clone();
            }
        }
        let Ok(channel) = self
            .shared
            .ledger_credentials
            .connect(&self.shared.ledger_addr)
            .await
        else {
            return Vec::new();
        };
        let asked = pb::ledger_client::LedgerClient::new(channel)
            .get_inclusion_proof(pb::InclusionProofRequest {
                sequence,
                tree_size: sequence,
            })
            .await;
        match asked {
            Ok(proof) => {
                let root = proof.into_inner().root_hash;
                *self
                    .shared
                    .last_root
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = (sequence, root.clone());
                root
            }
            Err(s) => {
                tracing::debug!(sequence, status = %s, "no Merkle root for a view answer");
                Vec::new()
            }
        }
    }

    /// The end of the ledger's prefix recorded by `bound` (the last sequence recorded at or
    /// before it; 0: none), when the folded history is in recorded-at order ([`crate::RecordedOrder`])
    /// and `bound` is before its last event's instant, so that the prefix is folded: a binary
    /// search over the ledger, one record read per step (23 at 5M events). `None`: the answer
    /// must fold the ledger's events recorded by then.
    async fn recorded_prefix(&self, bound: i64) -> Result<Option<u64>, Status> {
        let (order, checkpoint) = {
            let p = self.shared.projection.read().await;
            let order = *self
                .shared
                .recorded
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            (order, p.last_sequence())
        };
        if !order.ordered || checkpoint == 0 || bound >= order.last {
            return Ok(None);
        }
        let mut client = self.ledger().await?;
        // Recorded at or before `bound`: everything up to `lo` (0: nothing); after it: `hi` on.
        // The last folded event, `checkpoint`, was recorded at `order.last`, after `bound`.
        let (mut lo, mut hi) = (0u64, checkpoint);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if record_at(&mut client, mid).await?.recorded_at_micros <= bound {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Ok(Some(lo))
    }

    /// The chain hash of the ledger event at `sequence` (empty for 0): the last folded one's from
    /// memory, any other read from the ledger (one record by its sequence).
    async fn hash_at(&self, sequence: u64) -> Result<Vec<u8>, Status> {
        if sequence == 0 {
            return Ok(Vec::new());
        }
        {
            let last = self
                .shared
                .last_hash
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if last.0 == sequence {
                return Ok(last.1.clone());
            }
        }
        Ok(record_at(&mut self.ledger().await?, sequence).await?.hash)
    }

    /// A client of the ledger the views follow.
    async fn ledger(&self) -> Result<pb::ledger_client::LedgerClient<wfl_auth::Conn>, Status> {
        let channel = self
            .shared
            .ledger_credentials
            .connect(&self.shared.ledger_addr)
            .await
            .map_err(|e| unavailable(&format!("ledger unreachable: {e}")))?;
        Ok(pb::ledger_client::LedgerClient::new(channel))
    }

    /// Folds the ledger as of `as_of` into a fresh projection: its first `as_of.sequence` events
    /// (all when 0), leaving out those recorded after `as_of.recorded_at_micros`. Only for a
    /// recorded-at bound [`Self::recorded_prefix`] cannot place (views stored before the order
    /// was kept, history out of recorded-at order, an instant at or after the last folded one).
    async fn fold_as_of(&self, as_of: AsOf) -> Result<Projection, Status> {
        let mut client = self.ledger().await?.max_decoding_message_size(64 << 20);
        let mut stream = client
            .read(pb::ReadRequest {
                from_sequence: 1,
                to_sequence: as_of.sequence,
                as_of_recorded_at_micros: as_of.recorded_at_micros,
                ..Default::default()
            })
            .await?
            .into_inner();
        let mut p = Projection::new();
        while let Some(c) = stream.message().await? {
            let sequence = c.sequence;
            let event = c
                .event
                .ok_or_else(|| Status::internal(format!("ledger event {sequence} has no body")))
                .and_then(|e| {
                    wfl_proto::convert::event_from_pb(e).map_err(|v| {
                        Status::internal(format!("ledger event {sequence} does not convert: {v}"))
                    })
                })?;
            p.apply(sequence, &event);
        }
        Ok(p)
    }
}

/// The sequence an answer is read at: the end of the recorded-at prefix (no later than the
/// sequence asked), else the sequence asked, else the state's `last`.
fn answered_at(as_of: &AsOf, prefix: Option<u64>, last: u64) -> u64 {
    match (prefix, as_of.sequence) {
        (Some(end), 0) => end,
        (Some(end), asked) => end.min(asked),
        (None, 0) => last,
        (None, asked) => asked,
    }
}

/// The ledger's record at `sequence` (a read of that one record), which the views reflect.
async fn record_at(
    client: &mut pb::ledger_client::LedgerClient<wfl_auth::Conn>,
    sequence: u64,
) -> Result<pb::CommittedEvent, Status> {
    let mut stream = client
        .read(pb::ReadRequest {
            from_sequence: sequence,
            to_sequence: sequence,
            limit: 1,
            ..Default::default()
        })
        .await?
        .into_inner();
    match stream.message().await? {
        Some(c) if c.sequence == sequence => Ok(c),
        _ => Err(unavailable(&format!(
            "the ledger did not return event {sequence}, which the views reflect"
        ))),
    }
}

pub(crate) fn invalid(field: &str, description: &str) -> Status {
    Status::with_error_details(
        tonic::Code::InvalidArgument,
        format!("{field}: {description}"),
        ErrorDetails::with_bad_request_violation(field, description),
    )
}

fn unavailable(message: &str) -> Status {
    Status::unavailable(message.to_owned())
}

pub(crate) fn date(field: &str, s: &str) -> Result<Option<Date>, Status> {
    if s.is_empty() {
        return Ok(None);
    }
    Date::parse(s)
        .map(Some)
        .map_err(|e| invalid(field, &e.to_string()))
}

fn query(r: &pb::ViewRequest) -> Result<Query, Status> {
    let period = match pb::Period::try_from(r.period) {
        Ok(pb::Period::Day) => Period::Day,
        Ok(pb::Period::Quarter) => Period::Quarter,
        Ok(pb::Period::Month | pb::Period::Unspecified) => Period::Month,
        Err(_) => return Err(invalid("period", &format!("unknown period {}", r.period))),
    };
    let cohort = if r.cohort.is_empty() {
        None
    } else {
        Some(Cohort::parse(&r.cohort).ok_or_else(|| {
            let names: Vec<&str> = Cohort::ALL.iter().map(|c| c.as_str()).collect();
            invalid("cohort", &format!("one of {}", names.join(", ")))
        })?)
    };
    Ok(Query {
        org: (!r.org_id.is_empty()).then(|| OrgId(r.org_id.clone())),
        site: (!r.site_id.is_empty()).then(|| SiteId(r.site_id.clone())),
        from: date("from_date", &r.from_date)?,
        to: date("to_date", &r.to_date)?,
        period,
        cohort,
    })
}

fn view_response<T: TypedView>(
    as_of_sequence: u64,
    as_of_hash: Vec<u8>,
    view: &T,
) -> Response<pb::ViewResponse> {
    Response::new(pb::ViewResponse {
        as_of_sequence,
        as_of_hash,
        as_of_root: Vec::new(),
        view: Some(view.typed()),
    })
}

/// The view a `Figure` names, as a JSON document with its ids (not bounded: for Explain only).
fn figure_view(name: &str, p: &At<'_>, q: &Query) -> Result<serde_json::Value, String> {
    let value = match name {
        "separations" => serde_json::to_value(p.separations(q)),
        "headcount" => serde_json::to_value(p.headcount(q)),
        "cohort_exposure" => serde_json::to_value(p.cohort_exposure(q)),
        "hiring_signals" => serde_json::to_value(p.hiring_signals(q)),
        "ai_adoption" => serde_json::to_value(p.ai_adoption(q)),
        _ => {
            return Err(
                "one of separations, headcount, cohort_exposure, hiring_signals, ai_adoption"
                    .into(),
            )
        }
    };
    value.map_err(|e| e.to_string())
}

/// Most ids one Explain may name, and the default and largest page of a figure.
const MAX_EXPLAIN_IDS: usize = 10_000;
const DEFAULT_PAGE: usize = 1_000;

#[tonic::async_trait]
impl pb::views_server::Views for ViewsApi {
    async fn separations(
        &self,
        r: Request<pb::ViewRequest>,
    ) -> Result<Response<pb::ViewResponse>, Status> {
        self.view(&wfl_auth::caller(&r)?, r.into_inner(), true, |p, q| {
            p.separation_counts(q)
        })
        .await
    }

    async fn headcount(
        &self,
        r: Request<pb::ViewRequest>,
    ) -> Result<Response<pb::ViewResponse>, Status> {
        self.view(&wfl_auth::caller(&r)?, r.into_inner(), true, |p, q| {
            p.headcount_counts(q)
        })
        .await
    }

    async fn cohort_exposure(
        &self,
        r: Request<pb::ViewRequest>,
    ) -> Result<Response<pb::ViewResponse>, Status> {
        self.view(&wfl_auth::caller(&r)?, r.into_inner(), true, |p, q| {
            p.cohort_exposure_counts(q)
        })
        .await
    }

    async fn hiring_signals(
        &self,
        r: Request<pb::ViewRequest>,
    ) -> Result<Response<pb::ViewResponse>, Status> {
        if !r.get_ref().cohort.is_empty() {
            // Pauses, graduate intake (by cohort year) and back-fills name no hire cohort.
            return Err(invalid(
                "cohort",
                "hiring signals are not kept by cohort; ask without it",
            ));
        }
        self.view(&wfl_auth::caller(&r)?, r.into_inner(), false, |p, q| {
            p.hiring_signals(q)
        })
        .await
    }

    async fn ai_adoption(
        &self,
        r: Request<pb::ViewRequest>,
    ) -> Result<Response<pb::ViewResponse>, Status> {
        self.view(&wfl_auth::caller(&r)?, r.into_inner(), true, |p, q| {
            p.ai_adoption_counts(q)
        })
        .await
    }

    async fn threshold_watch(
        &self,
        r: Request<pb::ThresholdRequest>,
    ) -> Result<Response<pb::ThresholdResponse>, Status> {
        let caller = wfl_auth::caller(&r)?;
        let mut r = r.into_inner();
        r.org_id = caller.single_org("org_id", r.org_id)?;
        let request = thresholds::parse(&r, &self.shared.packs)?;
        let bound = AsOf::new(
            r.as_of_sequence,
            r.as_of_recorded_at_micros,
            r.min_sequence,
            "as_of_recorded_at_micros",
        )?;
        // The current state: the org's rows, when they are kept for its latest event and the
        // day asked, or recently (a large org's evaluation reads its whole history).
        let current = r.as_of_sequence == 0 && r.as_of_recorded_at_micros == 0;
        if let Some(answer) = self.kept_answer(&request, &bound).await? {
            return Ok(Response::new(answer));
        }
        // One org's current state is evaluated one request at a time, over every pack, and
        // kept: a request that waited for another's evaluation is answered from its rows.
        let org = request.org.clone().filter(|_| current);
        let _turn = match &org {
            Some(org) => {
                let turn = self.shared.watch_gates.of(org).lock_owned().await;
                if let Some(answer) = self.kept_answer(&request, &bound).await? {
                    return Ok(Response::new(answer));
                }
                Some(turn)
            }
            None => None,
        };
        let shared = self.shared.clone();
        let asked = thresholds::Request {
            packs: if org.is_some() {
                Vec::new()
            } else {
                request.packs.clone()
            },
            ..request.clone()
        };
        let (seq, (as_of, statuses), cost) = self
            .with_copy(bound, request.org.clone(), move |p| {
                thresholds::evaluate(p, &asked, &shared.packs)
            })
            .await?;
        self.shared
            .progress
            .watch_answers_evaluated
            .fetch_add(1, Relaxed);
        let (views, head) = {
            let p = self.shared.projection.read().await;
            let head = org.as_ref().and_then(|org| p.org_head_at(org, seq));
            (p.last_sequence(), head)
        };
        let Some(org) = org else {
            let statuses = statuses.into_iter().map(thresholds::Kept::whole).collect();
            let mut answer = thresholds::response(seq, as_of, statuses, &request);
            answer.views_sequence = views;
            return Ok(Response::new(answer));
        };
        // Every pack's rows of the org, kept for the next question about it.
        if let Some(head) = head {
            let made = crate::watch_cache::Made {
                sequence: seq,
                default_day: request.as_of_date.is_none(),
                cost,
                ended: Instant::now(),
            };
            self.shared
                .watch_rows
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .put(
                    crate::watch_cache::Key {
                        org,
                        head,
                        day: as_of,
                    },
                    made,
                    Arc::new(statuses.iter().map(thresholds::Kept::cut).collect()),
                );
        }
        let statuses = statuses
            .into_iter()
            .filter(|s| request.packs.is_empty() || request.packs.contains(&s.pack))
            .map(thresholds::Kept::whole)
            .collect();
        let mut answer = thresholds::response(seq, as_of, statuses, &request);
        answer.views_sequence = views;
        Ok(Response::new(answer))
    }

    async fn explain(
        &self,
        r: Request<pb::ExplainRequest>,
    ) -> Result<Response<pb::ExplainResponse>, Status> {
        let caller = wfl_auth::caller(&r)?;
        let r = r.into_inner();
        explain_fields(&r)?;
        if let Some(mut figure) = r.figure {
            if figure.view == "thresholds" {
                let t = figure.thresholds.get_or_insert_with(Default::default);
                t.org_id =
                    caller.single_org("figure.thresholds.org_id", std::mem::take(&mut t.org_id))?;
                return self
                    .explain_threshold_figure(figure, &r.page_token, r.page_size)
                    .await;
            }
            let request = figure.request.get_or_insert_with(Default::default);
            request.org_id =
                caller.single_org("figure.request.org_id", std::mem::take(&mut request.org_id))?;
            return self
                .explain_figure(figure, &r.page_token, r.page_size)
                .await;
        }
        if r.event_ids.len() > MAX_EXPLAIN_IDS {
            return Err(invalid(
                "event_ids",
                &format!("at most {MAX_EXPLAIN_IDS} ids; page through a figure instead"),
            ));
        }
        let mut ids = Vec::with_capacity(r.event_ids.len());
        for (i, raw) in r.event_ids.iter().enumerate() {
            let id = uuid_parse(raw)
                .ok_or_else(|| invalid(&format!("event_ids[{i}]"), "must be a UUID"))?;
            ids.push(id);
        }
        let (seq, events) = self
            .with_projection(
                AsOf::new(
                    r.as_of_sequence,
                    r.as_of_recorded_at_micros,
                    r.min_sequence,
                    "as_of_recorded_at_micros",
                )?,
                false,
                |p| p.explain(&ids),
            )
            .await?;
        // Events are found by id whatever their org: a foreign one is refused, naming its org.
        caller.check_orgs(events.iter().map(|e| e.org.0.as_str()))?;
        Ok(Response::new(pb::ExplainResponse {
            as_of_sequence: seq,
            events: explained(&events),
            total: events.len() as u64,
            next_page_token: String::new(),
        }))
    }
}

/// An Explain names events or a figure, and each way has its own fields: a field of the other
/// way would be ignored, so it is refused, naming it.
fn explain_fields(r: &pb::ExplainRequest) -> Result<(), Status> {
    if r.figure.is_some() {
        let elsewhere =
            "with a figure, give it in figure.request (figure.thresholds for a threshold figure)";
        let given = [
            (
                "event_ids",
                !r.event_ids.is_empty(),
                "name events or a figure, not both",
            ),
            ("as_of_sequence", r.as_of_sequence != 0, elsewhere),
            (
                "as_of_recorded_at_micros",
                r.as_of_recorded_at_micros != 0,
                elsewhere,
            ),
            ("min_sequence", r.min_sequence != 0, elsewhere),
        ];
        if let Some((field, _, why)) = given.into_iter().find(|(_, set, _)| *set) {
            return Err(invalid(field, why));
        }
    } else {
        let pages = "pages are for the events behind a figure; event ids are answered in one page";
        if !r.page_token.is_empty() {
            return Err(invalid("page_token", pages));
        }
        if r.page_size != 0 {
            return Err(invalid("page_size", pages));
        }
    }
    Ok(())
}

impl ViewsApi {
    /// One page of the events behind a figure.
    async fn explain_figure(
        &self,
        figure: pb::Figure,
        page_token: &str,
        page_size: u32,
    ) -> Result<Response<pb::ExplainResponse>, Status> {
        let request = figure.request.unwrap_or_default();
        let q = query(&request).map_err(|s| {
            Status::with_error_details(
                s.code(),
                format!("figure.request.{}", s.message()),
                ErrorDetails::with_bad_request_violation("figure.request", s.message()),
            )
        })?;
        let as_of = AsOf::new(
            request.as_of_sequence,
            request.as_of_recorded_at_micros,
            request.min_sequence,
            "figure.request.as_of_recorded_at_micros",
        )?;
        let (token, as_of, size) = paging(page_token, page_size, as_of)?;
        // The query is already scoped to the caller's org, so the key never crosses tenants.
        let key = format!(
            "{}\u{0}{}\u{0}{q:?}\u{0}{}",
            figure.view, figure.path, as_of.recorded_at_micros
        );
        let offset = token.offset;
        if let Some(page) = self.kept_page(&key, token, size, as_of).await? {
            return Ok(page);
        }
        let name = figure.view.clone();
        let path = figure.path.clone();
        let (seq, found) = self
            .with_projection(as_of, false, move |p| {
                let view = figure_view(&name, p, &q).map_err(|e| ("figure.view", e))?;
                let pointer = if path == "/" { "" } else { path.as_str() };
                let ids: Vec<wfl_domain::EventId> = view
                    .pointer(pointer)
                    .and_then(|f| f.get("event_ids"))
                    .and_then(serde_json::Value::as_array)
                    .ok_or_else(|| {
                        (
                            "figure.path",
                            format!("no figure with evidence at {path:?} in this view"),
                        )
                    })?
                    .iter()
                    .filter_map(|v| v.as_str().and_then(uuid_parse))
                    .collect();
                let page: Vec<wfl_domain::EventId> =
                    ids.iter().skip(offset).take(size).copied().collect();
                Ok::<_, (&str, String)>((ids, p.explain(&page)))
            })
            .await?;
        let (ids, events) = found.map_err(|(field, e)| invalid(field, &e))?;
        let total = self.keep_for_next(token, key, seq, ids, events.len())?;
        Ok(figure_page(seq, total, offset, &events))
    }

    /// One page of the events behind a list of one `ThresholdWatch` status: the watch evaluated
    /// over a copy, as `ThresholdWatch` does, for the first page; the pages after it from the
    /// list kept for them (see [`Figures`]).
    async fn explain_threshold_figure(
        &self,
        figure: pb::Figure,
        page_token: &str,
        page_size: u32,
    ) -> Result<Response<pb::ExplainResponse>, Status> {
        let asked = figure.thresholds.unwrap_or_default();
        let request = thresholds::parse(&asked, &self.shared.packs).map_err(|s| {
            Status::with_error_details(
                s.code(),
                format!("figure.thresholds.{}", s.message()),
                ErrorDetails::with_bad_request_violation("figure.thresholds", s.message()),
            )
        })?;
        let list =
            thresholds::ListPath::parse(&figure.path).map_err(|e| invalid("figure.path", &e))?;
        let as_of = AsOf::new(
            asked.as_of_sequence,
            asked.as_of_recorded_at_micros,
            asked.min_sequence,
            "figure.thresholds.as_of_recorded_at_micros",
        )?;
        let (token, as_of, size) = paging(page_token, page_size, as_of)?;
        // The request is already scoped to the caller's org, so the key never crosses tenants.
        let key = format!("thresholds\u{0}{}\u{0}{asked:?}", figure.path);
        let offset = token.offset;
        if let Some(page) = self.kept_page(&key, token, size, as_of).await? {
            return Ok(page);
        }
        // A first page of the current state: from the org's kept rows when they answer.
        let mut as_of = as_of;
        if token.sequence.is_none() {
            if let Some(kept) = self.kept_rows(&request, &as_of).await? {
                let statuses: Vec<ThresholdStatus> =
                    kept.statuses.into_iter().map(|k| k.status).collect();
                let ids = list.of(&thresholds::selected(statuses, &request));
                // Kept lists are cut to `MAX_LISTED` events: a list of that many may be longer,
                // and is read from an evaluation as of the kept rows' sequence, so that its
                // pages are the lists of the answer the caller was given.
                if ids
                    .as_ref()
                    .map_or(true, |ids| ids.len() < thresholds::MAX_LISTED)
                {
                    self.answered_from_kept(kept.recent);
                    let ids = ids.map_err(|e| invalid("figure.path", &e))?;
                    let page: Vec<wfl_domain::EventId> =
                        ids.iter().skip(offset).take(size).copied().collect();
                    let at =
                        AsOf::new(kept.seq, 0, 0, "figure.thresholds.as_of_recorded_at_micros")?;
                    let (seq, events) = self
                        .with_projection(at, false, move |p| p.explain(&page))
                        .await?;
                    let total = self.keep_for_next(token, key, seq, ids, events.len())?;
                    return Ok(figure_page(seq, total, offset, &events));
                }
                as_of = AsOf::new(kept.seq, 0, 0, "figure.thresholds.as_of_recorded_at_micros")?;
            }
        }
        let packs = self.shared.packs.clone();
        let org = request.org.clone();
        let (seq, found, _) = self
            .with_copy(as_of, org, move |p| {
                let (_, statuses) = thresholds::evaluate(p, &request, &packs);
                let ids = list.of(&thresholds::selected(statuses, &request))?;
                let page: Vec<wfl_domain::EventId> =
                    ids.iter().skip(offset).take(size).copied().collect();
                Ok::<_, String>((ids, p.explain(&page)))
            })
            .await?;
        let (ids, events) = found.map_err(|e| invalid("figure.path", &e))?;
        let total = self.keep_for_next(token, key, seq, ids, events.len())?;
        Ok(figure_page(seq, total, offset, &events))
    }

    /// A page after the first from the figure's kept evidence (`None`: not kept, so the figure
    /// is computed again at the token's sequence: the same answer).
    async fn kept_page(
        &self,
        key: &str,
        token: PageToken,
        size: usize,
        as_of: AsOf,
    ) -> Result<Option<Response<pb::ExplainResponse>>, Status> {
        let Some(ids) = token.sequence.and_then(|seq| self.figures.get(key, seq)) else {
            return Ok(None);
        };
        let page: Vec<wfl_domain::EventId> =
            ids.iter().skip(token.offset).take(size).copied().collect();
        let (seq, events) = self
            .with_projection(as_of, false, move |p| p.explain(&page))
            .await?;
        Ok(Some(figure_page(seq, ids.len(), token.offset, &events)))
    }

    /// After a figure was computed for a page: refuses it when it was read at another sequence
    /// than the first page's (a recorded-at bound moved), and keeps its evidence when pages are
    /// left. Returns how many events are behind the figure.
    fn keep_for_next(
        &self,
        token: PageToken,
        key: String,
        seq: u64,
        ids: Vec<wfl_domain::EventId>,
        shown: usize,
    ) -> Result<usize, Status> {
        if token.sequence.is_some_and(|pinned| pinned != seq) {
            return Err(Status::aborted(
                "the figure changed since its first page (page_token); start again without a \
                 page_token",
            ));
        }
        let total = ids.len();
        if token.offset + shown < total {
            self.figures.put(key, seq, ids);
        }
        Ok(total)
    }
}

/// A figure page's token, as-of bound and size: every page after the first reads the sequence
/// its first page was computed at (`page_token` pins it).
fn paging(
    page_token: &str,
    page_size: u32,
    mut as_of: AsOf,
) -> Result<(PageToken, AsOf, usize), Status> {
    let token = PageToken::parse(page_token)?;
    if let Some(pinned) = token.sequence {
        if as_of.sequence != 0 && as_of.sequence != pinned {
            return Err(invalid(
                "page_token",
                &format!(
                    "it pages the figure as of sequence {pinned}, the request asks for {}",
                    as_of.sequence
                ),
            ));
        }
        as_of.sequence = pinned;
    }
    let size = match page_size as usize {
        0 => DEFAULT_PAGE,
        n if n > MAX_EXPLAIN_IDS => {
            return Err(invalid("page_size", &format!("at most {MAX_EXPLAIN_IDS}")))
        }
        n => n,
    };
    Ok((token, as_of, size))
}

/// The answer of one page of a figure's `total` events, starting at `offset`.
fn figure_page(
    seq: u64,
    total: usize,
    offset: usize,
    events: &[wfl_projections::views::ExplainedEvent],
) -> Response<pb::ExplainResponse> {
    let next = offset + events.len();
    Response::new(pb::ExplainResponse {
        as_of_sequence: seq,
        events: explained(events),
        total: total as u64,
        next_page_token: if next < total {
            PageToken {
                sequence: Some(seq),
                offset: next,
            }
            .to_string()
        } else {
            String::new()
        },
    })
}

/// Where the next page of a figure starts: the sequence the figure was computed at (its first
/// page's) and the offset in its evidence. Written `<sequence>:<offset>`; clients treat it as
/// opaque. A bare offset (the form before the sequence was pinned) reads the current state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PageToken {
    sequence: Option<u64>,
    offset: usize,
}

impl PageToken {
    fn parse(token: &str) -> Result<Self, Status> {
        if token.is_empty() {
            return Ok(Self {
                sequence: None,
                offset: 0,
            });
        }
        let bad = || invalid("page_token", "not a token this service gave");
        match token.split_once(':') {
            Some((seq, offset)) => Ok(Self {
                sequence: Some(seq.parse().map_err(|_| bad())?),
                offset: offset.parse().map_err(|_| bad())?,
            }),
            None => Ok(Self {
                sequence: None,
                offset: token.parse().map_err(|_| bad())?,
            }),
        }
    }
}

impl std::fmt::Display for PageToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.sequence {
            Some(seq) => write!(f, "{seq}:{}", self.offset),
            None => write!(f, "{}", self.offset),
        }
    }
}

/// Most figures whose evidence is kept for their next pages...
const FIGURES_KEPT: usize = 16;
/// ...and most event ids kept over all of them (16 B each: 64 MiB).
const FIGURE_IDS_KEPT: usize = 4 << 20;

/// The evidence lists of the figures paged most recently, by (view, path, query, recorded-at
/// bound) and the sequence they were computed at: the first page of a figure computes its view
/// (a cost that follows the org's history), every later page is a slice of the kept list plus
/// the explanation of its events. Bounded in figures and in ids; the oldest goes first. A miss
/// (evicted, or another replica) recomputes the view at the token's sequence: same answer.
#[derive(Default)]
struct Figures {
    kept: std::sync::Mutex<std::collections::VecDeque<KeptFigure>>,
}

/// A figure's key, the sequence it was computed at, and its evidence.
type KeptFigure = (String, u64, Arc<Vec<wfl_domain::EventId>>);

impl Figures {
    #[cfg(test)]
    fn get_any(&self, sequence: u64) -> bool {
        self.kept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .any(|(_, s, _)| *s == sequence)
    }

    fn get(&self, key: &str, sequence: u64) -> Option<Arc<Vec<wfl_domain::EventId>>> {
        let kept = self
            .kept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        kept.iter()
            .find(|(k, s, _)| *s == sequence && k == key)
            .map(|(_, _, ids)| ids.clone())
    }

    fn put(&self, key: String, sequence: u64, ids: Vec<wfl_domain::EventId>) {
        if ids.len() > FIGURE_IDS_KEPT {
            return;
        }
        let mut kept = self
            .kept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        kept.retain(|(k, s, _)| !(*s == sequence && *k == key));
        kept.push_back((key, sequence, Arc::new(ids)));
        let mut total: usize = kept.iter().map(|(_, _, ids)| ids.len()).sum();
        while kept.len() > FIGURES_KEPT || total > FIGURE_IDS_KEPT {
            match kept.pop_front() {
                Some((_, _, ids)) => total -= ids.len(),
                None => break,
            }
        }
    }
}

fn explained(events: &[wfl_projections::views::ExplainedEvent]) -> Vec<pb::ExplainedEvent> {
    events.iter().map(crate::typed::explained).collect()
}

fn uuid_parse(s: &str) -> Option<wfl_domain::EventId> {
    serde_json::from_value::<wfl_domain::EventId>(serde_json::Value::String(s.to_owned())).ok()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use prost::Message;
    use tokio::sync::RwLock;
    use wfl_domain::{Payload, Resignation};
    use wfl_projections::views::Projection;
    use wfl_proto::pb;
    use wfl_proto::pb::views_server::Views;
    use wfl_testkit::scenario;

    use super::ViewsApi;
    use crate::{Progress, Shared};

    const ORG: &str = "big-org";
    /// Most bytes a standard gRPC client accepts in one answer.
    const FOUR_MIB: usize = 4 << 20;

    /// A Views service over `projection` (no ledger: the answers' hash and root are cached).
    fn api(projection: Projection) -> ViewsApi {
        api_with(projection, Vec::new())
    }

    /// [`api`] with rule packs loaded.
    fn api_with(projection: Projection, packs: Vec<wfl_projections::rules::RulePack>) -> ViewsApi {
        let head = projection.last_sequence();
        let (checkpoint, _) = tokio::sync::watch::channel(head);
        ViewsApi::new(Arc::new(Shared {
            progress: Arc::new(Progress::default()),
            projection: RwLock::new(projection),
            recorded: std::sync::Mutex::default(),
            checkpoint,
            last_hash: std::sync::Mutex::new((head, vec![7; 32])),
            last_root: std::sync::Mutex::new((head, vec![9; 32])),
            packs,
            ledger_addr: "http://127.0.0.1:1".into(),
            ledger_credentials: wfl_auth::Credentials::default(),
            loaded: tokio::sync::watch::channel(true).0,
            watch_rows: std::sync::Mutex::default(),
            watch_gates: crate::watch_cache::Gates::default(),
        }))
    }

    fn request<T>(message: T, method: &'static str) -> tonic::Request<T> {
        let mut r = tonic::Request::new(message);
        r.extensions_mut().insert(wfl_auth::Caller {
            principal: Arc::new(wfl_auth::Principal::unauthenticated_admin()),
            method,
        });
        r
    }

    /// While the stored views are read back (a background task at start), the projection is
    /// empty: an answer waits for the load and then names the loaded state, never the empty one.
    #[tokio::test]
    async fn answers_wait_for_the_stored_views_to_be_read_back() {
        let mut stored = Projection::new();
        for i in 0..3 {
            stored.apply(i + 1, &scenario::hire(ORG, &format!("w-{i}")));
        }
        let api = Arc::new(api(Projection::new()));
        api.shared.loaded.send_replace(false);
        let asking = {
            let api = api.clone();
            tokio::spawn(async move {
                let ask = pb::ViewRequest {
                    org_id: ORG.into(),
                    ..Default::default()
                };
                api.headcount(request(ask, "/wfl.v1.Views/Headcount")).await
            })
        };
        tokio::task::yield_now().await;
        assert!(
            !asking.is_finished(),
            "answered before the views were loaded"
        );
        // What `load` does once the store is read (and the ledger's hash and root at its
        // sequence, which this test has no ledger to ask for).
        *api.shared.last_hash.lock().expect("lock") = (3, vec![7; 32]);
        *api.shared.last_root.lock().expect("lock") = (3, vec![9; 32]);
        *api.shared.projection.write().await = stored;
        api.shared.loaded.send_replace(true);
        let answer = asking.await.expect("task").expect("Headcount").into_inner();
        assert_eq!(answer.as_of_sequence, 3);
    }

    /// The shipped CN pack.
    fn cn_pack() -> Vec<wfl_projections::rules::RulePack> {
        vec![wfl_projections::rules::parse(
            "CN-LCL-41.toml",
            include_str!("../../../rulepacks/CN-LCL-41.toml"),
        )
        .expect("the shipped CN pack parses")]
    }

    /// A worker of `ORG` in the baseline, in CN, on one day.
    fn cn_worker(worker: &str) -> wfl_domain::Event {
        let mut e = scenario::baseline(ORG, worker);
        e.jurisdiction = "CN".into();
        e.effective_date = wfl_domain::Date::from_days(20_500);
        e
    }

    /// `workers` workers of `ORG` (`cn_worker`), then the first `dismissed` of them dismissed
    /// for economic reasons on the same day.
    fn cn_reduction(workers: u64, dismissed: u64) -> Projection {
        let mut p = Projection::new();
        for i in 0..workers + dismissed {
            let worker = format!("w-{}", i % workers);
            let mut e = cn_worker(&worker);
            if i >= workers {
                let mut s = scenario::separation(&worker);
                s.initiator = wfl_domain::Initiator::Employer;
                s.legal_ground = Some("CN-LCL-41".into());
                e.payload = Payload::EconomicDismissal(Box::new(wfl_domain::EconomicDismissal {
                    separation: s,
                    selection_criteria: None,
                    plan_id: None,
                }));
            }
            p.apply(i + 1, &e);
        }
        p
    }

    /// While an org is being written to, a `ThresholdWatch` of its current state is answered
    /// from its recent rows, as of the sequence they were evaluated at; one asking for a later
    /// `min_sequence` is evaluated; and callers waiting together for the org's evaluation share
    /// one (the others answer from its rows).
    #[tokio::test]
    async fn an_org_written_to_is_answered_from_recent_rows_and_callers_share_an_evaluation() {
        use std::sync::atomic::Ordering::Relaxed;
        use std::time::{Duration, Instant};
        // 30 workers, 20 of them dismissed for economic reasons (over the CN pack's threshold).
        let p = cn_reduction(30, 20);
        let api = Arc::new(api_with(p, cn_pack()));
        let org = wfl_domain::OrgId(ORG.into());
        let ask = |api: Arc<ViewsApi>, min_sequence: u64| async move {
            let r = pb::ThresholdRequest {
                org_id: ORG.into(),
                min_sequence,
                ..Default::default()
            };
            api.threshold_watch(request(r, "/wfl.v1.Views/ThresholdWatch"))
                .await
                .expect("ThresholdWatch")
                .into_inner()
        };
        let counts = |api: &ViewsApi| {
            let p = &api.shared.progress;
            (
                p.watch_answers_kept.load(Relaxed),
                p.watch_answers_recent.load(Relaxed),
                p.watch_answers_evaluated.load(Relaxed),
            )
        };
        let first = ask(api.clone(), 0).await;
        assert_eq!(first.as_of_sequence, 50);
        assert_eq!(counts(&api), (0, 0, 1), "nothing kept: evaluated");
        assert!(!first.statuses.is_empty());
        // Its evaluation is taken to have cost an hour (an org of many millions of events).
        let next = |api: Arc<ViewsApi>, sequence: u64, worker: &str| {
            let event = cn_worker(worker);
            async move {
                api.shared.projection.write().await.apply(sequence, &event);
                api.shared.checkpoint.send_replace(sequence);
            }
        };
        {
            let mut kept = api.shared.watch_rows.lock().expect("lock");
            let day = wfl_domain::Date::parse(&first.as_of_date).expect("day");
            let key = crate::watch_cache::Key {
                org: org.clone(),
                head: 50,
                day,
            };
            let rows = kept.get(&key, 50).expect("kept by the evaluation");
            let costly = crate::watch_cache::Made {
                sequence: 50,
                default_day: true,
                cost: Duration::from_secs(3_600),
                ended: Instant::now(),
            };
            kept.put(key, costly, rows);
        }
        next(api.clone(), 51, "w-new").await;
        let recent = ask(api.clone(), 0).await;
        assert_eq!(counts(&api), (0, 1, 1), "from the recent rows");
        assert_eq!(recent.as_of_sequence, 50, "as of their sequence");
        assert_eq!(recent.views_sequence, 51, "the views hold one more");
        assert_eq!(recent.statuses, first.statuses);
        let fresh = ask(api.clone(), 51).await;
        assert_eq!(counts(&api), (0, 1, 2), "a later min_sequence: evaluated");
        assert_eq!((fresh.as_of_sequence, fresh.views_sequence), (51, 51));

        // Eight callers wait for the org's gate, held here; once it is free, one evaluates and
        // the seven others answer from its rows.
        next(api.clone(), 52, "w-newer").await;
        let gate = api.shared.watch_gates.of(&org);
        let held = Arc::clone(&gate).lock_owned().await;
        let callers: Vec<_> = (0..8).map(|_| tokio::spawn(ask(api.clone(), 52))).collect();
        // Each waiting caller holds the gate too.
        while Arc::strong_count(&gate) < 2 + callers.len() {
            tokio::task::yield_now().await;
        }
        drop(held);
        for caller in callers {
            assert_eq!(caller.await.expect("caller").as_of_sequence, 52);
        }
        assert_eq!(counts(&api), (7, 1, 3), "one evaluation for eight callers");
    }

    /// Kept rows hold each list cut to the 10,000 events one answer can list: the first
    /// `Explain` page of a longer list is read from an evaluation (as of the kept rows'
    /// sequence), and gives the list's whole total, as the `ThresholdWatch` answer counts it.
    #[tokio::test]
    async fn explain_of_a_list_longer_than_kept_rows_hold_gives_its_whole_total() {
        const WORKERS: u64 = 10_100;
        let p = cn_reduction(WORKERS, WORKERS);
        let api = api_with(p, cn_pack());
        let watch = pb::ThresholdRequest {
            org_id: ORG.into(),
            ..Default::default()
        };
        let answer = api
            .threshold_watch(request(watch.clone(), "/wfl.v1.Views/ThresholdWatch"))
            .await
            .expect("ThresholdWatch")
            .into_inner();
        let i = answer
            .statuses
            .iter()
            .position(|s| s.event_count > crate::thresholds::MAX_LISTED as u64)
            .expect("a status of more events than kept rows list");
        let explain = pb::ExplainRequest {
            figure: Some(pb::Figure {
                view: "thresholds".into(),
                request: None,
                path: format!("/statuses/{i}/event_ids"),
                thresholds: Some(watch),
            }),
            page_size: 10,
            ..Default::default()
        };
        let page = api
            .explain(request(explain, "/wfl.v1.Views/Explain"))
            .await
            .expect("Explain")
            .into_inner();
        assert_eq!(page.total, answer.statuses[i].event_count);
        assert_eq!(page.as_of_sequence, answer.as_of_sequence);
        assert_eq!(page.events.len(), 10);
    }

    /// 200,000 events in one org (150,000 hires, 50,000 of them resigning): a view answer is a
    /// few KiB (evidence counts, never ids; 150,000 hires behind one headcount figure), and the
    /// 50,000 resignations behind a separations figure page through Explain, each page far under
    /// 4 MiB.
    #[tokio::test]
    async fn answers_for_a_large_org_are_small_and_its_evidence_pages_through_explain() {
        const HIRES: usize = 150_000;
        const LEAVERS: usize = 50_000;
        let mut p = Projection::new();
        let mut sequence = 0;
        for i in 0..HIRES {
            sequence += 1;
            p.apply(sequence, &scenario::hire(ORG, &format!("w-{i}")));
        }
        for i in 0..LEAVERS {
            sequence += 1;
            let mut leave = scenario::event(
                ORG,
                Payload::Resignation(Box::new(Resignation {
                    separation: scenario::separation(&format!("w-{i}")),
                    regrettable: false,
                    pressured: false,
                })),
            );
            leave.effective_date = scenario::default_date().add_days(40);
            p.apply(sequence, &leave);
        }
        let api = api(p);
        let ask = pb::ViewRequest {
            org_id: ORG.into(),
            ..Default::default()
        };
        let path = "/wfl.v1.Views/Headcount";
        let headcount = api
            .headcount(request(ask.clone(), path))
            .await
            .expect("Headcount")
            .into_inner();
        assert_eq!(headcount.as_of_sequence, sequence);
        assert_eq!(headcount.as_of_hash, vec![7; 32]);
        assert_eq!(headcount.as_of_root, vec![9; 32]);
        let bytes = headcount.encoded_len();
        assert!(bytes < 16 << 10, "a headcount answer of {bytes} bytes");
        let Some(pb::view_response::View::Headcount(view)) = &headcount.view else {
            panic!("a HeadcountView: {:?}", headcount.view)
        };
        let first = view.rows[0].total.as_ref().expect("a total");
        assert_eq!(first.hires, HIRES as u64);
        assert_eq!(first.evidence_count, HIRES as u64);
        assert_eq!(first.evidence, "/rows/0/total");

        let separations = api
            .separations(request(ask.clone(), "/wfl.v1.Views/Separations"))
            .await
            .expect("Separations")
            .into_inner();
        assert!(separations.encoded_len() < 16 << 10);
        let Some(pb::view_response::View::Separations(sep)) = &separations.view else {
            panic!("a SeparationsView")
        };
        assert_eq!(sep.total, LEAVERS as u64);
        assert_eq!(
            sep.totals.iter().map(|t| t.evidence_count).sum::<u64>(),
            LEAVERS as u64
        );

        // The largest pages cover a figure: every separation once, each page under 4 MiB.
        let figure = sep
            .totals
            .iter()
            .find(|t| t.evidence_count > 0)
            .expect("a bucket with the resignations");
        assert_eq!(figure.evidence_count, LEAVERS as u64);
        let explain = |token: String, page_size: u32| pb::ExplainRequest {
            figure: Some(pb::Figure {
                view: "separations".into(),
                request: Some(ask.clone()),
                path: figure.evidence.clone(),
                thresholds: None,
            }),
            page_token: token,
            page_size,
            ..Default::default()
        };
        // The default page is 1,000 events.
        let page = api
            .explain(request(explain(String::new(), 0), "/wfl.v1.Views/Explain"))
            .await
            .expect("Explain")
            .into_inner();
        assert_eq!(page.events.len(), 1_000);
        assert_eq!(page.total, LEAVERS as u64);
        assert_eq!(page.next_page_token, format!("{sequence}:1000"));
        let mut seen = std::collections::BTreeSet::new();
        let mut token = String::new();
        let mut more = LEAVERS;
        loop {
            let page = api
                .explain(request(explain(token, 10_000), "/wfl.v1.Views/Explain"))
                .await
                .expect("Explain page")
                .into_inner();
            assert!(
                page.encoded_len() < FOUR_MIB,
                "a page of {} bytes",
                page.encoded_len()
            );
            // Every page reads the sequence of the first, however far the views moved on.
            assert_eq!(page.as_of_sequence, sequence);
            assert_eq!(page.total, LEAVERS as u64);
            for e in page.events {
                assert_eq!(e.event_type, "Resignation");
                assert!(seen.insert(e.event_id), "no event twice");
            }
            if page.next_page_token.is_empty() {
                break;
            }
            // The pages after the first are slices of the kept evidence, not a new view.
            assert!(
                api.figures.get_any(sequence),
                "the figure's evidence is kept"
            );
            token = page.next_page_token;
            // Another resignation is folded between two pages.
            let mut leave = scenario::event(
                ORG,
                Payload::Resignation(Box::new(Resignation {
                    separation: scenario::separation(&format!("w-{more}")),
                    regrettable: false,
                    pressured: false,
                })),
            );
            leave.effective_date = scenario::default_date().add_days(40);
            let mut p = api.shared.projection.write().await;
            let next = p.last_sequence() + 1;
            p.apply(next, &leave);
            more += 1;
        }
        assert_eq!(seen.len(), LEAVERS);
        // A token with a sequence other than the request's own as_of_sequence is refused.
        let mut mismatched = explain(format!("{sequence}:0"), 10);
        if let Some(f) = mismatched.figure.as_mut() {
            f.request
                .get_or_insert_with(Default::default)
                .as_of_sequence = sequence - 1;
        }
        let refused = api
            .explain(request(mismatched, "/wfl.v1.Views/Explain"))
            .await
            .expect_err("a token of another sequence");
        assert_eq!(refused.code(), tonic::Code::InvalidArgument);
        assert!(
            refused.message().contains("page_token"),
            "{}",
            refused.message()
        );
    }
}
