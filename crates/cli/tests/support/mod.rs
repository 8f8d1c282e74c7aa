//! Support for the cluster tests: a consortium of real `bank node` processes on 127.0.0.1, its
//! customers (one CPF, an account at several banks, a session at each), the book of what every
//! account must hold, and the consortium-wide invariant checks of DESIGN.md §8.
//!
//! Keys and `DATA/consortium.toml` are made with the same helpers `bank up` uses (each bank on a
//! port of its own, picked free), then every bank is started by hand as
//! `bank node --id N --config DATA/consortium.toml --signing-key DATA/keys/bank-N.key --data
//! DATA/bank-N` (the command `bank up` prints), so a test can give one process a failpoint
//! (`BANK_FAILPOINT`), kill it, freeze it, and restart it on the same data directory. Each bank's
//! output goes to `DATA/bank-N/node.log`; when a test fails, the end of every log is printed.
//! Dropping the [`Cluster`] SIGKILLs every bank it started, so a failing test leaves no process.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write as _;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use bank_cli::up::Layout;
use bank_core::ids::BankId;
use bank_node::consortium::{
    ConsortiumConfig, Member, NodeSettings, SigningKey, generate_signing_key, write_key_files,
};
use bank_node::interbank::audit::AUDIT_PATH;
use bank_node::interbank::sign::{OPERATOR, fresh_nonce, sign, unix_now_ms};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

/// How long anything may take to converge (a settled hold, a restarted bank, a re-sent decision)
/// on a busy two-core machine.
pub const SETTLE: Duration = Duration::from_secs(20);
/// How long a bank may take to answer `/healthz` after it was started.
const START: Duration = Duration::from_secs(30);
/// Poll period while waiting for convergence.
const POLL: Duration = Duration::from_millis(100);
/// Lines of each bank's log printed when a test fails.
const LOG_TAIL_LINES: usize = 60;
const PASSWORD: &str = "password123";

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_bank"))
}

/// `n` distinct ports free right now (all bound at once, so they differ, then released).
fn free_ports(n: u32) -> Vec<u16> {
    let listeners: Vec<std::net::TcpListener> =
        (0..n).map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port")).collect();
    listeners.iter().map(|l| l.local_addr().expect("addr").port()).collect()
}

/// Whether this `bank` has the `audit` subcommand (another engineer is adding it): checked once,
/// from `bank --help`.
pub fn cli_has_audit() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        let out = Command::new(bin()).arg("--help").output().expect("run bank --help");
        String::from_utf8_lossy(&out.stdout).lines().any(|l| l.trim_start().starts_with("audit "))
    })
}

/// One account of a customer, with the customer's session at that account's bank.
#[derive(Debug, Clone)]
pub struct Account {
    pub bank: u32,
    pub number: String,
    pub token: String,
    /// The customer's CPF base (who owns it).
    pub owner: u64,
}

impl Account {
    /// The account as a transfer names it.
    pub fn at(&self) -> Value {
        json!({ "bank_id": self.bank, "number": self.number })
    }

    pub fn key(&self) -> (u32, String) {
        (self.bank, self.number.clone())
    }
}

/// A person (one CPF) with an individual account at several banks.
#[derive(Debug, Clone)]
pub struct Customer {
    pub cpf: u64,
    pub name: String,
    pub accounts: BTreeMap<u32, Account>,
}

impl Customer {
    /// The account at `bank` (and the session there).
    #[track_caller]
    pub fn at(&self, bank: u32) -> &Account {
        self.accounts.get(&bank).unwrap_or_else(|| panic!("{} has no account at bank {bank}", self.name))
    }
}

/// A leg moving `cents` from `from` to `to`.
pub fn leg(from: &Account, to: &Account, cents: i64) -> Value {
    json!({ "from": from.at(), "to": to.at(), "amount_cents": cents })
}

