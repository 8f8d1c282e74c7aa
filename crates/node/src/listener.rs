//! The node's accept loop: every connection the bank serves passes through here.
//!
//! A connection that never finished its request head used to be held forever: two clients with
//! ~10,000 of them each exhausted the process's file descriptors, and the bank stopped answering
//! customers and peers (issue 16). This loop bounds what one connection and one client can hold:
//!
//! - **Header-read timeout** (`Limits::header_read_timeout_ms`, enforced by hyper): a request head
//!   not complete in time closes the connection. Hyper starts this clock whenever it waits for a
//!   head — at the accept and, on a keep-alive connection, at the end of each answer — so it is
//!   also the bound on an idle keep-alive connection (and such closes count as header-read
//!   timeouts in the metrics).
//! - **Idle timeout** (`Limits::idle_timeout_ms`): a connection on which no byte was read or
//!   written for that long is closed whatever it is doing: a request body that stopped coming, a
//!   client that stopped reading its answer.
//! - **Connection caps**: `Limits::connections_max` on the listener (a semaphore, lowered at start
//!   to what the open-file limit leaves room for) and `Limits::connections_per_address_max` per
//!   client IP address (a map of counts with one entry per address that has an open connection,
//!   so never more entries than the listener cap; an entry goes at zero).
//!
//! Over a cap, a connection is accepted and closed at once rather than left in the kernel's
//! backlog: that costs one accept, frees the descriptor immediately and tells the client at once,
//! and the loop keeps draining the backlog, so a customer's or a peer's connection gets in as soon
//! as a slot frees instead of waiting behind the attacker's connections in a full backlog (which
//! is what a loop that stopped accepting would do).
//!
//! **Who is exempt from the per-address cap**: the consortium members' IP addresses, as written in
//! their URLs (IP literals and `localhost`; other host names are not resolved). A peer's pool
//! opens one connection per concurrent inter-bank request, and on one machine every peer — and
//! every other local client — comes from 127.0.0.1, so a one-machine consortium puts loopback out
//! of the per-address cap; the listener cap and the timeouts still hold. A lone bank caps
//! loopback like any address: the default (256) leaves room for `bank bench --concurrency 64`.
//! Members also have 64 connections of their own beyond a full listener: attackers from more
//! addresses than `connections_max / connections_per_address_max` fill the listener (customers
//! then get in only as the timeouts free slots), and the bank must stay reachable by its peers.
//! Behind a reverse proxy every client has the proxy's address: raise the cap there.
//!
//! Accept errors other than a connection reset before it was taken (out of descriptors: EMFILE,
//! ENFILE; out of buffers) are logged and the loop backs off briefly instead of spinning on a
//! backlog it cannot take.
//!
//! Shutdown is what `axum::serve` did: stop accepting, release the port, ask every connection to
//! finish its in-flight request and close (hyper's graceful shutdown), and wait for them all.
//! HTTP/1 only, as before: hyper-util's `auto` builder supports graceful shutdown only with its
//! `server-auto` feature, which would also turn HTTP/2 on.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::config::Limits;
use crate::consortium::Consortium;
use crate::metrics::{ConnectionTimeout, Metrics, RefusedReason};

/// Pause after a failed accept (out of descriptors): long enough not to spin, short enough that
/// the bank takes connections again soon after descriptors free up.
const ACCEPT_BACKOFF_MS: u64 = 100;

/// Connections kept for the consortium members' addresses beyond `connections_max`: when
/// attackers from many addresses fill the listener, peers still get in (a peer keeps about one
/// connection per concurrent inter-bank request).
const MEMBER_CONNECTIONS_RESERVED: usize = 64;

/// Descriptors kept out of `connections_max` for the members' reserve and everything else the
/// node opens: the SQLite files and read connections, connections to peers, logs.
const FD_RESERVE: usize = 256 + MEMBER_CONNECTIONS_RESERVED;

