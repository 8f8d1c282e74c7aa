//! The clients of a torture run: customers with an account at every bank, and workers that keep
//! sending cross-bank Pix, three-bank packets, in-bank transfers, deposits, withdrawals, reads
//! of balances and statements, random Pix key registrations and lookups of registered keys, recording every operation ([`Op`]) in a [`Recorder`].
//!
//! Outcomes: an answer is `ok` or `failed` (an executed transfer or entry), a problem document
//! is `rejected` (the API promises a rejected request changed nothing, so the checker holds the
//! bank to it: a 503 is *not* retried), no answer or a 5xx other than 503 is `unknown`. After the
//! heal, [`resolve`] asks again for every unknown money movement with the *same* idempotency key
//! (the bank answers the first execution's result, or executes it now, once), and follows every
//! pending transfer to its end.

use anyhow::{Context, Result, bail};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use uuid::Uuid;

use bank_client::{Client, ClientOptions, DepositMethod, Destination, NewAccount, NewLeg, NewTransfer, Status};
use bank_core::document::Cpf;

use super::history::{AccountKey, LegSpec, OPS_MAX, Op, OpKind, Outcome, TransferClass, TransferStatus};

/// What each account is funded with at the start.
pub const INITIAL_CENTS: i64 = 100_000;
/// Largest amount one operation moves: small against the funding, so most succeed.
const AMOUNT_MAX_CENTS: i64 = 2_000;
/// A client waits this long for an answer: above the node's own request timeout (10 s), so a
/// bank that is merely slow still answers.
const REQUEST_TIMEOUT_MS: u64 = 12_000;
/// Longest a pending transfer is followed after the heal.
const PENDING_WAIT_MS: u64 = 30_000;
/// The pseudo-code of a request that could not connect (refused, or no answer to the SYN).
pub const NOT_CONNECTED: &str = "not_connected";
/// A worker's pause after an operation without an answer, as a real client would back off
/// (and so that a bank that is down does not fill the history with refusals).
const BACKOFF_MS: u64 = 200;
/// Registered keys kept for lookups; later registrations are not looked up.
const KEYS_KEPT_MAX: usize = 1_000;
/// Attempts of a setup request answered 503.
const SETUP_ATTEMPTS: u32 = 20;

/// One account of a customer, with a session at its bank.
#[derive(Debug, Clone)]
pub struct Account {
    pub key: AccountKey,
    pub client: Client,
}

/// `customers[c][k]`: customer `c`'s account at the `k`-th bank.
#[derive(Debug)]
pub struct Accounts {
    pub customers: Vec<Vec<Account>>,
    /// Keys the clients saw registered, with their owners (at most [`KEYS_KEPT_MAX`]).
    pub keys: Mutex<Vec<(String, AccountKey)>>,
}

/// A money movement that may be asked again with the same idempotency key.
#[derive(Debug, Clone)]
enum Request {
    Transfer(NewTransfer),
    Deposit(i64),
    Withdraw(i64),
}

/// An operation kept for the resolution after the heal.
#[derive(Debug, Clone)]
struct Retry {
    op: usize,
    client: Client,
    request: Request,
    key: Uuid,
}

/// The history, as it is recorded.
#[derive(Debug)]
pub struct Recorder {
    start: Instant,
    ops: Mutex<Vec<Op>>,
    retries: Mutex<Vec<Retry>>,
}

impl Recorder {
    pub fn new(start: Instant) -> Recorder {
        Recorder { start, ops: Mutex::new(Vec::new()), retries: Mutex::new(Vec::new()) }
    }

    pub fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// Records an operation; returns its index, or `None` when the history is full.
    fn record(&self, worker: usize, kind: OpKind, invoked_ms: u64, outcome: Outcome) -> Option<usize> {
        let mut ops = self.ops.lock().unwrap_or_else(|e| e.into_inner());
        if ops.len() >= OPS_MAX {
            return None;
        }
        let index = ops.len();
        let completed_ms = self.now_ms();
        ops.push(Op { index, worker, kind, invoked_ms, completed_ms, outcome, resolved: None });
        Some(index)
    }

    fn keep_for_resolution(&self, retry: Retry) {
        self.retries.lock().unwrap_or_else(|e| e.into_inner()).push(retry);
    }