/// A transfer request as a customer sends it: at the bank of `session`, under its own
/// Idempotency-Key (so it can be asked again after a crash).
#[derive(Debug, Clone)]
pub struct Request {
    pub session: Account,
    pub key: String,
    pub legs: Vec<Value>,
}

impl Request {
    pub fn new(session: &Account, legs: Vec<Value>) -> Request {
        Request { session: session.clone(), key: uuid::Uuid::new_v4().to_string(), legs }
    }
}

/// The `status` of a transfer answer.
pub fn status(transfer: &Value) -> &str {
    transfer["status"].as_str().unwrap_or("<no status>")
}

/// The `failure.code` of a transfer answer.
pub fn failure_code(transfer: &Value) -> &str {
    transfer["failure"]["code"].as_str().unwrap_or("<no failure code>")
}

/// An account's balances as `GET /api/v1/me` shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Balance {
    pub posted: i64,
    pub held: i64,
    pub available: i64,
}

/// A settled balance: `posted`, nothing held.
pub fn settled(posted: i64) -> Balance {
    Balance { posted, held: 0, available: posted }
}

/// What every account must hold: deposits in, completed transfers moved (each all legs or none).
#[derive(Debug, Default, Clone)]
pub struct Book {
    accounts: BTreeMap<(u32, String), (Account, i64)>,
    pub deposits: i64,
}

impl Book {
    /// Starts following `account` (at zero).
    pub fn track(&mut self, account: &Account) {
        self.accounts.entry(account.key()).or_insert_with(|| (account.clone(), 0));
    }

    pub fn track_all(&mut self, customer: &Customer) {
        for account in customer.accounts.values() {
            self.track(account);
        }
    }

    #[track_caller]
    pub fn expected(&self, account: &Account) -> i64 {
        self.accounts.get(&account.key()).map(|(_, cents)| *cents).expect("an account of the book")
    }

    #[track_caller]
    fn add(&mut self, key: (u32, String), cents: i64) {
        let entry = self.accounts.get_mut(&key).unwrap_or_else(|| panic!("account {key:?} is not in the book"));
        entry.1 += cents;
    }

    /// Applies a transfer answer: every leg when it is `completed`, nothing otherwise.
    #[track_caller]
    pub fn apply(&mut self, transfer: &Value) {
        match status(transfer) {
            "completed" => self.apply_legs(transfer),
            "failed" => {}
            other => panic!("only a final transfer can be booked, not {other}: {transfer}"),
        }
    }

    /// Applies every leg of `transfer`, whatever its status says.
    #[track_caller]
    pub fn apply_legs(&mut self, transfer: &Value) {
        for leg in transfer["legs"].as_array().expect("legs") {
            let cents = leg["amount_cents"].as_i64().expect("amount_cents");
            let end = |v: &Value| {
                (
                    u32::try_from(v["bank_id"].as_u64().expect("bank_id")).expect("bank id"),
                    v["number"].as_str().expect("number").to_string(),
                )
            };
            self.add(end(&leg["from"]), -cents);
            self.add(end(&leg["to"]), cents);
        }
    }

    pub fn accounts(&self) -> impl Iterator<Item = &Account> {
        self.accounts.values().map(|(a, _)| a)
    }
}

/// A consortium of `bank node` processes in a temporary directory.
pub struct Cluster {
    pub layout: Layout,
    pub n: u32,
    urls: BTreeMap<u32, String>,
    /// The running banks; locked briefly (never across an await), so a test may kill or restart
    /// a bank while other futures use the cluster.
    children: Mutex<BTreeMap<u32, Child>>,
    pub http: reqwest::Client,
    operator: SigningKey,
    /// Flags every `bank node` of this cluster gets after the ones `bank up` gives.
    node_args: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Keys, consortium file and `n` running, healthy banks.
    pub async fn start(n: u32) -> Cluster {
        Cluster::start_with(n, &[]).await
    }

