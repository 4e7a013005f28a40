//! The wire format of wfl: the generated `wfl.v1` protobuf and gRPC code, and the conversions
//! between it and `wfl-domain` types.
//!
//! This is the only crate that knows the wire format. Services call [`convert`] at their edge and
//! work with domain types inside; no other crate builds or parses protobuf bytes by hand.

pub mod codec;
pub mod convert;

/// Generated `wfl.v1` messages, enums and gRPC clients and servers.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod pb {
    tonic::include_proto!("wfl.v1");
}

/// Generated `wfl.internal.v1` messages: the ledger ⇄ gateway commit outcomes (not a public API,
/// not served by reflection).
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod internal {
    tonic::include_proto!("wfl.internal.v1");
}

/// The encoded `FileDescriptorSet` of `wfl.v1`, served by gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("wfl_descriptor");

pub use prost::Message;

/// The gRPC reflection service for `wfl.v1` (and the health service's own descriptors), so that
/// grpcurl-style and Python clients can discover the API on any wfl port.
///
/// # Errors
/// When the embedded descriptor set cannot be parsed (a build defect).
pub fn reflection() -> Result<
    tonic_reflection::server::v1::ServerReflectionServer<
        impl tonic_reflection::server::v1::ServerReflection,
    >,
    tonic_reflection::server::Error,
> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
}