    /// The history so far.
    pub fn ops(&self) -> Vec<Op> {
        self.ops.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set_resolved(&self, op: usize, outcome: Outcome) {
        if let Some(slot) = self.ops.lock().unwrap_or_else(|e| e.into_inner()).get_mut(op) {
            slot.resolved = Some(outcome);
        }
    }
}

/// The HTTP client every torture client shares.
pub fn http() -> Result<reqwest::Client> {
    let options =
        ClientOptions { connect_timeout_ms: 1_000, request_timeout_ms: REQUEST_TIMEOUT_MS, ..Default::default() };
    Ok(options.build_http()?)
}

fn transfer_status(status: Status) -> TransferStatus {
    match status {
        Status::Completed => TransferStatus::Completed,
        Status::Failed => TransferStatus::Failed,
        Status::Pending => TransferStatus::Pending,
    }
}

/// What an error tells the client: a problem is a rejection (nothing changed), except a 500,
/// which says nothing; no answer is unknown.
fn error_outcome(e: &bank_client::Error) -> Outcome {
    match e {
        bank_client::Error::Api { status, code, .. } if *status != 500 => Outcome::Rejected { code: code.clone() },
        // No connection was made, so no request was sent: certainly nothing happened.
        bank_client::Error::Transport(t) if t.is_connect() => Outcome::Rejected { code: NOT_CONNECTED.into() },
        other => Outcome::Unknown { reason: cause(other) },
    }
}

/// The code of an error and its innermost cause (`transport: connection refused`).
fn cause(error: &bank_client::Error) -> String {
    let mut inner = String::new();
    let mut source = std::error::Error::source(error);
    while let Some(s) = source {
        inner = s.to_string();
        source = s.source();
    }
    if inner.is_empty() { error.code().to_string() } else { format!("{}: {inner}", error.code()) }
}

fn transfer_outcome(result: &Result<bank_client::Transfer, bank_client::Error>) -> Outcome {
    match result {
        Ok(t) => Outcome::Transfer {
            id: t.id.to_string(),
            status: transfer_status(t.status),
            failure: t.failure.as_ref().map(|f| f.code.clone()),
        },
        Err(e) => error_outcome(e),
    }
}

fn entry_outcome(result: &Result<bank_client::Entry, bank_client::Error>) -> Outcome {
    match result {
        Ok(e) if e.status == Status::Pending => Outcome::Unknown { reason: "pending entry".into() },
        Ok(e) => Outcome::Entry { completed: e.status == Status::Completed },
        Err(e) => error_outcome(e),
    }
}

/// Sends a money movement once.
async fn send(client: &Client, request: &Request, key: Uuid) -> Outcome {
    match request {
        Request::Transfer(t) => transfer_outcome(&client.transfer_with_key(t, key).await),
        Request::Deposit(cents) => entry_outcome(&client.deposit_with_key(*cents, DepositMethod::Cash, key).await),
        Request::Withdraw(cents) => entry_outcome(&client.withdraw_with_key(*cents, key).await),
    }
}

/// Repeats `call` while the bank answers 503 or cannot be reached (setup only: nothing is
/// recorded).
async fn setup_call<T, F, Fut>(what: &str, mut call: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, bank_client::Error>>,
{
    let mut last = None;
    for attempt in 0..SETUP_ATTEMPTS {
        match call().await {
            Ok(value) => return Ok(value),
            Err(e) if e.is_retryable() => last = Some(e),
            Err(e) => return Err(e).with_context(|| what.to_string()),
        }
        tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt + 1))).await;
    }
    match last {
        Some(e) => Err(e).with_context(|| format!("{what}: still failing after {SETUP_ATTEMPTS} attempts")),
        None => bail!("{what}: no attempt"),
    }
}

