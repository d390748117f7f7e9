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
    // protox may link a different prost-types than tonic-prost-build; the encoded descriptor set
    // is the stable interface between them.
    let fds = prost_types::FileDescriptorSet::decode(compiled.encode_to_vec().as_slice())?;
    tonic_prost_build::configure()
        .bytes(".")
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
