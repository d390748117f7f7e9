//! `RawRangeResponse`: etcd's `RangeResponse` on the wire, with its key-values already encoded.
//!
//! The server answers a Range from stored `mvccpb.KeyValue` records. Carried as one `Bytes` per
//! key, a 100k-key answer cost the network threads 100k reference-count updates and frees, and
//! prost a length computation per key, all at normal priority while writes waited. Here the
//! key-values are one buffer of ready-framed field-2 entries, built on the (low-priority) read
//! thread, so encoding the answer is a header and one copy.
//!
//! This is a hand-written `prost::Message` rather than generated code because prost has no
//! notion of a pre-encoded repeated field; the encoding is the one `RangeResponse` has.

use crate::etcdserverpb::ResponseHeader;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use prost::encoding::{self, DecodeContext, WireType};
use prost::{DecodeError, Message};

/// Field number of `kvs` in `etcdserverpb.RangeResponse`.
const KVS_FIELD: u32 = 2;

/// Encoded key-values, each framed as field 2 of `RangeResponse` (tag, length, bytes).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct EncodedKvs {
    framed: Bytes,
    count: usize,
}

impl std::fmt::Debug for EncodedKvs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "EncodedKvs({} kvs, {} bytes)",
            self.count,
            self.framed.len()
        )
    }
}

impl EncodedKvs {
    /// Frames each encoded `mvccpb.KeyValue` of `kvs`, in order.
    pub fn frame(kvs: &[Bytes]) -> EncodedKvs {
        let total: usize = kvs
            .iter()
            .map(|kv| {
                encoding::key_len(KVS_FIELD)
                    + encoding::encoded_len_varint(kv.len() as u64)
                    + kv.len()
            })
            .sum();
        let mut buf = BytesMut::with_capacity(total);
        for kv in kvs {
            frame_into(kv, &mut buf);
        }
        EncodedKvs {
            framed: buf.freeze(),
            count: kvs.len(),
        }
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes of the framed key-values.
    pub fn encoded_len(&self) -> usize {
        self.framed.len()
    }

    /// The key of the last key-value, found by walking the frames (`RangeStream` resumes
    /// after it).
    pub fn last_key(&self) -> Option<Bytes> {
        let mut rest = self.framed.clone();
        let mut last = None;
        while rest.has_remaining() {
            encoding::decode_key(&mut rest).ok()?;
            let len = usize::try_from(encoding::decode_varint(&mut rest).ok()?).ok()?;
            if rest.remaining() < len {
                return None;
            }
            last = Some(rest.split_to(len));
        }
        /// Field 1 alone, as `mvccpb.KeyValue` holds the key.
        #[derive(Clone, PartialEq, prost::Message)]
        struct KeyOnly {
            #[prost(bytes = "bytes", tag = "1")]
            key: Bytes,
        }
        Some(KeyOnly::decode(last?).ok()?.key)
    }

    /// The encoded key-values, unframed again (for tests and diagnostics).
    pub fn to_vec(&self) -> Result<Vec<Bytes>, DecodeError> {
        /// Field 2 alone, as `RangeResponse` frames it.
        #[derive(Clone, PartialEq, prost::Message)]
        struct Unframed {
            #[prost(bytes = "bytes", repeated, tag = "2")]
            kvs: Vec<Bytes>,
        }
        Ok(Unframed::decode(self.framed.clone())?.kvs)
    }

    fn push(&mut self, kv: &[u8]) {
        let mut buf = BytesMut::from(std::mem::take(&mut self.framed));
        frame_into(kv, &mut buf);
        self.framed = buf.freeze();
        self.count += 1;
    }
}

fn frame_into(kv: &[u8], buf: &mut BytesMut) {
    encoding::encode_key(KVS_FIELD, WireType::LengthDelimited, buf);
    encoding::encode_varint(kv.len() as u64, buf);
    buf.put_slice(kv);
}

/// `etcdserverpb.RangeResponse` with pre-encoded key-values.
#[derive(Clone, Default, PartialEq, Debug)]
pub struct RawRangeResponse {
    pub header: Option<ResponseHeader>,
    pub kvs: EncodedKvs,
    pub more: bool,
    pub count: i64,
}

impl Message for RawRangeResponse {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        if let Some(header) = &self.header {
            encoding::message::encode(1, header, buf);
        }
        buf.put_slice(&self.kvs.framed);
        if self.more {
            encoding::bool::encode(3, &self.more, buf);
        }
        if self.count != 0 {
            encoding::int64::encode(4, &self.count, buf);
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        match tag {
            1 => encoding::message::merge(
                wire_type,
                self.header.get_or_insert_with(ResponseHeader::default),
                buf,
                ctx,
            ),
            KVS_FIELD => {
                let mut kv = Bytes::new();
                encoding::bytes::merge(wire_type, &mut kv, buf, ctx)?;
                self.kvs.push(&kv);
                Ok(())
            }
            3 => encoding::bool::merge(wire_type, &mut self.more, buf, ctx),
            4 => encoding::int64::merge(wire_type, &mut self.count, buf, ctx),
            _ => encoding::skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        self.header
            .as_ref()
            .map_or(0, |h| encoding::message::encoded_len(1, h))
            + self.kvs.framed.len()
            + if self.more {
                encoding::bool::encoded_len(3, &self.more)
            } else {
                0
            }
            + if self.count != 0 {
                encoding::int64::encoded_len(4, &self.count)
            } else {
                0
            }
    }

    fn clear(&mut self) {
        *self = RawRangeResponse::default();
    }
}

/// `etcdserverpb.RangeStreamResponse` (etcd 3.7) around a [`RawRangeResponse`].
#[derive(Clone, Default, PartialEq, Debug)]
pub struct RawRangeStreamResponse {
    pub range_response: Option<RawRangeResponse>,
}

impl Message for RawRangeStreamResponse {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        if let Some(r) = &self.range_response {
            encoding::message::encode(1, r, buf);
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        match tag {
            1 => encoding::message::merge(
                wire_type,
                self.range_response
                    .get_or_insert_with(RawRangeResponse::default),
                buf,
                ctx,
            ),
            _ => encoding::skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        self.range_response
            .as_ref()
            .map_or(0, |r| encoding::message::encoded_len(1, r))
    }

