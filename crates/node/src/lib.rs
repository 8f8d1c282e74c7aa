//! One bank's server (placeholder while the node is being written).

pub mod config;

pub use config::{Limits, NodeConfig};

use std::future::Future;
use std::net::SocketAddr;

/// Why a node could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("storage: {0}")]
    Storage(String),
}

/// A running bank node.
#[derive(Debug)]
pub struct Node {
    addr: SocketAddr,
}

impl Node {
    /// Opens (or creates) the data directory, rebuilds state from disk and binds the port.
    pub async fn start(config: NodeConfig) -> Result<Node, NodeError> {
        Err(NodeError::Storage(format!("not yet written: {}", config.listen)))
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `shutdown` completes, then drains requests and flushes the ledger.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), NodeError> {
        shutdown.await;
        Ok(())
    }
}
