//! How long the consortium goes without cross-bank work when the token holder dies: from killing
//! the holder in the middle of a batch to the next completed cross-bank transfer between the two
//! other banks (issue "The token ring", target ≤ 3 s; the original design took 77 s).
//!
//! Three banks of the release binary (`cargo bench -p bank-cli --bench ring_recovery`). Each run
//! arms the failpoint `ring_batch_begun` on one bank (in turn), sends it a cross-bank transfer:
//! the bank aborts the moment it holds the token and has begun that batch (SIGABRT, as `kill -9`
//! at an exact point). The clock starts when the crash is seen (polled every 20 ms, so the figure
//! is at most 20 ms short) and stops when a transfer from one surviving bank to the other is
//! completed (sent at once, it waits in the queue for the new token). The bank is then restarted,
//! rejoins, and the next run kills another. `BANK_RECOVERY_RUNS` sets the number of runs (5).

use std::time::{Duration, Instant};

use bank_testkit::processes::{Book, Cluster, Request, leg, status};

/// The `bank` binary under test.
const BANK: &str = env!("CARGO_BIN_EXE_bank");

fn main() {
    let runs: usize = std::env::var("BANK_RECOVERY_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime");
    runtime.block_on(async move {
        let c = Cluster::start(BANK, 3).await;
        let ana = c.customer(1, "Ana Souza", &[1, 2, 3]).await;
        let mut book = Book::default();
        book.track_all(&ana);
        for bank in 1..=3 {
            c.deposit(&mut book, ana.at(bank), 1_000_000).await;
        }
        let mut times = Vec::new();
        for run in 0..runs {
            let victim = (run % 3) as u32 + 1;
            let (from, to) = match victim {
                1 => (2, 3),
                2 => (3, 1),
                _ => (1, 2),
            };
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
        let ms: Vec<String> = times.iter().map(|t| format!("{:.0}", t.as_secs_f64() * 1000.0)).collect();
        println!(
            "recovery from a killed token holder to the next completed cross-bank transfer, {runs} runs: median {:.0} ms (sorted: {} ms)",
            times[times.len() / 2].as_secs_f64() * 1000.0,
            ms.join(", ")
        );
    });
}