    fn clear(&mut self) {
        self.range_response = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::etcdserverpb::RangeResponse;
    use crate::mvccpb::KeyValue;

    fn kv(key: &str, value_len: usize) -> KeyValue {
        KeyValue {
            key: Bytes::copy_from_slice(key.as_bytes()),
            create_revision: 3,
            mod_revision: 300,
            version: 7,
            value: Bytes::from(vec![b'v'; value_len]),
            lease: 0,
        }
    }

    fn both(kvs: Vec<KeyValue>, more: bool, count: i64) -> (RawRangeResponse, RangeResponse) {
        let header = Some(ResponseHeader {
            cluster_id: 1,
            member_id: 2,
            revision: 300,
            raft_term: 4,
        });
        let encoded: Vec<Bytes> = kvs
            .iter()
            .map(|kv| Bytes::from(kv.encode_to_vec()))
            .collect();
        let raw = RawRangeResponse {
            header,
            kvs: EncodedKvs::frame(&encoded),
            more,
            count,
        };
        let decoded = RangeResponse {
            header,
            kvs,
            more,
            count,
        };
        (raw, decoded)
    }

    #[test]
    fn encodes_byte_for_byte_as_range_response() {
        // Values around the one- and two-byte varint length boundary, and none at all.
        let cases = [
            both(vec![], false, 0),
            both(vec![kv("a", 0)], true, 9),
            both(
                vec![kv("a", 100), kv("bb", 127), kv("ccc", 128), kv("d", 20_000)],
                false,
                4,
            ),
        ];
        for (raw, decoded) in cases {
            assert_eq!(raw.encoded_len(), decoded.encoded_len());
            assert_eq!(raw.encode_to_vec(), decoded.encode_to_vec());
        }
    }

    #[test]
    fn decodes_what_range_response_encodes() {
        let (raw, decoded) = both(vec![kv("x", 5), kv("y", 300)], true, 2);
        let back = RawRangeResponse::decode(decoded.encode_to_vec().as_slice()).unwrap();
        assert_eq!(back, raw);
        assert_eq!(back.kvs.len(), 2);
        let unframed = back.kvs.to_vec().unwrap();
        assert_eq!(KeyValue::decode(unframed[1].clone()).unwrap(), kv("y", 300));
    }
}
