//! `bank bench --mode seed-ops`: the load of [`super::Mode::CrossBank`], spoken in the original
//! system's protocol (the seed-compatible API, issue 11; the banks must run with
//! `--seed-compat`), so the speed-up over the original can be stated on its own protocol.
//!
//! Setup opens `accounts` accounts per bank with `POST /operations` `create` and funds each with
//! a `deposit`. The load is `transfers` operations drawn by `concurrency` closed-loop workers:
//! one in [`DEPOSIT_EVERY`] is a `deposit` into a random account, the rest are `sendPix` from a
//! random account at bank i to a random account at another bank j, addressed by its CPF key and
//! `idBank` as the original's interface does. Amounts are sent as the interface sends them
//! (strings in reais with two decimals).
//!
//! Outcomes: 200 is `completed`; 422 (insufficient funds) is `failed`; 504 (still pending at the
//! bank's deadline) counts in `pending` and as the error `pending`; anything else is an error by
//! status. Nothing is retried: the original protocol has no idempotency key, so a repeat could
//! execute twice. The check reads every account with `GET /account/data/<n>` until nothing is
//! held, and compares the sum with every deposit the run made.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use bank_client::Status;
use bank_core::document::Cpf;
use futures::StreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use super::{
    Check, LatencyMs, Options, RunIdentity, SETTLE_POLL_MS, SETTLE_WAIT_MAX_MS, SETUP_CONCURRENCY_MAX, Summary,
    TRANSFER_AMOUNT_MAX_CENTS, Tally, ops_per_s, progress_bar, resolve_banks, round3,
};

/// One load operation in this many is a deposit (the rest are cross-bank Pix).
pub const DEPOSIT_EVERY: u64 = 4;

/// A bench account as the seed protocol names it.
#[derive(Debug, Clone)]
struct SeedAccount {
    url: String,
    bank_id: u32,
    /// The CPF, formatted: `clientCpfCNPJ` and its Pix key.
    cpf: String,
    /// The integer of `/account/data/<n>`.
    number: u64,
}

/// Runs the mode; `options.mode` is [`super::Mode::SeedOps`].
pub async fn run(options: &Options) -> Result<Summary> {
    let seed = options.seed.unwrap_or_else(rand::random);
    let http = super::http_client(options)?;
    let banks = resolve_banks(options, &http).await?;
    let setup_started = Instant::now();
    let identity = RunIdentity::random(banks.len() * options.accounts);
    let plan: Vec<(usize, usize)> =
        (0..banks.len()).flat_map(|k| (0..options.accounts).map(move |a| (k, k * options.accounts + a))).collect();
    let progress = progress_bar(options.progress, plan.len() as u64, "setup");
    let opened: Vec<Result<SeedAccount>> = futures::stream::iter(plan)
        .map(|(k, index)| {
            let (http, identity, progress, bank) = (&http, &identity, &progress, &banks[k]);
            async move {
                let account = open(http, &bank.url, bank.id, identity, index, options.deposit_cents).await;
                progress.inc(1);
                account.with_context(|| format!("bench account {index} at bank {}", bank.id))
            }
        })
        .buffer_unordered(options.concurrency.clamp(1, SETUP_CONCURRENCY_MAX))
        .collect()
        .await;
    progress.finish_and_clear();
    let accounts = opened.into_iter().collect::<Result<Vec<_>>>()?;
    let setup_s = setup_started.elapsed().as_secs_f64();
    let deposited = Arc::new(AtomicI64::new(options.deposit_cents * accounts.len() as i64));

    let accounts = Arc::new(accounts);
    let (tally, elapsed) = load(&http, &accounts, &deposited, options, seed).await?;
    let (check, settle) = check(&http, &accounts).await;
    let deposited_cents = deposited.load(Ordering::Relaxed);
    Ok(Summary {
        mode: options.mode,
        target: banks.iter().map(|b| b.url.as_str()).collect::<Vec<_>>().join(", "),
        banks: banks.len(),
        accounts: options.accounts,
        accounts_total: accounts.len(),
        transfers: options.transfers,
        concurrency: options.concurrency,
        seed,
        ops_per_s: ops_per_s(tally.completed + tally.failed, elapsed),
        latency_ms: LatencyMs::from_histogram_us(&tally.latency_us),
        completed: tally.completed,
        failed: tally.failed,
        pending: tally.pending,
        errors: tally.errors,
        retries: 0,
        error_codes: tally.error_codes,
        conserved: check.conserved(deposited_cents),
        deposited_cents,
        posted_cents: check.posted_cents,
        held_cents: check.held_cents,
        negative_available_accounts: check.negative_available_accounts,
        balance_read_errors: check.read_errors,
        setup_retries: 0,
        setup_s: round3(setup_s),
        elapsed_s: round3(elapsed.as_secs_f64()),
        settle_s: round3(settle.as_secs_f64()),
    })
}