    /// As [`Cluster::start`], every bank run with `node_args` too (e.g. `--fault-switch`).
    pub async fn start_with(n: u32, node_args: &[&str]) -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let layout = Layout { root: dir.path().join("data") };
        std::fs::create_dir_all(layout.keys_dir()).expect("keys dir");
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(layout.keys_dir(), std::fs::Permissions::from_mode(0o700)).expect("chmod");
        }
        let mut members = BTreeMap::new();
        let mut urls = BTreeMap::new();
        for (i, port) in free_ports(n).into_iter().enumerate() {
            let id = u32::try_from(i).expect("id") + 1;
            let key = generate_signing_key().expect("key");
            write_key_files(&layout.bank_key(BankId(id)), &key).expect("write key");
            let url = format!("http://127.0.0.1:{port}");
            urls.insert(id, url.clone());
            let member =
                Member { id: BankId(id), name: bank_cli::up::bank_name(id), url, public_key: key.verifying_key() };
            members.insert(BankId(id), member);
        }
        let operator = generate_signing_key().expect("operator key");
        write_key_files(&layout.operator_key(), &operator).expect("write operator key");
        let config = ConsortiumConfig {
            operator_key: operator.verifying_key(),
            members,
            ring: Default::default(),
            node: NodeSettings::default(),
        };
        std::fs::write(layout.consortium_file(), config.to_toml()).expect("write consortium.toml");
        let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(20)).build().expect("http client");
        let node_args = node_args.iter().map(|a| (*a).to_owned()).collect();
        let cluster =
            Cluster { layout, n, urls, children: Mutex::new(BTreeMap::new()), http, operator, node_args, _dir: dir };
        for id in 1..=n {
            cluster.spawn(id, None);
        }
        for id in 1..=n {
            cluster.wait_healthy(id).await;
        }
        cluster
    }

    pub fn url(&self, bank: u32) -> &str {
        &self.urls[&bank]
    }

    /// Starts bank `id` on its data directory; with `failpoint`, as `BANK_FAILPOINT`.
    fn children(&self) -> MutexGuard<'_, BTreeMap<u32, Child>> {
        self.children.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn spawn(&self, id: u32, failpoint: Option<&str>) {
        assert!(!self.children().contains_key(&id), "bank {id} is already running");
        let bank = BankId(id);
        std::fs::create_dir_all(self.layout.bank_dir(bank)).expect("bank dir");
        let mut log =
            File::options().create(true).append(true).open(self.layout.log_file(bank)).expect("open node.log");
        writeln!(log, "==== cluster test: starting bank {id} (failpoint {failpoint:?}) ====").expect("log");
        let words = self.layout.node_command(bin(), bank);
        let mut command = Command::new(&words[0]);
        command.args(&words[1..]).args(&self.node_args);
        // Settings come from the flags only, not from whatever the test's environment exports.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("BANK_") {
                command.env_remove(name);
            }
        }
        command.env("RUST_LOG", "info");
        if let Some(failpoint) = failpoint {
            command.env("BANK_FAILPOINT", failpoint);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn bank node");
        self.children().insert(id, child);
    }

    /// Waits until bank `id` answers `/healthz`; fails at once (with its log) if it exits.
    pub async fn wait_healthy(&self, id: u32) {
        let deadline = Instant::now() + START;
        let url = format!("{}/healthz", self.url(id));
        loop {
            if let Some(exit) = self.exited(id) {
                panic!("bank {id} exited while starting ({exit}); its log:\n{}", self.log_tail(id));
            }
            let up = self.http.get(&url).timeout(Duration::from_secs(2)).send().await;
            if matches!(up, Ok(r) if r.status().is_success()) {
                return;
            }
            assert!(Instant::now() < deadline, "bank {id} did not answer /healthz; its log:\n{}", self.log_tail(id));
            tokio::time::sleep(POLL).await;
        }
    }

    /// `Some(exit status)` once bank `id` has exited (it is then forgotten).
    fn exited(&self, id: u32) -> Option<ExitStatus> {
        let mut children = self.children();
        let child = children.get_mut(&id).unwrap_or_else(|| panic!("bank {id} is not running"));
        let exit = child.try_wait().expect("try_wait")?;
        children.remove(&id);
        Some(exit)
    }

    /// SIGKILL to bank `id` (as `kill -9`), then reaps it.
    pub fn kill(&self, id: u32) {
        let mut child = self.children().remove(&id).unwrap_or_else(|| panic!("bank {id} is not running"));
        let _ = child.kill();
        child.wait().expect("wait for the killed bank");
    }

    /// Restarts bank `id` (SIGKILL if it runs) on the same data, with `failpoint` armed or not.
    pub async fn restart(&self, id: u32, failpoint: Option<&str>) {
        if self.children().contains_key(&id) {
            self.kill(id);
        }
        self.spawn(id, failpoint);
        self.wait_healthy(id).await;
    }

    /// Waits for bank `id` to crash at its failpoint: it must abort (SIGABRT) within `within`.
    pub async fn wait_crash(&self, id: u32, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(exit) = self.exited(id) {
                assert_eq!(
                    exit.signal(),
                    Some(Signal::SIGABRT as i32),
                    "bank {id} should have aborted at its failpoint, but exited with {exit}; its log:\n{}",
                    self.log_tail(id)
                );
                return exit;
            }
            assert!(
                Instant::now() < deadline,
                "bank {id} did not reach its failpoint within {within:?}; its log:\n{}",
                self.log_tail(id)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGSTOP: bank `id` stops answering (its sockets stay open) until [`Cluster::thaw`].
    pub fn freeze(&self, id: u32) {
        self.signal(id, Signal::SIGSTOP);
    }

    /// SIGCONT: a frozen bank runs again.
    pub fn thaw(&self, id: u32) {
        self.signal(id, Signal::SIGCONT);
    }

    fn signal(&self, id: u32, signal: Signal) {
        let pid = self.children().get(&id).map(Child::id).unwrap_or_else(|| panic!("bank {id} is not running"));
        kill(Pid::from_raw(i32::try_from(pid).expect("pid")), signal).expect("signal");
    }

    /// The banks running now.
    pub fn running(&self) -> Vec<u32> {
        self.children().keys().copied().collect()
    }

    /// The last lines of bank `id`'s log.
    pub fn log_tail(&self, id: u32) -> String {
        let text = std::fs::read_to_string(self.layout.log_file(BankId(id))).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }

    /// Grep of bank `id`'s log for lines containing `needle`.
    pub fn log_lines(&self, id: u32, needle: &str) -> Vec<String> {
        let text = std::fs::read_to_string(self.layout.log_file(BankId(id))).unwrap_or_default();
        text.lines().filter(|l| l.contains(needle)).map(str::to_string).collect()
    }

    // ---- HTTP ----

    /// One request to bank `bank`; `Err` when the bank could not be reached or answer.
    pub async fn try_call(
        &self,
        bank: u32,
        method: &str,
        path: &str,
        token: Option<&str>,
        idem: Option<&str>,
        body: Option<&Value>,
    ) -> reqwest::Result<(u16, Value)> {
        let mut request = self.http.request(method.parse().expect("method"), format!("{}{path}", self.url(bank)));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(key) = idem {
            request = request.header("Idempotency-Key", key);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
    }

    /// `POST path` to bank `to`, signed by bank `from` (or by the operator, `from` = 0) with its
    /// key from the consortium's key directory.
    pub async fn signed_post(&self, from: u32, to: u32, path: &str, body: &Value) -> (u16, Value) {
        let key = if from == OPERATOR.0 {
            self.operator.clone()
        } else {
            bank_node::consortium::read_signing_key(&self.layout.bank_key(BankId(from))).expect("bank key")
        };
        let bytes = serde_json::to_vec(body).expect("json");
        let signed =
            sign(&key, BankId(from), BankId(to), "POST", path, &bytes, unix_now_ms(), fresh_nonce().expect("nonce"));
        let mut request = self.http.post(format!("{}{path}", self.url(to)));
        for (name, value) in signed.pairs() {
            request = request.header(name, value);
        }
        let response = request
            .header("content-type", "application/json")
            .body(bytes)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path} at bank {to}: {e}"));
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Throws bank `id`'s fault switch (the bank runs with `--fault-switch`).
    pub async fn cut_off(&self, id: u32, cut_off: bool) {
        let (code, answer) =
            self.signed_post(OPERATOR.0, id, "/interbank/v1/fault", &json!({ "cut_off": cut_off })).await;
        assert_eq!(code, 200, "fault switch of bank {id}: {answer}");
    }

    /// `GET /api/v1/consortium/status` of bank `id`.
    pub async fn ring_status(&self, id: u32) -> Value {
        let (code, status) = self.call(id, "GET", "/api/v1/consortium/status", None, None).await;
        assert_eq!(code, 200, "{status}");
        status
    }

    /// A counter or gauge of bank `id`'s `/metrics` (0 if absent).
    pub async fn metric(&self, id: u32, name: &str) -> f64 {
        let text = self.http.get(format!("{}/metrics", self.url(id))).send().await.expect("metrics");
        let text = text.text().await.expect("metrics text");
        text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok()).unwrap_or(0.0)
    }

    #[track_caller]
    pub fn call<'a>(
        &'a self,
        bank: u32,
        method: &'a str,
        path: &'a str,
        token: Option<&'a str>,
        body: Option<&'a Value>,
    ) -> impl Future<Output = (u16, Value)> + 'a {
        let caller = std::panic::Location::caller();
        async move {
            match self.try_call(bank, method, path, token, None, body).await {
                Ok(answer) => answer,
                Err(e) => panic!("{method} {path} at bank {bank} ({caller}): {e}"),
            }
        }
    }

    /// Opens an individual account for CPF base `cpf` at each of `banks` and signs in at each.
    pub async fn customer(&self, cpf: u64, name: &str, banks: &[u32]) -> Customer {
        let document = bank_core::document::Cpf::from_base(cpf);
        let email = format!("c{cpf}@example.com");
        let mut accounts = BTreeMap::new();
        for &bank in banks {
            let body = json!({
                "kind": "individual",
                "holders": [{ "name": name, "document": document.as_str() }],
                "email": email, "phone": "+5575999990000", "password": PASSWORD
            });
            let (code, account) = self.call(bank, "POST", "/api/v1/accounts", None, Some(&body)).await;
            assert_eq!(code, 201, "open {name}'s account at bank {bank}: {account}");
            let login = json!({ "email": email, "password": PASSWORD });
            let (code, session) = self.call(bank, "POST", "/api/v1/sessions", None, Some(&login)).await;
            assert_eq!(code, 201, "sign {name} in at bank {bank}: {session}");
            let text = |v: &Value| v.as_str().expect("a string").to_string();
            accounts.insert(
                bank,
                Account { bank, number: text(&account["number"]), token: text(&session["token"]), owner: cpf },
            );
        }
        Customer { cpf, name: name.to_string(), accounts }
    }

    /// A cash deposit into `account`, booked.
    pub async fn deposit(&self, book: &mut Book, account: &Account, cents: i64) {
        let body = json!({ "amount_cents": cents, "method": "cash" });
        let key = uuid::Uuid::new_v4().to_string();
        let answer = self
            .try_call(account.bank, "POST", "/api/v1/deposits", Some(&account.token), Some(&key), Some(&body))
            .await
            .expect("deposit");
        assert_eq!(answer.0, 201, "deposit at bank {}: {}", account.bank, answer.1);
        book.track(account);
        book.add(account.key(), cents);
        book.deposits += cents;
    }

    pub async fn balance(&self, account: &Account) -> Balance {
        let (code, me) = self.call(account.bank, "GET", "/api/v1/me", Some(&account.token), None).await;
        assert_eq!(code, 200, "GET /me at bank {}: {me}", account.bank);
        let b = &me["balance"];
        Balance {
            posted: b["posted_cents"].as_i64().expect("posted_cents"),
            held: b["held_cents"].as_i64().expect("held_cents"),
            available: b["available_cents"].as_i64().expect("available_cents"),
        }
    }

    /// The statement lines of `account` (newest first, first page).
    pub async fn statement(&self, account: &Account) -> Vec<Value> {
        let (code, page) =
            self.call(account.bank, "GET", "/api/v1/statement?limit=100", Some(&account.token), None).await;
        assert_eq!(code, 200, "statement at bank {}: {page}", account.bank);
        page["entries"].as_array().expect("entries").clone()
    }

    /// POSTs a transfer at the bank of `session` under Idempotency-Key `key`.
    pub async fn try_transfer(&self, session: &Account, key: &str, legs: &[Value]) -> reqwest::Result<(u16, Value)> {
        let body = json!({ "legs": legs });
        self.try_call(session.bank, "POST", "/api/v1/transfers", Some(&session.token), Some(key), Some(&body)).await
    }

    /// POSTs a transfer (fresh key) at the bank of `session`; it must execute (201).
    pub async fn transfer(&self, session: &Account, legs: &[Value]) -> Value {
        let request = Request::new(session, legs.to_vec());
        let (code, answer) = match self.send(&request).await {
            Ok(answer) => answer,
            Err(e) => panic!("POST /api/v1/transfers at bank {}: {e}", session.bank),
        };
        assert_eq!(code, 201, "transfer at bank {}: {answer}", session.bank);
        answer
    }

    /// Sends (or sends again) `request`.
    pub async fn send(&self, request: &Request) -> reqwest::Result<(u16, Value)> {
        self.try_transfer(&request.session, &request.key, &request.legs).await
    }

    /// The final form of `request`'s answer, like [`Cluster::finish`]; when the bank will not show
    /// the transfer to its own customer (404, see the test of that), it is followed by sending
    /// the request again under its key instead, which answers the recorded transfer.
    pub async fn finish_request(&self, request: &Request, answer: Value) -> Value {
        if status(&answer) != "pending" {
            return answer;
        }
        let id = answer["id"].as_str().expect("id").to_string();
        let session = &request.session;
        let deadline = Instant::now() + SETTLE;
        loop {
            let (code, now) = self.get_transfer(session, &id).await;
            let now = match code {
                200 => now,
                404 => {
                    println!("GET of pending transfer {id} at bank {}: 404 to its own customer", session.bank);
                    let (code, now) = self.send(request).await.expect("the request again");
                    assert_eq!(code, 201, "the request again: {now}");
                    assert_eq!(now["id"].as_str(), Some(id.as_str()), "the same transfer: {now}");
                    now
                }
                _ => panic!("GET transfer {id} at bank {}: {code} {now}", session.bank),
            };
            if status(&now) != "pending" {
                return now;
            }
            assert!(Instant::now() < deadline, "transfer {id} still pending after {SETTLE:?}: {now}");
            tokio::time::sleep(POLL).await;
        }
    }

    pub async fn get_transfer(&self, session: &Account, id: &str) -> (u16, Value) {
        self.call(session.bank, "GET", &format!("/api/v1/transfers/{id}"), Some(&session.token), None).await
    }

    /// The final form of a transfer answer: itself unless `pending`, else polled with
    /// `GET /api/v1/transfers/{id}` at the same bank until it is `completed` or `failed`.
    pub async fn finish(&self, session: &Account, transfer: Value) -> Value {
        if status(&transfer) != "pending" {
            return transfer;
        }
        let id = transfer["id"].as_str().expect("id").to_string();
        let deadline = Instant::now() + SETTLE;
        loop {
            let (code, now) = self.get_transfer(session, &id).await;
            assert_eq!(code, 200, "GET transfer {id} at bank {}: {now}", session.bank);
            if status(&now) != "pending" {
                return now;
            }
            assert!(Instant::now() < deadline, "transfer {id} still pending after {SETTLE:?}: {now}");
            tokio::time::sleep(POLL).await;
        }
    }

    /// Polls until every account shows its wanted balance.
    pub async fn wait_balances(&self, what: &str, want: &[(&Account, Balance)]) {
        let deadline = Instant::now() + SETTLE;
        loop {
            let mut seen = Vec::new();
            for (account, _) in want {
                seen.push(self.balance(account).await);
            }
            if want.iter().zip(&seen).all(|((_, w), s)| w == s) {
                return;
            }
            if Instant::now() > deadline {
                let lines: Vec<String> = want
                    .iter()
                    .zip(&seen)
                    .map(|((a, w), s)| format!("  bank {} account {}: want {w:?}, got {s:?}", a.bank, a.number))
                    .collect();
                panic!("{what}: balances did not converge within {SETTLE:?}:\n{}", lines.join("\n"));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    // ---- the operator's view ----

    /// The operator's signed read of bank `bank` (`GET /interbank/v1/audit[?query]`).
    pub async fn audit_read(&self, bank: u32, query: &str) -> Value {
        let path = if query.is_empty() { AUDIT_PATH.to_string() } else { format!("{AUDIT_PATH}?{query}") };
        let signed = sign(
            &self.operator,
            OPERATOR,
            BankId(bank),
            "GET",
            &path,
            b"",
            unix_now_ms(),
            fresh_nonce().expect("nonce"),
        );
        let mut request = self.http.get(format!("{}{path}", self.url(bank)));
        for (name, value) in signed.pairs() {
            request = request.header(name, value);
        }
        let response = request.send().await.unwrap_or_else(|e| panic!("audit read of bank {bank}: {e}"));
        let code = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!(code, 200, "audit read of bank {bank}: {body}");
        body
    }

    /// The ids of the transactions bank `bank` holds money for.
    pub async fn held_transactions(&self, bank: u32) -> Vec<String> {
        let page = self.audit_read(bank, "list=holds").await;
        page["holds"]["items"]
            .as_array()
            .expect("holds")
            .iter()
            .map(|h| h["transfer_id"].as_str().expect("transfer_id").to_string())
            .collect()
    }

    /// DESIGN.md §8 over the whole consortium, once in-flight work has settled (polled up to
    /// [`SETTLE`]): every account of `book` holds exactly what the book says with nothing held
    /// (so each packet moved all its legs or none, nothing twice), no available money is
    /// negative, Σ posted over every bank equals the deposits (no test withdraws), no bank holds
    /// anything or has a coordinator record left unfinished, every bank that knows a
    /// transaction's decision knows the same one, and `bank audit` exits 0.
    pub async fn assert_invariants(&self, book: &Book) {
        let banks = self.running();
        assert_eq!(banks.len() as u32, self.n, "every bank must run for the consortium-wide check");
        // 1. Settle: nothing held, no hold records, every coordinator record finished.
        let deadline = Instant::now() + SETTLE;
        let snapshots = loop {
            let mut unsettled = Vec::new();
            for account in book.accounts() {
                let b = self.balance(account).await;
                if b.held != 0 {
                    unsettled.push(format!("bank {} account {} holds {}", account.bank, account.number, b.held));
                }
            }
            let mut snapshots = BTreeMap::new();
            for &bank in &banks {
                let s = self.audit_read(bank, "").await;
                let t = &s["totals"];
                if t["holds"].as_u64() != Some(0) || t["held_cents"].as_i64() != Some(0) {
                    unsettled.push(format!("bank {bank}: {} holds, {} held", t["holds"], t["held_cents"]));
                }
                let records = t["coordinator_records"].as_object().cloned().unwrap_or_default();
                for (state, count) in records.iter().filter(|(state, _)| *state != "finished") {
                    unsettled.push(format!("bank {bank}: {count} coordinator records {state}"));
                }
                snapshots.insert(bank, s);
            }
            if unsettled.is_empty() {
                break snapshots;
            }
            assert!(
                Instant::now() < deadline,
                "the consortium did not settle within {SETTLE:?}:\n  {}\n{}",
                unsettled.join("\n  "),
                self.all_logs()
            );
            tokio::time::sleep(POLL).await;
        };
        // 2. Every account exactly as booked; available = posted ≥ 0.
        let mut wrong = Vec::new();
        let mut sum = 0;
        for account in book.accounts() {
            let b = self.balance(account).await;
            let want = book.expected(account);
            if b != settled(want) || b.available < 0 {
                wrong.push(format!("bank {} account {}: want {}, got {b:?}", account.bank, account.number, want));
            }
            sum += b.posted;
        }
        assert!(wrong.is_empty(), "balances differ from the book:\n  {}", wrong.join("\n  "));
        assert_eq!(sum, book.deposits, "Σ posted over the customers' accounts equals the deposits");
        // 3. The operator's view of every bank: conservation, no negative money, one decision
        //    per transaction everywhere.
        let mut posted = 0;
        let mut deposits = 0;
        let mut decisions: BTreeMap<String, BTreeMap<String, Vec<u32>>> = BTreeMap::new();
        for (bank, s) in &snapshots {
            let t = &s["totals"];
            posted += t["posted_cents"].as_i64().expect("posted_cents");
            deposits += t["deposits_cents"].as_i64().expect("deposits_cents");
            assert_eq!(t["withdrawals_cents"].as_i64(), Some(0), "bank {bank}: no test withdraws: {t}");
            assert_eq!(s["truncated"], false, "bank {bank}: one page holds everything");
            for a in s["accounts"]["items"].as_array().expect("accounts") {
                let (p, h) = (a["posted_cents"].as_i64().expect("posted"), a["held_cents"].as_i64().expect("held"));
                assert!(p - h >= 0 && h >= 0, "bank {bank} account {}: posted {p}, held {h}", a["number"]);
            }
            for d in s["decisions"]["items"].as_array().expect("decisions") {
                let tx = d["transfer_id"].as_str().expect("transfer_id").to_string();
                let decision = d["decision"].as_str().expect("decision").to_string();
                decisions.entry(tx).or_default().entry(decision).or_default().push(*bank);
            }
        }
        assert_eq!(posted, book.deposits, "Σ posted over every bank (operator's view) equals the deposits");
        assert_eq!(deposits, book.deposits, "the banks' deposit entries equal the deposits made");
        let split: Vec<String> = decisions
            .iter()
            .filter(|(_, by)| by.len() > 1)
            .map(|(tx, by)| format!("transaction {tx}: {by:?}"))
            .collect();
        assert!(split.is_empty(), "banks decided a transaction differently:\n  {}", split.join("\n  "));
        // 4. `bank audit`, when this CLI has it (it is being added by another engineer; without it
        //    this step is skipped and the checks above stand alone).
        if cli_has_audit() {
            let out = tokio::process::Command::new(bin())
                .args(["audit", "--consortium"])
                .arg(self.layout.consortium_file())
                .args(["--wait-s", "10"])
                .env_remove("BANK_OPERATOR_KEY")
                .env("RUST_LOG", "warn")
                .output()
                .await
                .expect("run bank audit");
            let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            assert_eq!(out.status.code(), Some(0), "bank audit failed:\n{text}");
            let verdict = text.lines().find(|l| l.starts_with("verdict")).unwrap_or("(no verdict line)");
            println!("bank audit: exit 0, {verdict}");
        } else {
            println!("bank audit: not in this CLI; skipped");
        }
    }

    /// The end of every bank's log, for failure messages.
    pub fn all_logs(&self) -> String {
        (1..=self.n).map(|id| format!("---- bank {id} log (end) ----\n{}\n", self.log_tail(id))).collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (_, child) in self.children().iter_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("{}", self.all_logs());
        }
    }
}
