//! Compiles `proto/servicedesk/v1/*.proto` without a system `protoc`: `protox` parses them
//! (keeping comments, so reflection shows them to grpcurl `describe`) and tonic's prost
//! generator writes the Rust code. The encoded descriptor set is saved for reflection.

use std::{env, fs, path::PathBuf};

use prost::Message;

const PROTOS: &[&str] = &[
    "proto/servicedesk/v1/types.proto",
    "proto/servicedesk/v1/desk.proto",
    "proto/servicedesk/v1/escalation.proto",
    "proto/servicedesk/v1/admin.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(PROTOS, ["proto"])?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(
        out_dir.join("servicedesk_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
