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
pub mod metrics;
#[cfg(unix)]
pub mod process;
pub mod proto;
pub mod runtime;
pub mod secrets;
pub mod server;
pub mod store;
pub mod telemetry;
