//! One bank's server: storage, the HTTP API and the driver around the pure core.
//!
//! [`Node::start`] opens (or creates) the data directory, rebuilds the ledger from disk, starts
//! the ledger writer and the driver and binds the listening socket; [`Node::run_until`] serves
//! until a shutdown signal, then drains in-flight requests, stops the session purge and the
//! driver (with every task it owns), lets the writer commit everything queued before it stops,
//! and releases the port, the data directory's lock and the SQLite files. A bank started
//! without peers is a consortium of one.
//!
//! Modules, top to bottom (none imports one above it): [`app`] (router assembly) → [`api`],
//! [`web`], [`interbank`] (siblings) → [`service`] (every customer operation, once) →
//! [`driver`] (one event loop) → [`peer`] (signed transport, wire types) → [`storage`] → core.
//! [`problem`] maps errors to HTTP for the three faces; [`auth`], [`config`], [`consortium`],
//! [`metrics`] and [`failpoint`] are leaves. [`listener`] (the accept loop: timeouts and
//! connection caps) serves the router [`app`] builds.

pub mod api;
pub mod app;
pub mod auth;
pub mod clock;
pub mod config;
pub mod consortium;
pub mod driver;
pub mod failpoint;
pub mod interbank;
pub mod listener;
pub mod metrics;
pub mod peer;
pub mod problem;
pub mod seed;
pub mod service;
pub mod storage;
pub mod web;

pub use config::{CoordinationMode, Limits, NodeConfig, RingOptions};

use std::collections::BTreeSet;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bank_core::ids::BankId;
use bank_core::ring::Tick;
use rusqlite::Connection;

use auth::SessionCache;
use driver::DriverTask;
use service::Bank;
use storage::read::ReadPool;
use storage::ring::RingMonitor;
use storage::writer::{WriterHandle, WriterState, now_ms};

/// Why a node could not start or stopped with an error.
///
/// Each variant says its cause in its own message and does not also chain it as a `source`, so
/// `{:#}` (the CLI's report) prints it once.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("{0}")]
    Io(std::io::Error),
    #[error("storage: {0}")]
    Storage(storage::StorageError),
    #[error("inter-bank: {0}")]
    Interbank(peer::client::PeerError),
}

impl From<std::io::Error> for NodeError {
    fn from(e: std::io::Error) -> Self {
        NodeError::Io(e)
    }
}

impl From<storage::StorageError> for NodeError {
    fn from(e: storage::StorageError) -> Self {
        NodeError::Storage(e)
    }
}

impl From<peer::client::PeerError> for NodeError {
    fn from(e: peer::client::PeerError) -> Self {
        NodeError::Interbank(e)
    }
}

/// A running bank node.
#[derive(Debug)]
pub struct Node {
    addr: SocketAddr,
    listener: tokio::net::TcpListener,
    state: Arc<Bank>,
    writer: WriterHandle,
    writer_thread: std::thread::JoinHandle<()>,
    driver: DriverTask,
    lock: std::fs::File,
    connections: listener::ConnectionPolicy,
}

/// The bank's configuration: members, expiry, memory window and the ring's gate in
/// `token-ring` mode (a bank alone has no ring: transactions once queued for the token begin at
/// its first tick).
fn bank_config(config: &NodeConfig, members: &BTreeSet<BankId>) -> bank_core::bank::BankConfig {
    let ring_mode = members.len() > 1 && config.coordination == CoordinationMode::TokenRing;
    bank_core::bank::BankConfig {
        members: members.clone(),
        prepare_expiry_ms: config.limits.prepare_expiry_ms,
        decision_memory_ms: config.limits.decision_memory_ms,
        decision_memory_max: config.limits.decision_memory_max,
        gate: ring_mode.then(|| config.ring.gate_settings()),
    }
}

/// Rebuilds the bank from its data directory (blocking: run off the async threads): the
/// writer's connection and state, and each account's newest statement line.
fn recover(
    config: &NodeConfig,
    bank_config: bank_core::bank::BankConfig,
    monitor: Option<RingMonitor>,
) -> Result<(Connection, WriterState, storage::LastEntries), NodeError> {
    let conn = storage::open_writer(&config.data_dir, config.bank_id)?;
    let now = bank_core::bank::Now { wall: now_ms(), tick: monitor.as_ref().map_or(Tick(0), RingMonitor::now) };
    let remembered = storage::Remembered {
        since: storage::transfer_id_at(now.wall.0 - bank_config.decision_memory_ms),
        max: bank_config.decision_memory_max,
    };
    let mut recovered = storage::load_bank(&conn, config.bank_id, remembered)?;
    recovered.ledger.set_idempotency_cache_limit(config.limits.idempotency_cache_max);
    // Statement lines name the counterparty's bank by name (customers' words, issue 12).
    let mut names = vec![(config.bank_id, config.name.clone())];
    if let Some(consortium) = &config.consortium {
        names.extend(consortium.members.values().filter(|m| m.id != config.bank_id).map(|m| (m.id, m.name.clone())));
    }
    recovered.ledger.set_bank_names(names);
    let last_entries = storage::LastEntries::load(&conn)?;
    // The balances needed lines after the checkpoint: make the rows current before serving.
    let mut conn = conn;
    storage::checkpoint_after_recovery(&mut conn, &recovered.ledger, &last_entries)?;
    let bank = bank_core::bank::Bank::recover(bank_config, recovered, now)
        .map_err(|e| std::io::Error::other(format!("token ring: {e}")))?;
    Ok((conn, WriterState::new(bank, monitor), last_entries))
}

