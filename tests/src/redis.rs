//! One `redis-server` per simulated edge: the launcher shared with the demo and every crate's
//! tests ([`fixtures::redis`]).

pub use fixtures::redis::RedisServer as Redis;
