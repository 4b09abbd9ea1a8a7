//! The desk's rules, pure and synchronous: the mesh and routing, the ticket queue, human
//! review, topic classification, the knowledge base and policy. No I/O, no clock, no tonic,
//! no tokio, no SQL: every function takes the time it needs as an argument and returns the
//! events it caused, so every rule is testable without a server.

pub mod classify;
pub mod desk;
pub mod error;
pub mod event;
#[cfg(test)]
pub(crate) mod fixtures;
pub mod knowledge;
pub mod limits;
pub mod mesh;
pub mod policy;
#[cfg(test)]
mod properties;
pub mod review;
pub mod text;
pub mod ticket;
pub mod triage;