/// The sessions still valid, read back so a restart signs no one out — at most
/// `per_account_max` per account, the newest (read oldest first, so the bound ends the oldest,
/// as at sign-in; sessions a crash left unrevoked past the bound are not revived).
async fn live_sessions(reads: &ReadPool, per_account_max: usize) -> Result<SessionCache, NodeError> {
    let sessions = SessionCache::default();
    let live = reads.run(|c| storage::read::live_sessions(c, now_ms())).await?;
    for (hash, account, expires) in live {
        sessions.insert(hash, account, expires, per_account_max);
    }
    Ok(sessions)
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
        let bank_id = config.bank_id;
        let members: BTreeSet<_> = match &interbank {
            Some(ib) => ib.members.keys().copied().collect(),
            None => [bank_id].into_iter().collect(),
        };
        let bank_config = bank_config(&config, &members);
        let metrics = Arc::new(metrics::Metrics::new());
        let monitor =
            bank_config.gate.map(|_| RingMonitor::new(config.ring, metrics.clone()).with_visit_log(&config.data_dir));
        let ring_view = monitor.as_ref().map(RingMonitor::view);
        let recovering = config.clone();
        let (conn, state, last_entries) =
            tokio::task::spawn_blocking(move || recover(&recovering, bank_config, monitor))
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))??;
        let accounts = state.bank.ledger().accounts().count();
        tracing::debug!(in_flight = state.bank.coordinator().in_flight(), "two-phase commit recovered");
        let limits = &config.limits;
        let live = Arc::new(storage::LiveBalances::default());
        let (writer, writer_thread) =
            storage::writer::spawn(conn, state, bank_id, limits, last_entries, live.clone(), metrics.clone())?;
        let peers = interbank.as_ref().map(|ib| ib.peers.clone());
        let ring_tick_ms = ring_view.as_ref().map(|_| config.ring.tick_ms);
        let (driver, driver_task) =
            driver::start(bank_id, writer.clone(), peers, members.into_iter().collect(), ring_tick_ms);
        let reads = ReadPool::new(storage::database_path(&config.data_dir), limits.read_connections_max, live);
        let sessions = live_sessions(&reads, config.limits.sessions_per_account_max).await?;
        let connections = listener::ConnectionPolicy::new(limits, config.consortium.as_ref());
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        tracing::info!(bank_id = %bank_id, name = %config.name, %addr, accounts, data_dir = %config.data_dir.display(), "bank node started");
        if config.seed_compat {
            tracing::warn!("{}", config::SEED_COMPAT_WARNING);
        }
        let state = Arc::new(Bank {
            bank_id,
            bank_name: config.name.clone(),
            public_url: format!("http://{addr}"),
            writer: writer.clone(),
            reads,
            sessions,
            hashers: auth::HasherPool::new(limits.password_hashers, limits.password_queue_len_max)?,
            metrics,
            limits: limits.clone(),
            interbank,
            driver,
            coordination_mode: config.coordination,
            ring: ring_view,
            fault_switch: config.fault_switch,
            seed_compat: config.seed_compat,
        });
        Ok(Node { addr, listener, state, writer, writer_thread, driver: driver_task, lock, connections })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `shutdown` completes, then drains requests, stops every task and thread of
    /// the node (session purge, driver, writer) and releases its port and files.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), NodeError> {
        let Node { listener, state, writer, writer_thread, driver, lock, connections, .. } = self;
        let purge = tokio::spawn(purge_sessions(Arc::downgrade(&state)));
        // `serve` owns the listener and the router: both are dropped (the port freed) when it returns.
        let router = app::router(state.clone());
        listener::serve(listener, router, connections, state.metrics.clone(), shutdown).await;
        tracing::info!("no longer accepting requests; stopping the driver and flushing the ledger");
        purge.abort();
        let _ = purge.await;
        driver.stop().await;
        if Arc::strong_count(&state) > 1 {
            tracing::warn!(holders = Arc::strong_count(&state), "the bank's state outlives its node");
        }
        // Closes the read connections and ends the password hashers.
        drop(state);
        writer.shutdown().await;
        let _ = tokio::task::spawn_blocking(move || writer_thread.join()).await;
        drop(lock);
        tracing::info!("bank node stopped");
        Ok(())
    }
}

/// Drops expired sessions every minute, while the bank exists.
async fn purge_sessions(state: std::sync::Weak<Bank>) {
    let mut every = tokio::time::interval(Duration::from_secs(60));
    loop {
        every.tick().await;
        let Some(state) = state.upgrade() else { return };
        let live = state.sessions.purge_expired(now_ms());
        state.metrics.set_sessions(live);
    }
}
