//! The gRPC services, one file per service. Each validates requests the way etcd's `v3rpc` does
//! and answers with etcd's error strings and codes; none holds state of its own: everything goes
//! through [`crate::etcd::EtcdServer`] (proposals, reads, the lessor, the store's watch hub).

pub mod cluster;
pub mod election;
pub mod kv;
pub mod lease;
pub mod maintenance;
pub mod watch;
