//! `KV.RangeStream` (etcd 3.7): a range in chunks at one revision, which merged give exactly
//! the unary Range's answer.

use cairn_e2e::{Member, load_keys};
use cairn_proto::etcdserverpb::{RangeRequest, RangeResponse, range_request::SortOrder};
use std::time::Duration;

fn key(t: usize, i: usize) -> String {
    format!("k/{t}/{i:04}")
}

struct Streamed {
    chunks: Vec<RangeResponse>,
}

impl Streamed {
    /// The chunks merged as etcd's client merges them (proto.Merge: lists appended, scalars
    /// overwritten when set).
    fn merged(&self) -> RangeResponse {
        let mut out = RangeResponse::default();
        for c in &self.chunks {
            out.kvs.extend(c.kvs.iter().cloned());
            if c.header.is_some() {
                out.header = c.header;
            }
            out.more |= c.more;
            if c.count != 0 {
                out.count = c.count;
            }
        }
        out
    }
}

async fn stream(
    client: &cairn_client::Client,
    req: RangeRequest,
) -> Result<Streamed, tonic::Status> {
    let mut s = client.kv().range_stream(req).await?.into_inner();
    let mut chunks = Vec::new();
    while let Some(msg) = s.message().await? {
        chunks.push(
            msg.range_response
                .expect("every message holds a range response"),
        );
    }
    Ok(Streamed { chunks })
}

#[test]
fn a_range_in_chunks_is_the_unary_range() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A small request limit makes chunks of a few kilobytes.
    let member = Member::start(&dir.path().join("m1"), &["--max-request-bytes", "16384"]);
    let ep = member.endpoint();
    load_keys(&ep, 4, 150, 200, key);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let client = cairn_client::Client::connect_one(&ep, Duration::from_secs(5))
            .await
            .expect("connect");
        let all = RangeRequest {
            key: "k/".into(),
            range_end: "k0".into(),
            ..Default::default()
        };
        let unary = client
            .kv()
            .range(all.clone())
            .await
            .expect("range")
            .into_inner();
        assert_eq!(unary.count, 600);
        let s = stream(&client, all.clone()).await.expect("stream");
        assert!(s.chunks.len() > 3, "{} chunks", s.chunks.len());
        let (last, rest) = s.chunks.split_last().expect("a chunk");
        for c in rest {
            assert!(c.header.is_none() && !c.more && c.count == 0, "{c:?}");
            assert!(!c.kvs.is_empty());
        }
        assert!(last.header.is_some());
        assert_eq!(s.merged(), unary);

        // Every chunk at the first read's revision, whatever is written meanwhile.
        let mut live = client
            .kv()
            .range_stream(all.clone())
            .await
            .expect("stream")
            .into_inner();
        let first = live.message().await.expect("a chunk").expect("a chunk");
        for i in 0..150 {
            client.put(key(3, i), "changed").await.expect("put");
        }
        let mut chunks = vec![first.range_response.expect("a range response")];
        while let Some(m) = live.message().await.expect("a chunk") {
            chunks.push(m.range_response.expect("a range response"));
        }
        assert_eq!(
            Streamed { chunks }.merged(),
            unary,
            "pinned at the first read's revision"
        );

        // Limit, count-only and keys-only as the unary Range has them.
        for req in [
            RangeRequest {
                limit: 123,
                ..all.clone()
            },
            RangeRequest {
                count_only: true,
                ..all.clone()
            },
            RangeRequest {
                keys_only: true,
                ..all.clone()
            },
            RangeRequest {
                revision: unary.header.as_ref().unwrap().revision,
                ..all.clone()
            },
            RangeRequest {
                key: key(0, 7).into(),
                range_end: Default::default(),
                ..Default::default()
            },
            RangeRequest {
                key: "nothing/".into(),
                range_end: "nothing0".into(),
                ..Default::default()
            },
        ] {
            let want = client
                .kv()
                .range(req.clone())
                .await
                .expect("range")
                .into_inner();
            let got = stream(&client, req.clone()).await.expect("stream").merged();
            assert_eq!(got, want, "{req:?}");
        }
        let with_limit = stream(
            &client,
            RangeRequest {
                limit: 123,
                ..all.clone()
            },
        )
        .await
        .expect("stream")
        .merged();
        assert_eq!(
            (with_limit.kvs.len(), with_limit.more, with_limit.count),
            (123, true, 600)
        );

        // What a chunked range cannot do is refused, as etcd refuses it.
        let desc = RangeRequest {
            sort_order: SortOrder::Descend as i32,
            ..all.clone()
        };
        let err = stream(&client, desc).await.err().expect("refused");
        assert_eq!(err.code(), tonic::Code::Unimplemented);
        let err = stream(
            &client,
            RangeRequest {
                key: Default::default(),
                ..all
            },
        )
        .await
        .err()
        .expect("refused");
        assert_eq!(err.message(), "etcdserver: key is not provided");
    });
}