/// Opens customer `c`'s account at every bank (`urls`: bank id → URL), signs in, and deposits
/// [`INITIAL_CENTS`] into each, recording the deposits.
pub async fn setup(
    http: &reqwest::Client,
    urls: &[(u32, String)],
    customers: usize,
    recorder: &Recorder,
) -> Result<Accounts> {
    let tag = format!("{:08x}", rand::random::<u32>());
    let first_cpf = rand::rng().random_range(1..900_000_000u64);
    let mut all = Vec::with_capacity(customers);
    for c in 0..customers {
        let cpf = Cpf::from_base(first_cpf + c as u64 * 7);
        let email = format!("torture-{tag}-{c}@torture.example");
        let password = format!("Torture-{tag}-pass-{c}");
        let mut accounts = Vec::with_capacity(urls.len());
        for (bank, url) in urls {
            let base = Client::with_http(url, http.clone())?;
            let request = NewAccount {
                kind: bank_client::AccountKind::Individual,
                holders: vec![bank_client::Holder {
                    name: format!("Torture {tag} {c}"),
                    document: cpf.as_str().into(),
                }],
                email: email.clone(),
                phone: format!("+55759{:08}", c),
                password: password.clone(),
            };
            let opened = setup_call("opening an account", || base.open_account(&request)).await?;
            let session = setup_call("signing in", || base.login(&email, &password)).await?;
            let client = base.with_token(session.token);
            let key = Uuid::new_v4();
            let invoked = recorder.now_ms();
            let entry =
                setup_call("the first deposit", || client.deposit_with_key(INITIAL_CENTS, DepositMethod::Cash, key))
                    .await;
            let account = (*bank, opened.number.clone());
            let kind = OpKind::Deposit { account: account.clone(), cents: INITIAL_CENTS };
            let outcome = match &entry {
                Ok(e) => entry_outcome(&Ok(e.clone())),
                Err(e) => Outcome::Unknown { reason: format!("{e:#}") },
            };
            recorder.record(usize::MAX, kind, invoked, outcome);
            entry?;
            accounts.push(Account { key: account, client });
        }
        all.push(accounts);
    }
    Ok(Accounts { customers: all, keys: Mutex::new(Vec::new()) })
}

/// One drawn operation: what to record, and how to run it.
enum Drawn {
    Money { kind: OpKind, client: Client, request: Request },
    Read { kind: OpKind, client: Client },
    RegisterKey { kind: OpKind, client: Client },
    LookupKey { kind: OpKind, client: Client },
}

fn amount(rng: &mut StdRng) -> i64 {
    rng.random_range(1..=AMOUNT_MAX_CENTS)
}

fn to_account(account: &Account) -> Destination {
    Destination::Account(bank_client::AccountRef { bank_id: account.key.0, number: account.key.1.clone() })
}

/// A packet signed in at bank index `at`: legs from the customer's accounts at `at` and two other
/// banks, each to another customer's account at a random bank.
fn packet(rng: &mut StdRng, accounts: &Accounts, c: usize, at: usize) -> Drawn {
    let banks = accounts.customers[c].len();
    let mut sources = vec![at];
    while sources.len() < 3.min(banks) {
        let s = rng.random_range(0..banks);
        if !sources.contains(&s) {
            sources.push(s);
        }
    }
    let mut legs = Vec::new();
    let mut specs = Vec::new();
    for source in sources {
        let other = (c + rng.random_range(1..accounts.customers.len())) % accounts.customers.len();
        let to = &accounts.customers[other][rng.random_range(0..banks)];
        let from = &accounts.customers[c][source];
        let cents = amount(rng);
        let from_ref =
            (source != at).then(|| bank_client::AccountRef { bank_id: from.key.0, number: from.key.1.clone() });
        legs.push(NewLeg { from: from_ref, to: to_account(to), amount_cents: cents });
        specs.push(LegSpec { from: from.key.clone(), to: to.key.clone(), cents });
    }
    let me = &accounts.customers[c][at];
    let kind = OpKind::Transfer { class: TransferClass::Packet, coordinator: me.key.0, legs: specs };
    Drawn::Money {
        kind,
        client: me.client.clone(),
        request: Request::Transfer(NewTransfer { legs, description: None }),
    }
}

