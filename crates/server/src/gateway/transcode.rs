//! JSON to protobuf and back by descriptor, with grpc-gateway's mapping as etcd configures it
//! (`JSONPb{OrigName: true}`): proto field names out, either name in, 64-bit integers as
//! strings, bytes as base64, enums by name, default values left out, unknown fields ignored.
//! Also gRPC's length-prefixed framing, for the calls the gateway makes into the services.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use prost::Message;
use prost_reflect::{
    DescriptorPool, DeserializeOptions, DynamicMessage, MessageDescriptor, SerializeOptions,
};
use std::sync::OnceLock;

/// The descriptors of etcd's protos, decoded once.
pub(super) fn pool() -> Result<&'static DescriptorPool, String> {
    static POOL: OnceLock<Result<DescriptorPool, String>> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(cairn_proto::FILE_DESCRIPTOR_SET).map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(Clone::clone)
}

fn read_options() -> DeserializeOptions {
    DeserializeOptions::new().deny_unknown_fields(false)
}

fn write_options() -> SerializeOptions {
    SerializeOptions::new()
        .use_proto_field_name(true)
        .skip_default_fields(true)
        .stringify_64_bit_integers(true)
        .use_enum_numbers(false)
}

/// A request message from JSON text (an empty body is the empty message, as grpc-gateway's).
pub(super) fn message_from_json(desc: &MessageDescriptor, json: &[u8]) -> Result<Bytes, String> {
    if json.iter().all(u8::is_ascii_whitespace) {
        return Ok(Bytes::new());
    }
    let mut de = serde_json::Deserializer::from_slice(json);
    let msg = DynamicMessage::deserialize_with_options(desc.clone(), &mut de, &read_options())
        .map_err(|e| e.to_string())?;
    Ok(Bytes::from(msg.encode_to_vec()))
}

/// A request message from one JSON value of a stream.
pub(super) fn message_from_value(
    desc: &MessageDescriptor,
    value: serde_json::Value,
) -> Result<Bytes, String> {
    let msg = DynamicMessage::deserialize_with_options(desc.clone(), value, &read_options())
        .map_err(|e| e.to_string())?;
    Ok(Bytes::from(msg.encode_to_vec()))
}

/// A response message as JSON text.
pub(super) fn json_from_message(
    desc: &MessageDescriptor,
    encoded: &[u8],
) -> Result<Vec<u8>, String> {
    let msg = DynamicMessage::decode(desc.clone(), encoded).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::new(&mut out);
    msg.serialize_with_options(&mut ser, &write_options())
        .map_err(|e| e.to_string())?;
    Ok(out)
}

/// One gRPC message frame: uncompressed flag, length, message.
pub(super) fn frame(message: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + message.len());
    out.put_u8(0);
    out.put_u32(u32::try_from(message.len()).unwrap_or(u32::MAX));
    out.put_slice(message);
    out.freeze()
}

/// Takes the whole frames at the front of `buf`, leaving a partial one for more bytes.
pub(super) fn take_frames(buf: &mut BytesMut) -> Result<Vec<Bytes>, String> {
    let mut frames = Vec::new();
    while buf.len() >= 5 {
        if buf[0] != 0 {
            return Err("compressed gRPC message".into());
        }
        let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
        if buf.len() < 5 + len {
            break;
        }
        buf.advance(5);
        frames.push(buf.split_to(len).freeze());
    }
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(name: &str) -> MessageDescriptor {
        pool().unwrap().get_message_by_name(name).unwrap()
    }

    #[test]
    fn json_follows_grpc_gateways_mapping() {
        let range = desc("etcdserverpb.RangeRequest");
        let bytes = message_from_json(
            &range,
            br#"{"key":"Zm9v","range_end":"Zm9w","limit":"5","sortOrder":"DESCEND","bogus":1}"#,
        )
        .unwrap();
        let req = cairn_proto::etcdserverpb::RangeRequest::decode(bytes).unwrap();
        assert_eq!(&req.key[..], b"foo");
        assert_eq!(&req.range_end[..], b"fop");
        assert_eq!(req.limit, 5);
        assert_eq!(req.sort_order, 2);
        assert!(message_from_json(&range, br#"{"key":1}"#).is_err());
        assert!(message_from_json(&range, b"").unwrap().is_empty());

        let resp = cairn_proto::etcdserverpb::LeaseGrantResponse {
            header: Some(cairn_proto::etcdserverpb::ResponseHeader {
                revision: 3,
                ..Default::default()
            }),
            id: 7,
            ttl: 30,
            error: String::new(),
        };
        let json = json_from_message(
            &desc("etcdserverpb.LeaseGrantResponse"),
            &resp.encode_to_vec(),
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(json).unwrap(),
            r#"{"header":{"revision":"3"},"ID":"7","TTL":"30"}"#
        );
    }

    #[test]
    fn frames_split_where_they_end() {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&frame(b"abc"));
        buf.extend_from_slice(&frame(b""));
        buf.extend_from_slice(&frame(b"de")[..4]);
        let got = take_frames(&mut buf).unwrap();
        assert_eq!(got, vec![Bytes::from_static(b"abc"), Bytes::new()]);
        assert_eq!(buf.len(), 4);
        buf.extend_from_slice(&frame(b"de")[4..]);
        assert_eq!(
            take_frames(&mut buf).unwrap(),
            vec![Bytes::from_static(b"de")]
        );
    }
}
