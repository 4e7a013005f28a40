//! Fuzz targets over arbitrary bytes (proptest): decoding a wire event and converting it to the
//! domain (which validates it) must never panic; a refusal is a decode error or field
//! violations naming a field. Random bytes and mutations of a valid event both run.
//!
//! Long run: `PROPTEST_CASES=1000000 cargo nextest run -p wfl-proto --test fuzz`.

use proptest::prelude::*;
use wfl_proto::convert::{event_from_pb, event_to_pb};
use wfl_proto::{pb, Message};

fn valid_event() -> Vec<u8> {
    let event: wfl_domain::Event = serde_json::from_value(serde_json::json!({
        "event_id": "0190a5c4-0000-7000-8000-000000000001",
        "org_id": "acme",
        "site_id": "plant-1",
        "jurisdiction": "CN",
        "effective_date": "2026-01-15",
        "source": {"system": "hris", "reference": "r-1"},
        "payload": {"type": "Resignation", "separation": {
            "worker_ref": "w1", "employment_relationship": "employee",
            "contract_type": "open_ended", "initiator": "employee"}}
    }))
    .expect("a valid event");
    event_to_pb(&event).encode_to_vec()
}

/// Decodes and converts; panics only on a defect (an error without a field name).
fn check(bytes: &[u8]) {
    // The ledger's shallow read of org and type never panics, and agrees with a decode.
    let shallow = wfl_proto::convert::org_and_type_of(bytes);
    if let Ok(wire) = pb::Event::decode(bytes) {
        let (org, kind) = shallow.expect("what decodes reads shallowly");
        assert_eq!(org, wire.org_id);
        assert_eq!(kind, wfl_proto::convert::event_type_of(&wire));
    }
    match pb::Event::decode(bytes) {
        Err(e) => {
            // The codec turns this into INVALID_ARGUMENT with prost's description.
            let status = wfl_proto::codec::decode_error(&e);
            assert_eq!(status.code(), tonic::Code::InvalidArgument);
        }
        Ok(wire) => match event_from_pb(wire) {
            Ok(event) => {
                // What converts converts back to the same event.
                let again = event_from_pb(event_to_pb(&event)).expect("round trip");
                assert_eq!(again, event);
            }
            Err(v) => {
                assert!(!v.0.is_empty(), "an error names its violations");
                for f in &v.0 {
                    assert!(!f.field.is_empty() && !f.description.is_empty(), "{f:?}");
                }
            }
        },
    }
    // The committed-event envelope (what the ledger publishes and Read returns) too.
    let _ = pb::CommittedEvent::decode(bytes);
    let _ = pb::RecordBatchRequest::decode(bytes);
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        check(&bytes);
    }

    #[test]
    fn mutated_valid_events_never_panic(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut bytes = valid_event();
        for (at, x) in flips {
            let i = at.index(bytes.len());
            bytes[i] ^= x;
        }
        if truncate {
            let n = cut.index(bytes.len());
            bytes.truncate(n);
        }
        check(&bytes);
    }
}

#[test]
fn the_seed_event_is_valid() {
    let wire = pb::Event::decode(valid_event().as_slice()).expect("decodes");
    event_from_pb(wire).expect("valid");
}