/// The connection limits of one listener, resolved from [`Limits`] and the consortium.
#[derive(Debug, Clone)]
pub struct ConnectionPolicy {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub connections_max: usize,
    pub connections_per_address_max: usize,
    /// The consortium members' addresses: outside the per-address cap, and with
    /// [`MEMBER_CONNECTIONS_RESERVED`] connections past a full listener.
    pub exempt: BTreeSet<IpAddr>,
}

impl ConnectionPolicy {
    pub fn new(limits: &Limits, consortium: Option<&Consortium>) -> ConnectionPolicy {
        ConnectionPolicy {
            header_read_timeout: Duration::from_millis(limits.header_read_timeout_ms),
            idle_timeout: Duration::from_millis(limits.idle_timeout_ms),
            connections_max: within_open_files_limit(limits.connections_max, open_files_soft_limit()),
            connections_per_address_max: limits.connections_per_address_max,
            exempt: consortium.map(member_addresses).unwrap_or_default(),
        }
    }
}

/// The members' IP addresses, read from their URLs.
fn member_addresses(consortium: &Consortium) -> BTreeSet<IpAddr> {
    let mut addresses = BTreeSet::new();
    for member in consortium.members.values() {
        let url = reqwest::Url::parse(&member.url).ok();
        // An IPv6 host is written in brackets in a URL.
        let host = url.as_ref().and_then(|u| u.host_str()).map(|h| h.trim_start_matches('[').trim_end_matches(']'));
        match host {
            Some(host) if host.eq_ignore_ascii_case("localhost") => {
                addresses.extend([IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V6(Ipv6Addr::LOCALHOST)]);
            }
            Some(host) => match host.parse::<IpAddr>() {
                Ok(ip) => {
                    addresses.insert(ip.to_canonical());
                }
                Err(_) => {
                    tracing::debug!(url = %member.url, "member host not an address: not exempt from the per-address cap")
                }
            },
            None => {}
        }
    }
    addresses
}

/// The soft limit on this process's open files, where the system tells it (Linux).
fn open_files_soft_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    // "Max open files  <soft>  <hard>  files"; "unlimited" does not parse and means no bound.
    line.split_whitespace().nth(3)?.parse().ok()
}

/// The listener cap, lowered so that a full listener still leaves the node [`FD_RESERVE`]
/// descriptors: a cap above the open-file limit would let connections exhaust it again.
fn within_open_files_limit(connections_max: usize, soft_limit: Option<usize>) -> usize {
    match soft_limit {
        Some(files) if connections_max.saturating_add(FD_RESERVE) > files => {
            let lowered = files.saturating_sub(FD_RESERVE).max(1);
            tracing::warn!(
                connections_max,
                open_files_limit = files,
                lowered,
                "the connection cap does not fit the open-file limit: lowered (raise `ulimit -n` to keep it)"
            );
            lowered
        }
        _ => connections_max,
    }
}

/// Open connections per client address; an address has an entry only while it has one.
#[derive(Debug, Default)]
struct AddressCounts(Mutex<HashMap<IpAddr, usize>>);

impl AddressCounts {
    /// Counts one more connection from `address`, unless it already has `max`.
    fn try_take(&self, address: IpAddr, max: usize) -> bool {
        let mut counts = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let open = counts.get(&address).copied().unwrap_or(0);
        if open >= max {
            return false;
        }
        counts.insert(address, open + 1);
        true
    }

    fn give_back(&self, address: IpAddr) {
        let mut counts = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(open) = counts.get_mut(&address) {
            *open -= 1;
            if *open == 0 {
                counts.remove(&address);
            }
        }
    }

    fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

/// An admitted connection's place under both caps, given back when the connection ends.
#[derive(Debug)]
struct Slot {
    _permit: OwnedSemaphorePermit,
    /// `None` for an exempt address.
    address: Option<IpAddr>,
    counts: Arc<AddressCounts>,
    metrics: Arc<Metrics>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(address) = self.address {
            self.counts.give_back(address);
        }
        self.metrics.connection_closed();
    }
}

