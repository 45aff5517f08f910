//! The connector compliance harness: SPEC section 3 (sync exactness) as checks that every
//! connector passes against a source of its system, on SQLite and on PostgreSQL.
//!
//! - [`subject`]: what a connector provides: a way to start its source and change it from
//!   outside ([`Subject`], [`TestSource`]).
//! - [`proxy`]: a fault-injecting HTTP proxy put in front of any source (rate limits,
//!   5xx, resets, stalls, truncated and non-JSON bodies, slow pages, random chaos).
//! - [`checks`]: the checks, and [`compliance_tests!`] that declares them as tests.
//! - [`soak`]: the seeded, model-based random workload behind `millrace soak` and its short CI
//!   run.
//! - [`world`]: a whole Millrace (store, engine, HTTP API) for a test.

pub mod checks;
pub mod proxy;
pub mod soak;
pub mod subject;
pub mod world;

pub use subject::{ChangeTime, SourceFault, Subject, TestSource, TruthRow};