async fn operation(http: &reqwest::Client, url: &str, body: &Value) -> Result<(u16, String), reqwest::Error> {
    let response = http.post(format!("{url}/operations")).json(body).send().await?;
    let status = response.status().as_u16();
    Ok((status, response.text().await.unwrap_or_default()))
}

fn reais(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// Opens and funds account `index` of the run at the bank at `url`, through `/operations`.
async fn open(
    http: &reqwest::Client,
    url: &str,
    bank_id: u32,
    identity: &RunIdentity,
    index: usize,
    deposit_cents: i64,
) -> Result<SeedAccount> {
    let cpf = Cpf::from_base(identity.cpf_bases[index]).formatted();
    let create = json!({ "operation": "create", "clientCpfCNPJ": cpf, "dataOperation": {
        "name1": format!("Bench {} {index}", identity.tag), "cpfCNPJ1": cpf, "name2": "", "cpfCNPJ2": "",
        "email": identity.email(index), "password": identity.password(),
        "telephone": format!("+55759{:08}", index % 100_000_000),
        "isFisicAccount": "true", "isJoinetAccount": "false" } });
    let (status, text) = operation(http, url, &create).await?;
    ensure!(status == 200, "create answered {status}: {text}");
    let account: Value = serde_json::from_str(&text).context("create's answer")?;
    let number = account["accountNumber"].as_u64().context("create's answer has no accountNumber")?;
    let deposit = json!({ "operation": "deposit", "clientCpfCNPJ": cpf,
        "dataOperation": { "value": reais(deposit_cents), "method": "money" } });
    let (status, text) = operation(http, url, &deposit).await?;
    ensure!(status == 200, "deposit answered {status}: {text}");
    Ok(SeedAccount { url: url.to_string(), bank_id, cpf, number })
}

/// The load phase: closed-loop workers, as in the other modes.
async fn load(
    http: &reqwest::Client,
    accounts: &Arc<Vec<SeedAccount>>,
    deposited: &Arc<AtomicI64>,
    options: &Options,
    seed: u64,
) -> Result<(Tally, Duration)> {
    let progress = progress_bar(options.progress, options.transfers, "operations");
    let claimed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..options.concurrency {
        let (http, accounts, deposited, claimed, progress) =
            (http.clone(), accounts.clone(), deposited.clone(), claimed.clone(), progress.clone());
        let transfers = options.transfers;
        let mut rng = StdRng::seed_from_u64(seed.wrapping_add(worker as u64));
        workers.spawn(async move {
            let mut tally = Tally::new()?;
            while claimed.fetch_add(1, Ordering::Relaxed) < transfers {
                let (url, body, deposit_cents) = draw(&accounts, &mut rng);
                let begun = Instant::now();
                match operation(&http, &url, &body).await {
                    Ok((200, _)) => {
                        deposited.fetch_add(deposit_cents, Ordering::Relaxed);
                        tally.record_executed(Status::Completed, begun.elapsed());
                    }
                    Ok((422, _)) => tally.record_executed(Status::Failed, begun.elapsed()),
                    Ok((504, _)) => {
                        tally.pending += 1;
                        tally.record_error("pending");
                    }
                    Ok((status, _)) => tally.record_error(&format!("http_{status}")),
                    Err(_) => tally.record_error("transport"),
                }
                progress.inc(1);
            }
            anyhow::Ok(tally)
        });
    }
    let mut total = Tally::new()?;
    while let Some(joined) = workers.join_next().await {
        total.merge(&joined.context("a bench worker panicked")??)?;
    }
    progress.finish_and_clear();
    Ok((total, started.elapsed()))
}

/// The next operation: (bank URL, body, centavos it deposits if it succeeds).
fn draw(accounts: &[SeedAccount], rng: &mut impl Rng) -> (String, Value, i64) {
    let amount = rng.random_range(1..=TRANSFER_AMOUNT_MAX_CENTS);
    let from = &accounts[rng.random_range(0..accounts.len())];
    if rng.random_range(0..DEPOSIT_EVERY) == 0 {
        let body = json!({ "operation": "deposit", "clientCpfCNPJ": from.cpf,
            "dataOperation": { "value": reais(amount), "method": "money" } });
        return (from.url.clone(), body, amount);
    }
    let others: Vec<&SeedAccount> = accounts.iter().filter(|a| a.bank_id != from.bank_id).collect();
    let to = others[rng.random_range(0..others.len())];
    let body = json!({ "operation": "sendPix", "clientCpfCNPJ": from.cpf, "dataOperation": {
        "value": reais(amount), "keyPix": to.cpf, "idBank": to.bank_id.to_string(),
        "bankNameReceiver": "", "nameReceiver": "" } });
    (from.url.clone(), body, 0)
}

/// Reads every account until none has money held (or the settle wait passed).
async fn check(http: &reqwest::Client, accounts: &[SeedAccount]) -> (Check, Duration) {
    let started = Instant::now();
    loop {
        let readings: Vec<Option<(i64, i64)>> = futures::stream::iter(accounts)
            .map(|account| async move {
                let url = format!("{}/account/data/{}", account.url, account.number);
                let json: Value = http.get(url).send().await.ok()?.json().await.ok()?;
                let cents = |field: &str| -> Option<i64> {
                    let text = json[field].as_str()?;
                    let (units, fraction) = text.split_once('.')?;
                    Some(units.parse::<i64>().ok()? * 100 + fraction.parse::<i64>().ok()?)
                };
                Some((cents("balance")?, cents("blockedBalance")?))
            })
            .buffer_unordered(SETUP_CONCURRENCY_MAX)
            .collect()
            .await;
        let mut check = Check::default();
        for reading in readings {
            match reading {
                Some((available, held)) => check.add(&bank_client::Balance {
                    posted_cents: available + held,
                    held_cents: held,
                    available_cents: available,
                }),
                None => check.read_errors += 1,
            }
        }
        if check.settled() || started.elapsed() >= Duration::from_millis(SETTLE_WAIT_MAX_MS) {
            return (check, started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(SETTLE_POLL_MS)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(bank_id: u32, n: u64) -> SeedAccount {
        SeedAccount { url: format!("http://bank{bank_id}"), bank_id, cpf: format!("cpf-{bank_id}-{n}"), number: n }
    }

    #[test]
    fn pix_go_to_another_bank_and_deposits_are_about_one_in_four() {
        let accounts: Vec<SeedAccount> = (1..=3).flat_map(|b| (1..=4).map(move |n| fake(b, n))).collect();
        let mut rng = StdRng::seed_from_u64(7);
        let mut deposits = 0;
        for _ in 0..4000 {
            let (url, body, cents) = draw(&accounts, &mut rng);
            match body["operation"].as_str() {
                Some("deposit") => {
                    deposits += 1;
                    assert!((1..=TRANSFER_AMOUNT_MAX_CENTS).contains(&cents));
                }
                Some("sendPix") => {
                    assert_eq!(cents, 0);
                    let to_bank = body["dataOperation"]["idBank"].as_str().expect("idBank");
                    assert_ne!(url, format!("http://bank{to_bank}"), "a Pix crosses banks: {body}");
                }
                other => panic!("unexpected operation {other:?}"),
            }
        }
        assert!((800..1200).contains(&deposits), "{deposits} deposits in 4000");
        assert_eq!(reais(5), "0.05");
        assert_eq!(reais(123_456), "1234.56");
    }
}
