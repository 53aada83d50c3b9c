//! Per-connection limits: token buckets for rates and message reassembly with its size bounds.

pub mod reassembly;
pub mod token_bucket;

pub use reassembly::{Assembled, Reassembly, ReassemblyError};
pub use token_bucket::TokenBucket;
