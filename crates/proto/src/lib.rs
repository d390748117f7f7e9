//! Wire types for Cairn.
//!
//! Owns: the generated Rust types and gRPC stubs for etcd's v3 API (`etcdserverpb`, `mvccpb`,
//! `authpb`, `v3electionpb`, `v3lockpb`), compiled from Cairn's own `.proto` files which keep
//! etcd's package names, field numbers and types so that every message is identical on the wire,
//! plus `cairnpb`, the envelope that carries a client request through Raft.
//!
//! Must not: contain logic. Anything beyond type definitions and trivial constructors belongs to
//! the layer that uses the types.

#![allow(clippy::all, clippy::pedantic, missing_docs)]

pub mod mvccpb {
    tonic::include_proto!("mvccpb");
}

pub mod authpb {
    tonic::include_proto!("authpb");
}

pub mod etcdserverpb {
    tonic::include_proto!("etcdserverpb");
}

pub mod v3electionpb {
    tonic::include_proto!("v3electionpb");
}

pub mod v3lockpb {
    tonic::include_proto!("v3lockpb");
}

pub mod cairnpb {
    tonic::include_proto!("cairnpb");
}

pub mod raw_range;

/// The encoded `FileDescriptorSet` of every proto above (etcd's and Cairn's), for code that
/// works from descriptors (the JSON gateway).
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptors.bin"));

/// etcd's KV service as the server implements it: identical on the wire, with Range answers
/// carrying encoded key-values (see `proto/cairnpb/kv_server.proto`).
pub mod kv_server {
    include!(concat!(env!("OUT_DIR"), "/kv_server/etcdserverpb.rs"));
}