/// Admission to the listener: both caps.
#[derive(Debug)]
struct Gate {
    policy: ConnectionPolicy,
    permits: Arc<Semaphore>,
    /// [`MEMBER_CONNECTIONS_RESERVED`], for members once `permits` are all taken.
    member_permits: Arc<Semaphore>,
    counts: Arc<AddressCounts>,
    metrics: Arc<Metrics>,
}

impl Gate {
    fn new(policy: ConnectionPolicy, metrics: Arc<Metrics>) -> Gate {
        let permits = Arc::new(Semaphore::new(policy.connections_max));
        let member_permits = Arc::new(Semaphore::new(MEMBER_CONNECTIONS_RESERVED));
        Gate { policy, permits, member_permits, counts: Arc::default(), metrics }
    }

    fn admit(&self, peer: SocketAddr) -> Result<Slot, RefusedReason> {
        // An IPv4 client on a dual-stack socket is the same client as its plain IPv4 address.
        let ip = peer.ip().to_canonical();
        let member = self.policy.exempt.contains(&ip);
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) if member => {
                self.member_permits.clone().try_acquire_owned().map_err(|_| RefusedReason::ListenerFull)?
            }
            Err(_) => return Err(RefusedReason::ListenerFull),
        };
        let address = if member {
            None
        } else if self.counts.try_take(ip, self.policy.connections_per_address_max) {
            Some(ip)
        } else {
            return Err(RefusedReason::AddressFull);
        };
        self.metrics.connection_opened();
        Ok(Slot { _permit: permit, address, counts: self.counts.clone(), metrics: self.metrics.clone() })
    }
}

/// Serves `router` on `listener` under `policy` until `shutdown` completes, then stops accepting,
/// drops the listener (freeing the port) and waits for every connection to finish its request.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    policy: ConnectionPolicy,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) {
    let gate = Gate::new(policy, metrics);
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(gate.policy.header_read_timeout);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => match gate.admit(peer) {
                Ok(slot) => spawn_connection(stream, slot, &http, &router, &graceful, gate.policy.idle_timeout),
                Err(reason) => {
                    tracing::debug!(%peer, ?reason, addresses = gate.counts.len(), "connection refused");
                    gate.metrics.connection_refused(reason);
                    drop(stream);
                }
            },
            Err(e) if is_connection_error(&e) => {}
            Err(e) => {
                gate.metrics.accept_failed();
                tracing::warn!(error = %e, backoff_ms = ACCEPT_BACKOFF_MS, "accept failed; backing off");
                tokio::select! {
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(Duration::from_millis(ACCEPT_BACKOFF_MS)) => {}
                }
            }
        }
    }
    drop(listener);
    graceful.shutdown().await;
}

/// A connection that failed before it was taken: nothing to back off from.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

/// Serves one admitted connection in its own task, holding its slot until it ends.
fn spawn_connection(
    stream: TcpStream,
    slot: Slot,
    http: &http1::Builder,
    router: &axum::Router,
    graceful: &GracefulShutdown,
    idle_timeout: Duration,
) {
    let activity = Arc::new(Activity::new());
    // The client's address reaches handlers as axum's `ConnectInfo` (sign-in throttling).
    let client = stream.peer_addr().ok();
    let with_client =
        tower::util::MapRequest::new(router.clone(), move |mut request: hyper::Request<hyper::body::Incoming>| {
            if let Some(addr) = client {
                request.extensions_mut().insert(axum::extract::ConnectInfo(addr));
            }
            request
        });
    let io = TokioIo::new(Tracked { stream, activity: activity.clone() });
    let connection = graceful.watch(http.serve_connection(io, TowerToHyperService::new(with_client)));
    tokio::spawn(async move {
        let timed_out = tokio::select! {
            ended = connection => match ended {
                Ok(()) => None,
                Err(e) if e.is_timeout() => Some(ConnectionTimeout::HeaderRead),
                Err(e) => {
                    tracing::trace!(error = %e, "connection ended with an error");
                    None
                }
            },
            () = until_idle(&activity, idle_timeout) => Some(ConnectionTimeout::Idle),
        };
        if let Some(timeout) = timed_out {
            tracing::debug!(?timeout, "connection closed by a timeout");
            slot.metrics.connection_timed_out(timeout);
        }
        drop(slot);
    });
}

