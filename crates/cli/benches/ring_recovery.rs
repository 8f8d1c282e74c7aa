//! How long the consortium goes without cross-bank work when the token holder dies: from killing
//! the holder in the middle of a batch to the next completed cross-bank transfer between the two
//! other banks (target, five banks: median ≤ 1.5 s, worst of ten ≤ 2 s; the original design took
//! 77 s).
//!
//! Five banks of the release binary (`cargo bench -p bank-cli --bench ring_recovery`). Each run
//! arms the failpoint `ring_batch_begun` on one bank (in turn), sends it a cross-bank transfer:
//! the bank aborts the moment it holds the token and has begun that batch (SIGABRT, as `kill -9`
//! at an exact point). The clock starts when the crash is seen (polled every 20 ms, so the figure
//! is at most 20 ms short) and stops when a transfer from one surviving bank to the other is
//! completed (sent at once, it waits in the queue for the new token). The bank is then restarted,
//! rejoins, and the next run kills another. `BANK_RECOVERY_BANKS` sets the number of banks (5),
//! `BANK_RECOVERY_RUNS` the number of runs (10); the distribution (median, worst) ends the output.

use std::time::{Duration, Instant};

use bank_testkit::processes::{Book, Cluster, Request, leg, status};

/// The `bank` binary under test.
const BANK: &str = env!("CARGO_BIN_EXE_bank");

/// A number from the environment, or `default`.
fn env_number(name: &str, default: u32) -> u32 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let banks = env_number("BANK_RECOVERY_BANKS", 5).max(3);
    let runs = env_number("BANK_RECOVERY_RUNS", 10).max(1) as usize;
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime");
    runtime.block_on(async move {
        let c = Cluster::start(BANK, banks).await;
        let all: Vec<u32> = (1..=banks).collect();
        let ana = c.customer(1, "Ana Souza", &all).await;
        let mut book = Book::default();
        book.track_all(&ana);
        for bank in 1..=banks {
            c.deposit(&mut book, ana.at(bank), 1_000_000).await;
        }
        let mut times = Vec::new();
        for run in 0..runs {
            // Victims in turn; the transfer goes between the next two banks after the victim.
            let victim = (run as u32 % banks) + 1;
            let (from, to) = (victim % banks + 1, (victim + 1) % banks + 1);
            c.restart(victim, Some("ring_batch_begun")).await;
            let doomed = Request::new(ana.at(victim), vec![leg(ana.at(victim), ana.at(from), 100)]);
            let (_, crash) = tokio::join!(c.send(&doomed), c.wait_crash(victim, Duration::from_secs(30)));
            let killed = Instant::now();
            let _ = crash;
            let took = loop {
                let request = Request::new(ana.at(from), vec![leg(ana.at(from), ana.at(to), 100)]);
                if let Ok((201, answer)) = c.send(&request).await {
                    let done = c.finish(ana.at(from), answer).await;
                    if status(&done) == "completed" {
                        break killed.elapsed();
                    }
                }
                assert!(killed.elapsed() < Duration::from_secs(60), "no recovery within 60 s");
            };
            println!("run {}: bank {victim} killed holding the token; bank {from} → bank {to} completed after {:.0} ms", run + 1, took.as_secs_f64() * 1000.0);
            times.push(took);
            c.spawn(victim, None);
            c.wait_healthy(victim).await;
            let started = Instant::now();
            while c.metric(victim, "bank_ring_visits_total").await < 1.0 {
                assert!(started.elapsed() < Duration::from_secs(60), "bank {victim} did not rejoin the ring");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        times.sort();
        let ms: Vec<f64> = times.iter().map(|t| t.as_secs_f64() * 1000.0).collect();
        let median = if ms.len() % 2 == 1 { ms[ms.len() / 2] } else { (ms[ms.len() / 2 - 1] + ms[ms.len() / 2]) / 2.0 };
        let sorted: Vec<String> = ms.iter().map(|m| format!("{m:.0}")).collect();
        println!(
            "recovery from a killed token holder to the next completed cross-bank transfer, {banks} banks, {runs} runs: \
             median {median:.0} ms, best {:.0} ms, worst {:.0} ms (sorted: {} ms)",
            ms[0],
            ms[ms.len() - 1],
            sorted.join(", ")
        );
    });
}
