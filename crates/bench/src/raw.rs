//! Ranges whose responses are not decoded: a large range answer is tens of megabytes, and
//! parsing it would cost the load generator more CPU than it costs the server to send it. On a
//! 2-core machine that CPU is taken from the server (or from the other load generator); the
//! generator only needs to know the call succeeded and how much came back.

use bytes::Buf;
use cairn_client::cairn_proto::etcdserverpb::RangeRequest;
use prost::Message;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;

#[derive(Default, Clone)]
pub struct RangeCodec;
pub struct RangeEncoder;
/// Skips the response; yields its size in bytes.
pub struct SkipDecoder;

impl Encoder for RangeEncoder {
    type Item = RangeRequest;
    type Error = tonic::Status;
    fn encode(&mut self, item: RangeRequest, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        item.encode(dst)
            .map_err(|e| tonic::Status::internal(e.to_string()))
    }
}

impl Decoder for SkipDecoder {
    type Item = usize;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<usize>, tonic::Status> {
        let n = src.remaining();
        src.advance(n);
        Ok(Some(n))
    }
}

impl Codec for RangeCodec {
    type Encode = RangeRequest;
    type Decode = usize;
    type Encoder = RangeEncoder;
    type Decoder = SkipDecoder;
    fn encoder(&mut self) -> RangeEncoder {
        RangeEncoder
    }
    fn decoder(&mut self) -> SkipDecoder {
        SkipDecoder
    }
}

/// One Range call; the answer's size in bytes.
pub async fn range(channel: Channel, req: RangeRequest) -> Result<usize, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel).max_decoding_message_size(usize::MAX);
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    grpc.unary(
        tonic::Request::new(req),
        tonic::codegen::http::uri::PathAndQuery::from_static("/etcdserverpb.KV/Range"),
        RangeCodec,
    )
    .await
    .map(tonic::Response::into_inner)
}
