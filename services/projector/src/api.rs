//! The gRPC `wfl.v1.Views` service. Views are answered from the current state, or, with
//! `as_of_sequence`, from a fresh fold of the ledger's first n events (read over gRPC). Errors
//! become `tonic::Status` in [`invalid`] and [`unavailable`] only.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};
use wfl_domain::{Cohort, Date, OrgId, SiteId};
use wfl_projections::views::{Period, Projection, Query};
use wfl_proto::pb;

use crate::{thresholds, Shared};

/// How long a view request waits for the projector to reach its `as_of_sequence`.
const READ_YOUR_WRITES: std::time::Duration = std::time::Duration::from_secs(10);

/// The `Views` gRPC service.
pub struct ViewsApi {
    shared: Arc<Shared>,
}

impl ViewsApi {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// Runs `f` on the current projection, or on the ledger prefix `as_of` when given. A sequence
    /// the projector has not reached yet is waited for (up to [`READ_YOUR_WRITES`]), so a client
    /// can pass the sequence its `Record` returned and read its own writes.
    async fn with_projection<T>(
        &self,
        as_of: u64,
        f: impl FnOnce(&Projection) -> T,
    ) -> Result<(u64, T), Status> {
        if as_of > 0 {
            let mut checkpoint = self.shared.checkpoint.subscribe();
            let reached = matches!(
                tokio::time::timeout(READ_YOUR_WRITES, checkpoint.wait_for(|c| *c >= as_of)).await,
                Ok(Ok(_))
            );
            if !reached {
                let now = *checkpoint.borrow();
                return Err(Status::unavailable(format!(
                    "the views reflect sequence {now}; sequence {as_of} was not reached within {READ_YOUR_WRITES:?}"
                )));
            }
        }
        let current = self.shared.projection.read().await;
        if as_of == 0 || as_of == current.last_sequence() {
            return Ok((current.last_sequence(), f(&current)));
        }
        drop(current);
        let p = self.fold_prefix(as_of).await?;
        Ok((p.last_sequence(), f(&p)))
    }

    /// Answers one of the five document views.
    async fn view<T: serde::Serialize>(
        &self,
        r: pb::ViewRequest,
        view: fn(&Projection, &Query) -> T,
    ) -> Result<Response<pb::ViewResponse>, Status> {
        let q = query(&r)?;
        let (seq, v) = self
            .with_projection(r.as_of_sequence, |p| view(p, &q))
            .await?;
        view_response(seq, &v)
    }

    /// Folds the ledger's first `n` events into a fresh projection.
    async fn fold_prefix(&self, n: u64) -> Result<Projection, Status> {
        let mut client = pb::ledger_client::LedgerClient::connect(self.shared.ledger_addr.clone())
            .await
            .map_err(|e| unavailable(&format!("ledger unreachable: {e}")))?
            .max_decoding_message_size(64 << 20);
        let mut stream = client
            .read(pb::ReadRequest {
                from_sequence: 1,
                to_sequence: n,
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

/// A serde value as a protobuf Struct (objects) or a Struct wrapping it under "value".
fn to_struct(value: serde_json::Value) -> prost_types::Struct {
    match to_value(value).kind {
        Some(prost_types::value::Kind::StructValue(s)) => s,
        other => prost_types::Struct {
            fields: [("value".to_owned(), prost_types::Value { kind: other })]
                .into_iter()
                .collect(),
        },
    }
}

fn to_value(value: serde_json::Value) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match value {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(0.0)),
        serde_json::Value::String(s) => Kind::StringValue(s),
        serde_json::Value::Array(a) => Kind::ListValue(prost_types::ListValue {
            values: a.into_iter().map(to_value).collect(),
        }),
        serde_json::Value::Object(o) => Kind::StructValue(prost_types::Struct {
            fields: o.into_iter().map(|(k, v)| (k, to_value(v))).collect(),
        }),
    };
    prost_types::Value { kind: Some(kind) }
}

fn view_response<T: serde::Serialize>(
    as_of_sequence: u64,
    view: &T,
) -> Result<Response<pb::ViewResponse>, Status> {
    let value = serde_json::to_value(view).map_err(|e| Status::internal(e.to_string()))?;
    Ok(Response::new(pb::ViewResponse {
        as_of_sequence,
        view: Some(to_struct(value)),
    }))
}

#[tonic::async_trait]
impl pb::views_server::Views for ViewsApi {
    async fn separations(
        &self,
        r: Request<pb::ViewRequest>,
    ) -> Result<Response<pb::ViewResponse>, Status> {
        self.view(r.into_inner(), Projection::separations).await
    }

    async fn headcount(
        &self,
        r: Request<pb::ViewRequest>,
    ) -> Result<Response<pb::ViewResponse>, Status> {
        self.view(r.into_inner(), Projection::headcount).await
    }

    async fn cohort_exposure(
        &self,
        r: Request<pb::ViewRequest>,
    ) -> Result<Response<pb::ViewResponse>, Status> {
        self.view(r.into_inner(), Projection::cohort_exposure).await
    }

    async fn hiring_signals(
        &self,
        r: Request<pb::ViewRequest>,
    ) -> Result<Response<pb::ViewResponse>, Status> {
        self.view(r.into_inner(), Projection::hiring_signals).await
    }

    async fn ai_adoption(
        &self,
        r: Request<pb::ViewRequest>,
    ) -> Result<Response<pb::ViewResponse>, Status> {
        self.view(r.into_inner(), Projection::ai_adoption).await
    }

    async fn threshold_watch(
        &self,
        r: Request<pb::ThresholdRequest>,
    ) -> Result<Response<pb::ThresholdResponse>, Status> {
        let r = r.into_inner();
        let request = thresholds::parse(&r, &self.shared.packs)?;
        let (seq, (as_of, statuses)) = self
            .with_projection(r.as_of_sequence, |p| {
                thresholds::evaluate(p, &request, &self.shared.packs)
            })
            .await?;
        Ok(Response::new(thresholds::response(
            seq, as_of, statuses, &request,
        )))
    }

    async fn explain(
        &self,
        r: Request<pb::ExplainRequest>,
    ) -> Result<Response<pb::ExplainResponse>, Status> {
        let r = r.into_inner();
        let mut ids = Vec::with_capacity(r.event_ids.len());
        for (i, raw) in r.event_ids.iter().enumerate() {
            let id = uuid_parse(raw)
                .ok_or_else(|| invalid(&format!("event_ids[{i}]"), "must be a UUID"))?;
            ids.push(id);
        }
        let (seq, events) = self
            .with_projection(r.as_of_sequence, |p| p.explain(&ids))
            .await?;
        let events = events
            .iter()
            .map(|e| {
                serde_json::to_value(e)
                    .map(to_struct)
                    .map_err(|e| Status::internal(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Response::new(pb::ExplainResponse {
            as_of_sequence: seq,
            events,
        }))
    }
}

fn uuid_parse(s: &str) -> Option<wfl_domain::EventId> {
    serde_json::from_value::<wfl_domain::EventId>(serde_json::Value::String(s.to_owned())).ok()
}
