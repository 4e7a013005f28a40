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

/// The gRPC reflection services for `wfl.v1` (and the health service's own descriptors), so that
/// grpcurl-style and Python clients can discover the API on any wfl port: `v1`
/// (`grpc.reflection.v1`) and `v1alpha` (`grpc.reflection.v1alpha`, the only one Python's
/// `grpcio-reflection` client speaks). The descriptors keep the `.proto` comments
/// (`source_code_info`), so a client shows what each method and field means.
///
/// # Errors
/// When the embedded descriptor set cannot be parsed (a build defect).
pub fn reflection() -> Result<
    (
        tonic_reflection::server::v1::ServerReflectionServer<
            impl tonic_reflection::server::v1::ServerReflection,
        >,
        tonic_reflection::server::v1alpha::ServerReflectionServer<
            impl tonic_reflection::server::v1alpha::ServerReflection,
        >,
    ),
    tonic_reflection::server::Error,
> {
    let builder = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    Ok((builder().build_v1()?, builder().build_v1alpha()?))
}

#[cfg(test)]
mod tests {
    use prost::Message;

    /// Reflection clients show the `.proto` comments only if the descriptor set keeps them
    /// (`source_code_info`; prost-build passes `--include_source_info` to protoc).
    #[test]
    fn every_wfl_file_descriptor_keeps_its_comments() {
        let set = prost_types::FileDescriptorSet::decode(super::FILE_DESCRIPTOR_SET)
            .expect("the embedded descriptor set decodes");
        let files: Vec<_> = set
            .file
            .iter()
            .filter(|f| f.package() == "wfl.v1")
            .collect();
        assert_eq!(files.len(), 4, "events, ingest, ledger, views");
        for f in files {
            let commented = f.source_code_info.as_ref().map_or(0, |i| {
                i.location
                    .iter()
                    .filter(|l| {
                        l.leading_comments
                            .as_deref()
                            .is_some_and(|c| !c.trim().is_empty())
                    })
                    .count()
            });
            assert!(commented > 0, "{} lost its comments", f.name());
        }
    }
}