/// Completes once no byte has moved on the connection for `idle_timeout`.
async fn until_idle(activity: &Activity, idle_timeout: Duration) {
    loop {
        let deadline = activity.last() + idle_timeout;
        if Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep_until(deadline).await;
    }
}

/// When a connection last read or wrote a byte.
#[derive(Debug)]
struct Activity {
    opened: Instant,
    /// Milliseconds from `opened` to the last byte moved.
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity { opened: Instant::now(), last_ms: AtomicU64::new(0) }
    }

    fn touch(&self) {
        let elapsed_ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(elapsed_ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.opened + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

/// A TCP stream that records in [`Activity`] every read or write that moved bytes.
#[derive(Debug)]
struct Tracked {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_entry_is_removed_when_its_last_connection_ends() {
        let counts = AddressCounts::default();
        let ip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7));
        assert!(counts.try_take(ip, 2));
        assert!(counts.try_take(ip, 2));
        assert!(!counts.try_take(ip, 2), "a third connection is over the cap of 2");
        counts.give_back(ip);
        assert!(counts.try_take(ip, 2), "a freed slot is taken again");
        counts.give_back(ip);
        counts.give_back(ip);
        assert_eq!(counts.len(), 0, "no entry is kept for an address without connections");
    }

    #[test]
    fn the_connection_cap_is_lowered_to_leave_descriptors_for_the_node() {
        assert_eq!(within_open_files_limit(4096, Some(1024)), 1024 - FD_RESERVE);
        assert_eq!(within_open_files_limit(4096, Some(20_000)), 4096);
        assert_eq!(within_open_files_limit(4096, None), 4096);
        assert_eq!(within_open_files_limit(4096, Some(10)), 1, "never a listener that takes nothing");
    }

    #[test]
    fn members_get_in_beyond_a_full_listener_up_to_their_reserve() {
        let limits = Limits { connections_max: 1, ..Limits::default() };
        let member: SocketAddr = "10.0.0.9:1000".parse().expect("addr");
        let mut policy = ConnectionPolicy::new(&limits, None);
        policy.exempt.insert(member.ip());
        let gate = Gate::new(policy, Arc::new(Metrics::new()));
        let _attacker = gate.admit("10.0.0.1:1000".parse().expect("addr")).expect("the first connection is admitted");
        let members: Vec<_> = (0..MEMBER_CONNECTIONS_RESERVED).map(|_| gate.admit(member)).collect();
        assert!(members.iter().all(Result::is_ok), "the members' reserve admits them past the full listener");
        assert_eq!(gate.admit(member).err(), Some(RefusedReason::ListenerFull), "the reserve is bounded too");
        assert_eq!(gate.admit("10.0.0.2:1000".parse().expect("addr")).err(), Some(RefusedReason::ListenerFull));
    }

    #[test]
    fn a_full_listener_refuses_before_counting_the_address() {
        let limits = Limits { connections_max: 1, connections_per_address_max: 1, ..Limits::default() };
        let gate = Gate::new(ConnectionPolicy::new(&limits, None), Arc::new(Metrics::new()));
        let first: SocketAddr = "10.0.0.1:1000".parse().expect("addr");
        let other: SocketAddr = "10.0.0.2:1000".parse().expect("addr");
        let held = gate.admit(first).expect("the first connection is admitted");
        assert_eq!(gate.admit(other).err(), Some(RefusedReason::ListenerFull));
        assert_eq!(gate.counts.len(), 1, "the refused address left no entry");
        drop(held);
        assert_eq!(gate.counts.len(), 0);
        assert!(gate.admit(other).is_ok(), "a freed slot admits the next client");
    }
}
