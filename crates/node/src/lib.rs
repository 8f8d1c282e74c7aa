//! One bank's server: storage, the HTTP API and the driver around the pure core.
//!
//! [`Node::start`] opens (or creates) the data directory, rebuilds the ledger from disk, starts
//! the ledger writer and binds the listening socket; [`Node::run_until`] serves until a shutdown
//! signal, then drains in-flight requests and lets the writer commit everything queued before it
//! stops. A bank started without peers is a consortium of one.

pub mod api;
pub mod app;
pub mod auth;
pub mod config;
pub mod consortium;
pub mod driver;
pub mod failpoint;
pub mod interbank;
pub mod metrics;
pub mod peer;
pub mod problem;
pub mod service;
pub mod storage;
pub mod web;

pub use config::{CoordinationMode, Limits, NodeConfig, RingOptions};

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use auth::SessionCache;
use service::Bank;
use storage::read::ReadPool;
use storage::writer::{WriterHandle, now_ms};

/// Why a node could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("storage: {0}")]
    Storage(#[from] storage::StorageError),
    #[error("inter-bank: {0}")]
    Interbank(#[from] peer::client::PeerError),
}

/// A running bank node.
#[derive(Debug)]
pub struct Node {
    addr: SocketAddr,
    listener: tokio::net::TcpListener,
    state: Arc<Bank>,
    writer: WriterHandle,
    writer_thread: std::thread::JoinHandle<()>,
    _lock: std::fs::File,
}

impl Node {
    /// Opens (or creates) the data directory, rebuilds state from disk and binds the port.
    pub async fn start(config: NodeConfig) -> Result<Node, NodeError> {
        // Checked before touching the data directory: a misconfigured bank changes nothing.
        let interbank = match &config.consortium {
            Some(consortium) => Some(Arc::new(peer::Interbank::new(config.bank_id, consortium, &config.limits)?)),
            None => None,
        };
        let lock = storage::lock_data_dir(&config.data_dir)?;
        let data_dir = config.data_dir.clone();
        let bank_id = config.bank_id;
        let decision_memory_ms = config.limits.decision_memory_ms;
        let (conn, ledger, entry_index, records, ring_state, ring_queue) =
            tokio::task::spawn_blocking(move || -> Result<_, storage::StorageError> {
                let conn = storage::open_writer(&data_dir, bank_id)?;
                let since = storage::transfer_id_at(now_ms().0 - decision_memory_ms);
                let ledger = storage::load_ledger(&conn, bank_id, since)?;
                let entry_index = storage::EntryIndex::load(&conn)?;
                let records = storage::load_coordinator_records(&conn, since)?;
                let ring_state = storage::load_ring_state(&conn)?;
                let ring_queue = storage::load_ring_queue(&conn)?;
                Ok((conn, ledger, entry_index, records, ring_state, ring_queue))
            })
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))??;
        let accounts = ledger.accounts().count();
        let entry_index = Arc::new(entry_index);
        let metrics = Arc::new(metrics::Metrics::new());
        let members: std::collections::BTreeSet<_> = match &interbank {
            Some(ib) => ib.members.keys().copied().collect(),
            None => [bank_id].into_iter().collect(),
        };
        let in_flight = records.len();
        let mut ledger = ledger;
        if members.len() > 1 {
            ledger.set_consortium_keys();
        }
        let ring_mode = members.len() > 1 && config.coordination == CoordinationMode::TokenRing;
        let (ring, unqueued) = if ring_mode {
            let gate = storage::ring::RingGate::recover(
                bank_id,
                members.iter().copied(),
                config.ring,
                ring_state,
                ring_queue,
                metrics.clone(),
            )
            .map_err(|e| std::io::Error::other(format!("token ring: {e}")))?;
            (Some(gate), Vec::new())
        } else {
            (None, ring_queue)
        };
        let ring_view = ring.as_ref().map(|g| g.view());
        let mut machines =
            storage::writer::Machines::new(ledger, records, members.clone(), config.limits.prepare_expiry_ms, ring);
        machines.unqueued = unqueued;
        machines.decision_memory_ms = decision_memory_ms;
        let (writer, writer_thread) = storage::writer::spawn(
            conn,
            machines,
            bank_id,
            config.limits.writer_queue_len_max,
            config.limits.batch_len_max,
            entry_index.clone(),
            metrics.clone(),
        )?;
        let coordination = driver::Coordination::start(
            bank_id,
            writer.clone(),
            interbank.as_ref().map(|ib| ib.peers.clone()),
            members.into_iter().collect(),
            ring_view.as_ref().map(|_| config.ring.tick_ms),
        );
        tracing::debug!(coordinator_records = in_flight, "two-phase commit recovered");
        let reads = ReadPool::new(storage::database_path(&config.data_dir), config.limits.read_connections_max);
        let sessions = SessionCache::default();
        let live = reads.run(|c| storage::read::live_sessions(c, now_ms())).await?;
        for (hash, account, expires) in live {
            sessions.insert(hash, account, expires);
        }
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        tracing::info!(bank_id = %bank_id, name = %config.name, %addr, accounts, data_dir = %config.data_dir.display(), "bank node started");
        let state = Arc::new(Bank {
            bank_id,
            bank_name: config.name.clone(),
            public_url: format!("http://{addr}"),
            writer: writer.clone(),
            reads,
            entry_index,
            sessions,
            hashers: auth::HasherPool::new(config.limits.password_hashers, config.limits.password_queue_len_max)?,
            metrics,
            limits: config.limits.clone(),
            interbank,
            coordination,
            coordination_mode: config.coordination,
            ring: ring_view,
            fault_switch: config.fault_switch,
        });
        Ok(Node { addr, listener, state, writer, writer_thread, _lock: lock })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `shutdown` completes, then drains requests and flushes the ledger.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), NodeError> {
        let Node { listener, state, writer, writer_thread, _lock, .. } = self;
        let purge = {
            let state = state.clone();
            tokio::spawn(async move {
                let mut every = tokio::time::interval(Duration::from_secs(60));
                loop {
                    every.tick().await;
                    let live = state.sessions.purge_expired(now_ms());
                    state.metrics.set_sessions(live);
                }
            })
        };
        let app = app::router(state);
        let served = axum::serve(listener, app).with_graceful_shutdown(shutdown).await;
        purge.abort();
        tracing::info!("no longer accepting requests; flushing the ledger");
        writer.shutdown().await;
        let _ = tokio::task::spawn_blocking(move || writer_thread.join()).await;
        tracing::info!("bank node stopped");
        served.map_err(NodeError::Io)
    }
}
