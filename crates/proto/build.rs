//! Compiles the protos with `protox` (pure Rust) so that a fresh machine needs no `protoc`.

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/mvccpb/kv.proto",
        "proto/authpb/auth.proto",
        "proto/etcdserverpb/rpc.proto",
        "proto/v3electionpb/v3election.proto",
        "proto/v3lockpb/v3lock.proto",
        "proto/cairnpb/internal.proto",
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    let compiled = protox::compile(files, ["proto"])?;
    // Kept for the JSON gateway, which transcodes by these descriptors.
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out_dir.join("descriptors.bin"), compiled.encode_to_vec())?;
    // protox may link a different prost-types than tonic-prost-build; the encoded descriptor set
    // is the stable interface between them.
    let fds = prost_types::FileDescriptorSet::decode(compiled.encode_to_vec().as_slice())?;
    tonic_prost_build::configure()
        .bytes(".")
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;

    // The server's KV service (see the proto): a second compilation, into its own directory,
    // with every message but the raw Range answer mapped to the types generated above.
    let raw = "proto/cairnpb/kv_server.proto";
    println!("cargo:rerun-if-changed={raw}");
    let compiled = protox::compile([raw], ["proto"])?;
    let fds = prost_types::FileDescriptorSet::decode(compiled.encode_to_vec().as_slice())?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?).join("kv_server");
    std::fs::create_dir_all(&out)?;
    let mut config = tonic_prost_build::configure()
        .bytes(".")
        .build_client(false)
        .build_server(true)
        .out_dir(&out);
    config = config.extern_path(
        ".etcdserverpb.RawRangeResponse",
        "crate::raw_range::RawRangeResponse",
    );
    config = config.extern_path(
        ".etcdserverpb.RawRangeStreamResponse",
        "crate::raw_range::RawRangeStreamResponse",
    );
    for name in [
        "ResponseHeader",
        "RangeRequest",
        "PutRequest",
        "PutResponse",
        "DeleteRangeRequest",
        "DeleteRangeResponse",
        "TxnRequest",
        "TxnResponse",
        "CompactionRequest",
        "CompactionResponse",
    ] {
        config = config.extern_path(
            format!(".etcdserverpb.{name}"),
            format!("crate::etcdserverpb::{name}"),
        );
    }
    config.compile_fds(fds)?;
    Ok(())
}