/// Draws the next operation of a worker whose home is the bank at index `home`.
fn draw(rng: &mut StdRng, accounts: &Accounts, home: usize) -> Drawn {
    let customers = accounts.customers.len();
    let banks = accounts.customers[0].len();
    let c = rng.random_range(0..customers);
    let me = &accounts.customers[c][home];
    let one_leg = |class, to: &Account, cents| {
        let spec = LegSpec { from: me.key.clone(), to: to.key.clone(), cents };
        let kind = OpKind::Transfer { class, coordinator: me.key.0, legs: vec![spec] };
        let request = Request::Transfer(NewTransfer::single(to_account(to), cents, None));
        Drawn::Money { kind, client: me.client.clone(), request }
    };
    match rng.random_range(0..100) {
        0..25 if banks > 1 => {
            let other_bank = (home + rng.random_range(1..banks)) % banks;
            let to = &accounts.customers[rng.random_range(0..customers)][other_bank];
            one_leg(TransferClass::Pix, to, amount(rng))
        }
        25..40 if customers > 1 => {
            let to = &accounts.customers[(c + rng.random_range(1..customers)) % customers][home];
            one_leg(TransferClass::InBank, to, amount(rng))
        }
        40..50 if banks >= 3 && customers > 1 => packet(rng, accounts, c, home),
        50..60 => {
            let cents = amount(rng);
            let kind = OpKind::Deposit { account: me.key.clone(), cents };
            Drawn::Money { kind, client: me.client.clone(), request: Request::Deposit(cents) }
        }
        60..70 => {
            let cents = amount(rng);
            let kind = OpKind::Withdraw { account: me.key.clone(), cents };
            Drawn::Money { kind, client: me.client.clone(), request: Request::Withdraw(cents) }
        }
        70..85 => Drawn::Read { kind: OpKind::ReadBalance { account: me.key.clone() }, client: me.client.clone() },
        85..93 => Drawn::Read { kind: OpKind::Statement { account: me.key.clone() }, client: me.client.clone() },
        93..96 => {
            Drawn::RegisterKey { kind: OpKind::RegisterKey { account: me.key.clone() }, client: me.client.clone() }
        }
        96..100 => match lookup(rng, accounts, me) {
            Some(drawn) => drawn,
            None => Drawn::Read { kind: OpKind::ReadBalance { account: me.key.clone() }, client: me.client.clone() },
        },
        _ => Drawn::Read { kind: OpKind::Statement { account: me.key.clone() }, client: me.client.clone() },
    }
}

async fn read(client: &Client, kind: &OpKind) -> Outcome {
    match kind {
        OpKind::ReadBalance { .. } => match client.me().await {
            Ok(a) => Outcome::Balance {
                posted: a.balance.posted_cents,
                held: a.balance.held_cents,
                available: a.balance.available_cents,
            },
            Err(e) => error_outcome(&e),
        },
        _ => match client.statement(Some(20), None).await {
            Ok(s) => Outcome::Statement { entries: s.entries.len() },
            Err(e) => error_outcome(&e),
        },
    }
}

/// A lookup, at `me`'s bank, of a key registered earlier (none before the first registration).
fn lookup(rng: &mut StdRng, accounts: &Accounts, me: &Account) -> Option<Drawn> {
    let keys = accounts.keys.lock().unwrap_or_else(|e| e.into_inner());
    if keys.is_empty() {
        return None;
    }
    let (key, owner) = keys[rng.random_range(0..keys.len())].clone();
    let kind = OpKind::LookupKey { at: me.key.0, key, owner };
    Some(Drawn::LookupKey { kind, client: me.client.clone() })
}

async fn register_key(client: &Client, accounts: &Accounts, kind: &OpKind) -> Outcome {
    let OpKind::RegisterKey { account } = kind else { return Outcome::Unknown { reason: "not a key".into() } };
    match client.create_pix_key(bank_client::NewPixKeyType::Random).await {
        Ok(key) => {
            let mut keys = accounts.keys.lock().unwrap_or_else(|e| e.into_inner());
            if keys.len() < KEYS_KEPT_MAX {
                keys.push((key.key.clone(), account.clone()));
            }
            Outcome::Key { key: key.key }
        }
        Err(e) => error_outcome(&e),
    }
}

async fn lookup_key(client: &Client, kind: &OpKind) -> Outcome {
    let OpKind::LookupKey { key, .. } = kind else { return Outcome::Unknown { reason: "not a lookup".into() } };
    match client.lookup_pix_key(key).await {
        Ok(info) => Outcome::KeyOwner { bank: info.bank_id },
        Err(e) => error_outcome(&e),
    }
}

