//! Per-connection limits: token buckets for rates and message reassembly with its size bounds,
//! and the process-wide reassembly budget.

pub mod budget;
pub mod reassembly;
pub mod token_bucket;
pub mod utf8;

pub use budget::ReassemblyBudget;
pub use reassembly::{Assembled, Reassembly, ReassemblyError};
pub use token_bucket::TokenBucket;
