//! Every request is served whatever its HTTP/2 `:authority` or HTTP/1 `Host` holds, as etcd's Go
//! server does: etcdctl dialing by URL sends `http://127.0.0.1:2379`, and clientv3 3.5.0 (inside
//! kube-apiserver 1.22 and 1.23) sends `#initially=[http://127.0.0.1:2379]`.

use cairn_e2e::h2raw::{self, H2Outcome};
use cairn_e2e::{Member, etcdctl};
use cairn_proto::etcdserverpb::{PutRequest, RangeRequest, RangeResponse};
use prost::Message;

const ODD_AUTHORITIES: &[&str] = &[
    "#initially=[http://127.0.0.1:2379]",
    "http://127.0.0.1:2379",
    "127.0.0.1:2379",
    "",
];

#[test]
fn etcdctl_dialing_by_url_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let m = Member::start(&dir.path().join("m1"), &[]);
    // endpoint status and hashkv dial each endpoint by its full URL.
    for args in [
        &["endpoint", "status"][..],
        &["endpoint", "hashkv"],
        &["endpoint", "status", "-w", "json"],
    ] {
        let run = etcdctl(&m.url(), args, None);
        assert_eq!(run.code, 0, "{args:?}: {}{}", run.stdout, run.stderr);
        assert!(run.stdout.contains(&m.url()), "{args:?}: {}", run.stdout);
    }
}

#[test]
fn grpc_and_http_are_served_whatever_the_authority() {
    let dir = tempfile::tempdir().unwrap();
    let m = Member::start(&dir.path().join("m1"), &[]);
    let put = PutRequest {
        key: "k".into(),
        value: "v".into(),
        ..Default::default()
    };
    for authority in ODD_AUTHORITIES {
        let answer = h2raw::grpc_unary(
            m.client_port,
            "/etcdserverpb.KV/Put",
            authority.as_bytes(),
            &put.encode_to_vec(),
        )
        .unwrap();
        assert!(answer.is_ok(), "put with {authority:?}: {answer:?}");

        let range = RangeRequest {
            key: "k".into(),
            ..Default::default()
        };
        let answer = h2raw::grpc_unary(
            m.client_port,
            "/etcdserverpb.KV/Range",
            authority.as_bytes(),
            &range.encode_to_vec(),
        )
        .unwrap()
        .unwrap_or_else(|e| panic!("range with {authority:?}: {e:?}"));
        let resp = RangeResponse::decode(answer.as_slice()).unwrap();
        assert_eq!(resp.kvs.len(), 1, "{authority:?}");
        assert_eq!(resp.kvs[0].value.as_ref(), b"v");

        // The HTTP endpoints on the same port, over HTTP/2.
        let health = h2raw::request(
            m.client_port,
            "GET",
            "/health",
            authority.as_bytes(),
            &[],
            &[],
        )
        .unwrap();
        match health {
            H2Outcome::Completed(body) => assert!(
                String::from_utf8_lossy(&body).contains("\"health\":\"true\""),
                "{authority:?}: {}",
                String::from_utf8_lossy(&body)
            ),
            other => panic!("/health with {authority:?}: {other:?}"),
        }
    }

    // And over HTTP/1.1 with the same values in Host.
    for authority in ODD_AUTHORITIES {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", m.client_port)).unwrap();
        write!(
            s,
            "GET /health HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).unwrap();
        assert!(reply.starts_with("HTTP/1.1 200"), "{authority:?}: {reply}");
        assert!(
            reply.contains("\"health\":\"true\""),
            "{authority:?}: {reply}"
        );
    }
}
