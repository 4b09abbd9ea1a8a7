//! Compiles `proto/servicedesk/v1/*.proto` without a system `protoc`: `protox` parses them
//! (keeping comments, so reflection shows them to grpcurl `describe`) and tonic's prost
//! generator writes the Rust code. The encoded descriptor sets are saved for reflection: ours,
//! and the `google.rpc` error details we send, so grpcurl can print them (their Rust types come
//! from `tonic-types`, so no code is generated for them).
//!
//! The code is generated in two passes. The first writes the messages and the clients. The
//! second writes only the servers, against the first pass's messages, except that the three
//! messages the server streams to many watchers at once are declared as
//! `crate::proto::encoded` types: a watch sends bytes encoded once for every watcher, and tonic
//! writes them out as they are.

use std::{env, fs, path::PathBuf};

use prost::Message;

const PROTOS: &[&str] = &[
    "proto/servicedesk/v1/types.proto",
    "proto/servicedesk/v1/desk.proto",
    "proto/servicedesk/v1/escalation.proto",
    "proto/servicedesk/v1/admin.proto",
    "proto/servicedesk/v1/agent.proto",
];

/// Messages the servers send already encoded (see `src/proto.rs`).
const SENT_ENCODED: &[&str] = &["DeskEvent", "TicketEvent", "EscalationEvent"];

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
        .build_server(false)
        .compile_fds(descriptors.clone())?;
    let servers = out_dir.join("servers");
    fs::create_dir_all(&servers)?;
    let mut servers_pass = tonic_prost_build::configure()
        .build_client(false)
        .build_server(true)
        .out_dir(servers)
        .extern_path(".servicedesk.v1", "crate::proto::v1");
    for message in SENT_ENCODED {
        servers_pass = servers_pass.extern_path(
            format!(".servicedesk.v1.{message}"),
            format!("crate::proto::encoded::{message}"),
        );
    }
    servers_pass.compile_fds(descriptors)?;
    Ok(())
}
