//! servicedesk: a multi-tier customer service desk served over gRPC.
//!
//! Layers, from the inside out: [`domain`] (pure rules), [`store`] (durability behind a trait),
//! [`runtime`] (the one owner of state, group commit), [`api`] (tonic services), [`server`]
//! (assembly and lifecycle). See ARCHITECTURE.md for the map.

pub mod api;
pub mod clock;
pub mod config;
pub mod domain;
pub mod keys;
#[cfg(unix)]
pub mod process;
pub mod runtime;
pub mod server;
pub mod store;

/// Code generated from `proto/servicedesk/v1`.
pub mod proto {
    #[allow(clippy::all, clippy::pedantic, missing_docs)]
    pub mod v1 {
        tonic::include_proto!("servicedesk.v1");
    }

    /// The encoded descriptors of our protos, with comments, for reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/servicedesk_descriptor.bin"));

    /// The `google.rpc` error details the server attaches to errors, for reflection.
    pub const ERROR_DETAILS_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/error_details_descriptor.bin"));
}
