//! One connection to an edge, standalone or cluster, and pipelines that respect cluster slots.
//!
//! Addresses:
//! - `redis://host:port[/db]` — one Redis, through a [`ConnectionManager`] (reconnects by itself);
//! - `redis+cluster://host:port[,host:port...]` — a Redis Cluster, given one or more seed nodes,
//!   through a `cluster_async::ClusterConnection` (follows the slot map and reconnects).

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, FromRedisValue, Pipeline, RedisError, RedisResult, Value};

use crate::error::{Error, Result};

/// How many single-slot pipelines may be in flight at once on a cluster.
const CLUSTER_PIPELINES_IN_FLIGHT: usize = 64;

#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub response: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_millis(1000),
            response: Duration::from_millis(5000),
        }
    }
}

/// The parsed form of an edge address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    Single(String),
    Cluster(Vec<String>),
}

impl Address {
    pub fn parse(address: &str) -> Result<Address> {
        let bad = || Error::BadAddress(address.to_string());
        if let Some(rest) = address.strip_prefix("redis+cluster://") {
            let seeds: Vec<String> = rest
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| format!("redis://{}", s.trim_end_matches('/')))
                .collect();
            if seeds.is_empty() {
                return Err(bad());
            }
            for s in &seeds {
                redis::Client::open(s.as_str()).map_err(|_| bad())?;
            }
            Ok(Address::Cluster(seeds))
        } else if address.starts_with("redis://") || address.starts_with("unix://") {
            redis::Client::open(address).map_err(|_| bad())?;
            Ok(Address::Single(address.to_string()))
        } else {
            Err(bad())
        }
    }
}

#[derive(Clone)]
pub enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Conn {
    /// Connects lazily: nothing is sent until the first command, so a service can start while
    /// its Redis is down and recover when it comes up.
    pub fn open_lazy(address: &Address, timeouts: Timeouts) -> RedisResult<Conn> {
        match address {
            Address::Single(url) => {
                let client = redis::Client::open(url.as_str())?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeouts.connect))
                    .set_response_timeout(Some(timeouts.response))
                    .set_number_of_retries(2)
                    .set_min_delay(Duration::from_millis(50))
                    .set_max_delay(Duration::from_millis(1000));
                Ok(Conn::Single(ConnectionManager::new_lazy_with_config(
                    client, config,
                )?))
            }
            Address::Cluster(seeds) => {
                let client = ClusterClientBuilder::new(seeds.clone())
                    .connection_timeout(timeouts.connect)
                    .response_timeout(timeouts.response)
                    .retries(2)
                    .build()?;
                let config = ClusterConfig::new()
                    .set_connection_timeout(timeouts.connect)
                    .set_response_timeout(timeouts.response);
                Ok(Conn::Cluster(
                    client.get_pending_async_connection_with_config(config),
                ))
            }
        }
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self, Conn::Cluster(_))
    }

    pub async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> RedisResult<T> {
        match self {
            Conn::Single(c) => cmd.query_async(&mut c.clone()).await,
            Conn::Cluster(c) => cmd.query_async(&mut c.clone()).await,
        }
    }

    /// A pipeline whose keys all share one hash tag (one slot).
    pub async fn pipe<T: FromRedisValue>(&self, pipe: &Pipeline) -> RedisResult<T> {
        match self {
            Conn::Single(c) => pipe.query_async(&mut c.clone()).await,
            Conn::Cluster(c) => pipe.query_async(&mut c.clone()).await,
        }
    }

    /// Runs commands that may span hash tags and returns their replies in order: one pipeline
    /// (one round trip) on a single Redis, one pipeline per tag (concurrently) on a cluster.
    /// Any command failing fails the whole call.
    pub async fn grouped(&self, cmds: Grouped) -> RedisResult<Vec<Value>> {
        if cmds.cmds.is_empty() {
            return Ok(Vec::new());
        }
        match self {
            Conn::Single(_) => {
                let mut pipe = redis::pipe();
                for (_, cmd) in cmds.cmds {
                    pipe.add_command(cmd);
                }
                self.pipe(&pipe).await
            }
            Conn::Cluster(_) => {
                let total = cmds.cmds.len();
                let mut groups: HashMap<u64, (Vec<usize>, Pipeline)> = HashMap::new();
                for (i, (group, cmd)) in cmds.cmds.into_iter().enumerate() {
                    let g = groups
                        .entry(group)
                        .or_insert_with(|| (Vec::new(), redis::pipe()));
                    g.0.push(i);
                    g.1.add_command(cmd);
                }
                let results: Vec<RedisResult<(Vec<usize>, Vec<Value>)>> =
                    futures::stream::iter(groups.into_values())
                        .map(|(idx, pipe)| async move {
                            self.pipe::<Vec<Value>>(&pipe).await.map(|v| (idx, v))
                        })
                        .buffer_unordered(CLUSTER_PIPELINES_IN_FLIGHT)
                        .collect()
                        .await;
                let mut out = vec![Value::Nil; total];
                for r in results {
                    let (idx, values) = r?;
                    if idx.len() != values.len() {
                        return Err(RedisError::from((
                            redis::ErrorKind::Client,
                            "pipeline reply count mismatch",
                        )));
                    }
                    for (i, v) in idx.into_iter().zip(values) {
                        out[i] = v;
                    }
                }
                Ok(out)
            }
        }
    }
}

/// Commands tagged with the group (hash tag) their keys belong to.
#[derive(Default)]
pub struct Grouped {
    cmds: Vec<(u64, Cmd)>,
}

impl Grouped {
    pub fn with_capacity(n: usize) -> Self {
        Grouped {
            cmds: Vec::with_capacity(n),
        }
    }

    /// `group` identifies the hash tag of every key `cmd` touches (any stable number).
    pub fn push(&mut self, group: u64, cmd: Cmd) {
        self.cmds.push((group, cmd));
    }

    pub fn len(&self) -> usize {
        self.cmds.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cmds.is_empty()
    }
}

/// Converts one reply of a grouped call.
pub fn value<T: FromRedisValue>(v: Value) -> RedisResult<T> {
    T::from_redis_value(v).map_err(RedisError::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_addresses() {
        assert_eq!(
            Address::parse("redis://127.0.0.1:6379").unwrap(),
            Address::Single("redis://127.0.0.1:6379".into())
        );
        assert_eq!(
            Address::parse("redis+cluster://127.0.0.1:7000,127.0.0.1:7001").unwrap(),
            Address::Cluster(vec![
                "redis://127.0.0.1:7000".into(),
                "redis://127.0.0.1:7001".into()
            ])
        );
        assert!(Address::parse("http://x").is_err());
        assert!(Address::parse("redis+cluster://").is_err());
    }
}