/// One client: runs operations one after the other until `stop`.
pub async fn worker(
    id: usize,
    home: usize,
    seed: u64,
    accounts: Arc<Accounts>,
    recorder: Arc<Recorder>,
    stop: Arc<AtomicBool>,
) {
    let mut rng = StdRng::seed_from_u64(seed ^ (id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    while !stop.load(Ordering::Relaxed) {
        let invoked = recorder.now_ms();
        let recorded = match draw(&mut rng, &accounts, home) {
            Drawn::Money { kind, client, request } => {
                let key = Uuid::new_v4();
                let outcome = send(&client, &request, key).await;
                let unsettled = matches!(
                    outcome,
                    Outcome::Unknown { .. } | Outcome::Transfer { status: TransferStatus::Pending, .. }
                );
                let index = recorder.record(id, kind, invoked, outcome);
                if let (Some(op), true) = (index, unsettled) {
                    recorder.keep_for_resolution(Retry { op, client, request, key });
                }
                index
            }
            Drawn::Read { kind, client } => {
                let outcome = read(&client, &kind).await;
                recorder.record(id, kind, invoked, outcome)
            }
            Drawn::RegisterKey { kind, client } => {
                let outcome = register_key(&client, &accounts, &kind).await;
                recorder.record(id, kind, invoked, outcome)
            }
            Drawn::LookupKey { kind, client } => {
                let outcome = lookup_key(&client, &kind).await;
                recorder.record(id, kind, invoked, outcome)
            }
        };
        let Some(index) = recorded else { return };
        let backoff = recorder.ops.lock().unwrap_or_else(|e| e.into_inner()).get(index).is_some_and(|op| {
            matches!(&op.outcome, Outcome::Unknown { .. })
                || matches!(&op.outcome, Outcome::Rejected { code } if code == NOT_CONNECTED)
        });
        if backoff {
            tokio::time::sleep(Duration::from_millis(BACKOFF_MS)).await;
        }
    }
}

/// Attempts of one resolution while the bank does not answer or answers 503.
const RESOLVE_ATTEMPTS: u32 = 5;
/// Operations settled at once.
const RESOLVE_CONCURRENCY: usize = 16;

/// A 503: the bank was not ready, so the question is still open.
fn is_unavailable(outcome: &Outcome) -> bool {
    matches!(outcome, Outcome::Rejected { code } if code == "overloaded" || code == "bank_unavailable" || code == NOT_CONNECTED)
}

/// Follows a pending transfer until it ends or [`PENDING_WAIT_MS`] passes.
async fn follow(client: &Client, id: &str) -> Option<Outcome> {
    let uuid = Uuid::parse_str(id).ok()?;
    let deadline = Instant::now() + Duration::from_millis(PENDING_WAIT_MS);
    while Instant::now() < deadline {
        if let Ok(t) = client.get_transfer(uuid).await
            && t.status != Status::Pending
        {
            return Some(transfer_outcome(&Ok(t)));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    None
}

/// After the heal: settles every unknown or pending money movement (see the module doc),
/// [`RESOLVE_CONCURRENCY`] at a time, for at most `limit`. Returns how many stayed unresolved.
pub async fn resolve(recorder: &Recorder, limit: Duration) -> usize {
    use futures::StreamExt;
    let retries = recorder.retries.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let ops = recorder.ops();
    let total = retries.len();
    let all = futures::stream::iter(retries)
        .map(|retry| {
            let first = ops[retry.op].outcome.clone();
            async move { recorder.set_resolved(retry.op, settle(&retry, first).await) }
        })
        .buffer_unordered(RESOLVE_CONCURRENCY)
        .collect::<Vec<()>>();
    if tokio::time::timeout(limit, all).await.is_err() {
        println!("settling stopped after {} s", limit.as_secs());
    }
    let ops = recorder.ops();
    let open =
        |o: &Outcome| matches!(o, Outcome::Unknown { .. } | Outcome::Transfer { status: TransferStatus::Pending, .. });
    let unresolved = ops.iter().filter(|op| op.kind.moves_money() && open(op.effective())).count();
    println!("{total} unknown or pending money movements asked again; {unresolved} still unknown");
    unresolved
}

/// Settles one operation whose first outcome was `outcome`.
async fn settle(retry: &Retry, mut outcome: Outcome) -> Outcome {
    let mut attempts = 0;
    while matches!(outcome, Outcome::Unknown { .. }) || attempts > 0 && is_unavailable(&outcome) {
        if attempts == RESOLVE_ATTEMPTS {
            return Outcome::Unknown { reason: "no answer after the heal".into() };
        }
        attempts += 1;
        outcome = send(&retry.client, &retry.request, retry.key).await;
        if !matches!(outcome, Outcome::Unknown { .. }) && !is_unavailable(&outcome) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    if let Outcome::Transfer { id, status: TransferStatus::Pending, .. } = &outcome
        && let Some(done) = follow(&retry.client, id).await
    {
        outcome = done;
    }
    outcome
}
