//! The gRPC codec of every generated wfl client and server: prost, except that a message that
//! does not decode is answered `INVALID_ARGUMENT` (tonic's `ProstCodec` says `INTERNAL`, which
//! blames the server for the caller's bytes: invalid UTF-8 in a string, garbage, nesting deeper
//! than prost's recursion limit).
//!
//! Owns: [`Codec`], named by `build.rs` (`codec_path`) so every generated service uses it.
//!
//! Must not: change the wire format; it only changes the status of a decode failure.

use std::marker::PhantomData;

use prost::Message;
use tonic::codec::{DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::Status;

/// Prost encoding; decode failures are `INVALID_ARGUMENT` naming what did not decode.
#[derive(Debug)]
pub struct Codec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for Codec<T, U> {
    fn default() -> Self {
        Codec(PhantomData)
    }
}

impl<T, U> tonic::codec::Codec for Codec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = Encode<T>;
    type Decoder = Decode<U>;

    fn encoder(&mut self) -> Self::Encoder {
        Encode(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        Decode(PhantomData)
    }
}

/// The encoding half of [`Codec`].
#[derive(Debug)]
pub struct Encode<T>(PhantomData<T>);

impl<T: Message> Encoder for Encode<T> {
    type Item = T;
    type Error = Status;

    fn encode(&mut self, item: T, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        // The buffer grows on demand, so encoding cannot run out of space; an error here would
        // be a defect of ours, hence INTERNAL.
        item.encode(dst)
            .map_err(|e| Status::internal(format!("cannot encode the answer: {e}")))
    }
}

/// The decoding half of [`Codec`].
#[derive(Debug)]
pub struct Decode<U>(PhantomData<U>);

impl<U: Message + Default> Decoder for Decode<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(src).map(Some).map_err(|e| decode_error(&e))
    }
}

/// The status of a message that is not a valid protobuf of its type: prost's description names
/// the message and field that failed ("Event.event_id: invalid string value: data is not UTF-8
/// encoded").
#[must_use]
pub fn decode_error(e: &prost::DecodeError) -> Status {
    Status::invalid_argument(format!("the message is not valid protobuf: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb;

    #[test]
    fn invalid_utf8_is_invalid_argument_naming_the_field() {
        // field 1 (event_id), length 2, bytes that are not UTF-8.
        let bytes = [0x0a, 0x02, 0xff, 0xfe];
        let e = pb::Event::decode(&bytes[..]).expect_err("not UTF-8");
        let status = decode_error(&e);
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(status.message().contains("event_id"), "{status:?}");
    }
}
