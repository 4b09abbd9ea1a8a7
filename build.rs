//! Compiles `proto/servicedesk/v1/*.proto` without a system `protoc`: `protox` parses them
//! (keeping comments, so reflection shows them to grpcurl `describe`) and tonic's prost
//! generator writes the Rust code. The encoded descriptor sets are saved for reflection: ours,
//! and the `google.rpc` error details we send, so grpcurl can print them (their Rust types come
//! from `tonic-types`, so no code is generated for them).

use std::{env, fs, path::PathBuf};

use prost::Message;

const PROTOS: &[&str] = &[
    "proto/servicedesk/v1/types.proto",
    "proto/servicedesk/v1/desk.proto",
    "proto/servicedesk/v1/escalation.proto",
    "proto/servicedesk/v1/admin.proto",
    "proto/servicedesk/v1/agent.proto",
];

const ERROR_DETAILS: &str = "proto/google/rpc/error_details.proto";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={ERROR_DETAILS}");
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(PROTOS, ["proto"])?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(
        out_dir.join("servicedesk_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;
    let error_details = protox::compile([ERROR_DETAILS], ["proto"])?;
    fs::write(
        out_dir.join("error_details_descriptor.bin"),
        error_details.encode_to_vec(),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
