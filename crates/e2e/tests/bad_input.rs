//! Bad input gets etcd's error, the member keeps serving, and nothing is lost.

use bytes::{Buf, BufMut, Bytes};
use cairn_client::Client;
use cairn_e2e::{Member, RealEtcd, etcdctl};
use cairn_proto::etcdserverpb::{PutRequest, RangeRequest, RequestOp, TxnRequest, request_op};
use std::time::Duration;
use tonic::Code;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

/// Sends bytes as they are: lets the test put malformed protobuf on the wire.
#[derive(Default, Clone)]
struct RawCodec;
struct RawEncoder;
struct RawDecoder;

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        let mut out = vec![0; src.remaining()];
        src.copy_to_slice(&mut out);
        Ok(Some(out))
    }
}

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

async fn raw_call(
    endpoint: &str,
    path: &'static str,
    body: Vec<u8>,
) -> Result<Vec<u8>, tonic::Status> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{endpoint}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    grpc.unary(
        tonic::Request::new(body),
        tonic::codegen::http::uri::PathAndQuery::from_static(path),
        RawCodec,
    )
    .await
    .map(tonic::Response::into_inner)
}

fn put_op(key: &str) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(PutRequest {
            key: Bytes::from(key.to_owned()),
            value: Bytes::from_static(b"v"),
            ..Default::default()
        })),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_etcd_errors_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let m = Member::start(
        &dir.path().join("m1"),
        &["--max-request-bytes", "4096", "--max-txn-ops", "4"],
    );
    let ep = m.endpoint();
    let c = Client::connect(std::slice::from_ref(&ep), Duration::from_secs(2))
        .await
        .unwrap();
    c.put("keep", "me").await.unwrap();

    // Larger than --max-request-bytes, within the transport limit: etcd's own error.
    let e = c.put("big", vec![b'x'; 8000]).await.unwrap_err();
    match &e {
        cairn_client::ClientError::Status(s) => {
            assert_eq!(s.code(), Code::InvalidArgument);
            assert_eq!(s.message(), "etcdserver: request is too large");
        }
        other => panic!("{other}"),
    }
    // Beyond the transport limit (max-request-bytes + 512 KiB): refused before decoding, with
    // grpc-go's code and message, as etcd answers.
    let e = c.put("huge", vec![b'x'; 700 * 1024]).await.unwrap_err();
    match &e {
        cairn_client::ClientError::Status(s) => {
            assert_eq!(s.code(), Code::ResourceExhausted, "{s:?}");
            assert!(
                s.message()
                    .starts_with("grpc: received message larger than max ("),
                "{s:?}"
            );
        }
        other => panic!("{other}"),
    }

    // Too many operations.
    let txn = TxnRequest {
        compare: vec![],
        success: (0..5).map(|i| put_op(&format!("t{i}"))).collect(),
        failure: vec![],
    };
    let s = c.kv().txn(txn).await.unwrap_err();
    assert_eq!(s.code(), Code::InvalidArgument);
    assert_eq!(
        s.message(),
        "etcdserver: too many operations in txn request"
    );

    // Empty keys.
    let s = c.kv().put(PutRequest::default()).await.unwrap_err();
    assert_eq!(s.message(), "etcdserver: key is not provided");
    assert_eq!(s.code(), Code::InvalidArgument);
    let s = c.kv().range(RangeRequest::default()).await.unwrap_err();
    assert_eq!(s.message(), "etcdserver: key is not provided");

    // Invalid sort option.
    let s = c
        .kv()
        .range(RangeRequest {
            key: Bytes::from_static(b"a"),
            sort_order: 9,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(s.message(), "etcdserver: invalid sort option");

    // A range whose end sorts before its start is empty, as in etcd.
    let r = c
        .kv()
        .range(RangeRequest {
            key: Bytes::from_static(b"z"),
            range_end: Bytes::from_static(b"a"),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.kvs.is_empty());
    assert_eq!(r.count, 0);

    // Future revision.
    let s = c
        .kv()
        .range(RangeRequest {
            key: Bytes::from_static(b"keep"),
            revision: 1000,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::OutOfRange);
    assert_eq!(
        s.message(),
        "etcdserver: mvcc: required revision is a future revision"
    );

    // ignore_value with a value.
    let s = c
        .kv()
        .put(PutRequest {
            key: Bytes::from_static(b"keep"),
            value: Bytes::from_static(b"x"),
            ignore_value: true,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(s.message(), "etcdserver: value is provided");

    // Malformed protobuf on the wire (a field header promising more bytes than follow, an
    // invalid wire type, a truncated varint) gets the code real etcd answers with.
    let etcd = RealEtcd::start();
    let etcd_ep = etcd.endpoint();
    for (path, garbage) in [
        ("/etcdserverpb.KV/Put", vec![0x0a, 0xff, 0xff, 0x01]),
        ("/etcdserverpb.KV/Put", vec![0xff; 16]),
        ("/etcdserverpb.KV/Put", vec![0x08]),
        ("/etcdserverpb.KV/Range", vec![0x12, 0x05, 0x01]),
    ] {
        let want = raw_call(&etcd_ep, path, garbage.clone()).await.unwrap_err();
        let got = raw_call(&ep, path, garbage.clone()).await.unwrap_err();
        assert_eq!(
            got.code(),
            want.code(),
            "{path} {garbage:02x?}: etcd said {want:?}, Cairn {got:?}"
        );
        assert_eq!(want.code(), Code::Internal, "etcd changed: {want:?}");
    }
    // An empty Downgrade request validates an empty target: etcd 3.6's format error.
    let s = raw_call(&ep, "/etcdserverpb.Maintenance/Downgrade", vec![])
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::InvalidArgument);
    assert_eq!(
        s.message(),
        "etcdserver: wrong downgrade target version format"
    );
    // A method that does not exist answers UNIMPLEMENTED naming it.
    let s = raw_call(&ep, "/etcdserverpb.Nope/Call", vec![])
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::Unimplemented);
    assert!(
        s.message().contains("/etcdserverpb.Nope/Call"),
        "{}",
        s.message()
    );

    // The member still serves, and nothing was lost or half-applied.
    let r = c.get("keep").await.unwrap();
    assert_eq!(r.kvs[0].value.as_ref(), b"me");
    assert!(c.get_prefix("t").await.unwrap().kvs.is_empty());
    assert!(c.get("big").await.unwrap().kvs.is_empty());
    c.put("after", "ok").await.unwrap();

    // The same through real etcdctl.
    let run = etcdctl(&ep, &["put", "big", &"y".repeat(5000)], None);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains("Error: etcdserver: request is too large"),
        "{}",
        run.stderr
    );
    let run = etcdctl(&ep, &["get", "keep"], None);
    assert_eq!(run.stdout, "keep\nme\n");
}
