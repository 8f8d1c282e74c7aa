//! DESIGN.md §8 over a whole [`Cluster`] of processes, as the operator and the customers see it.

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::Value;

use super::book::{Book, settled};
use super::{Cluster, POLL, SETTLE};

/// What the operator's audit read of each bank answered, by bank.
type Snapshots = BTreeMap<u32, Value>;

impl Cluster {
    /// DESIGN.md §8 over the whole consortium, once in-flight work has settled (polled up to
    /// [`SETTLE`]): every account of `book` holds exactly what the book says with nothing held
    /// (so each packet moved all its legs or none, nothing twice), no available money is
    /// negative, Σ posted over every bank equals the deposits (no test withdraws), no bank holds
    /// anything or has a coordinator record left unfinished, every bank that knows a
    /// transaction's decision knows the same one, and `bank audit` exits 0.
    pub async fn assert_invariants(&self, book: &Book) {
        let banks = self.running();
        assert_eq!(banks.len() as u32, self.n, "every bank must run for the consortium-wide check");
        let snapshots = self.settled_snapshots(book, &banks).await;
        self.assert_balances_as_booked(book).await;
        assert_operator_view(&snapshots, book);
        self.assert_bank_audit_passes().await;
    }

    /// Step 1, settling: nothing held, no hold records, every coordinator record finished; then
    /// the operator's view of every bank.
    async fn settled_snapshots(&self, book: &Book, banks: &[u32]) -> Snapshots {
        let deadline = Instant::now() + SETTLE;
        loop {
            let mut unsettled = Vec::new();
            for account in book.accounts() {
                let b = self.balance(account).await;
                if b.held != 0 {
                    unsettled.push(format!("bank {} account {} holds {}", account.bank, account.number, b.held));
                }
            }
            let mut snapshots = BTreeMap::new();
            for &bank in banks {
                let s = self.audit_read(bank, "").await;
                unsettled.extend(unsettled_at(bank, &s));
                snapshots.insert(bank, s);
            }
            if unsettled.is_empty() {
                return snapshots;
            }
            assert!(
                Instant::now() < deadline,
                "the consortium did not settle within {SETTLE:?}:\n  {}\n{}",
                unsettled.join("\n  "),
                self.all_logs()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Step 2: every account exactly as booked; available = posted ≥ 0.
    async fn assert_balances_as_booked(&self, book: &Book) {
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
    }

    /// Step 4: `bank audit`, when this CLI has it (it is being added by another engineer;
    /// without it this step is skipped and the checks above stand alone).
    async fn assert_bank_audit_passes(&self) {
        if !super::cli_has_audit(&self.bank) {
            println!("bank audit: not in this CLI; skipped");
            return;
        }
        let out = tokio::process::Command::new(&self.bank)
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
    }
}

/// What bank `bank`'s audit read `s` shows still in flight: holds, unfinished coordinator records.
fn unsettled_at(bank: u32, s: &Value) -> Vec<String> {
    let mut unsettled = Vec::new();
    let t = &s["totals"];
    if t["holds"].as_u64() != Some(0) || t["held_cents"].as_i64() != Some(0) {
        unsettled.push(format!("bank {bank}: {} holds, {} held", t["holds"], t["held_cents"]));
    }
    let records = t["coordinator_records"].as_object().cloned().unwrap_or_default();
    for (state, count) in records.iter().filter(|(state, _)| *state != "finished") {
        unsettled.push(format!("bank {bank}: {count} coordinator records {state}"));
    }
    unsettled
}

/// Step 3, the operator's view of every bank: conservation, no negative money, one decision per
/// transaction everywhere.
fn assert_operator_view(snapshots: &Snapshots, book: &Book) {
    let mut posted = 0;
    let mut deposits = 0;
    let mut decisions: BTreeMap<String, BTreeMap<String, Vec<u32>>> = BTreeMap::new();
    for (bank, s) in snapshots {
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
    let split: Vec<String> =
        decisions.iter().filter(|(_, by)| by.len() > 1).map(|(tx, by)| format!("transaction {tx}: {by:?}")).collect();
    assert!(split.is_empty(), "banks decided a transaction differently:\n  {}", split.join("\n  "));
}
