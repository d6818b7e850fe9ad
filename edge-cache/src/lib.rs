//! Edge caches: a versioned writer into Redis (standalone or cluster) with verified, atomic
//! commit, rollback and garbage collection — and the lookup HTTP
//! service an edge node runs in front of its Redis.
//!
//! - [`RedisEdge`] implements [`edge_contract::sink::EdgeSink`]; the Redis layout is in [`layout`].
//! - [`lookup::serve`] runs `GET /v1/{api}/{key}`, `POST /v1/{api}/_batch`, `/healthz`,
//!   `/readyz` and `/metrics`; [`lookup::router`] gives the routes alone (tests).

pub mod conn;
pub mod edge;
pub mod error;
pub mod layout;
pub mod lookup;

pub use edge::{EdgeConfig, EdgeOptions, RedisEdge, Resolved};
pub use error::{Error, Result};
pub use lookup::{
    LookupConfig, LookupError, LookupState, router, serve, serve_on, shutdown_signal,
};
