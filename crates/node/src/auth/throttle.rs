//! Throttling of failed sign-ins, per account (e-mail) and per client address.
//!
//! Each key has a GCRA bucket (the generic cell rate algorithm: a token bucket kept as one
//! instant, the "theoretical arrival time"). A key whose bucket is empty is refused before any
//! hashing, with the time until its next token (the `Retry-After`).
//!
//! - Per e-mail, an attempt takes its token before the password is checked, so parallel guesses
//!   at one account cannot all slip through before the first failure is counted; a success
//!   forgives the account's failures.
//! - Per address, only a failure takes a token (checked before, charged after): many customers
//!   behind one address may sign in at once, and none of their successes counts. Parallel
//!   guesses from one address can overshoot its budget by what is being hashed at that moment
//!   (bounded by the hasher pool's queue), each still within its e-mail's five; the overshoot
//!   does not lengthen the address's pause beyond one interval past empty.
//!
//! An attacker cannot lock a customer out for long: a bucket refills by itself (one token per
//! `interval`), so the customer gets an attempt every `interval` even under a steady attack.
//!
//! Memory is bounded: each map holds at most `keys_max` buckets. A full bucket carries no
//! information (it is the same as none), so those are dropped first; if every bucket is in use,
//! the one nearest to full goes, which forgives the least.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bank_core::ids::AccountNumber;

/// How fast attempts come back, and how many may be spent at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// One token comes back per interval.
    pub interval: Duration,
    /// Tokens a full bucket holds.
    pub burst: u32,
}

impl Rate {
    /// How far ahead of now a bucket's arrival time may be and still grant an attempt.
    fn tolerance(self) -> Duration {
        self.interval * self.burst.saturating_sub(1)
    }
}

/// Per e-mail: five failures in a row, then one attempt per 30 s.
pub const PER_ACCOUNT: Rate = Rate { interval: Duration::from_secs(30), burst: 5 };
/// Per client address: a larger budget (several customers may share an address), refilling
/// faster, but still far below a guessing rate.
pub const PER_ADDRESS: Rate = Rate { interval: Duration::from_secs(2), burst: 50 };
/// Most buckets kept per map (an e-mail or address bucket costs well under 100 bytes).
pub const KEYS_MAX: usize = 20_000;

/// GCRA buckets by key, bounded.
#[derive(Debug)]
struct Buckets<K> {
    rate: Rate,
    keys_max: usize,
    /// Theoretical arrival time per key: the bucket is full when it is not after now.
    tat: HashMap<K, Instant>,
}

impl<K: Hash + Eq + Clone> Buckets<K> {
    fn new(rate: Rate, keys_max: usize) -> Self {
        Buckets { rate, keys_max: keys_max.max(1), tat: HashMap::new() }
    }

    /// The arrival time after one more attempt now, or how long until one is allowed.
    fn try_take(&self, key: &K, now: Instant) -> Result<Instant, Duration> {
        let tat = self.tat.get(key).map_or(now, |&t| t.max(now));
        let ahead = tat.duration_since(now);
        if ahead > self.rate.tolerance() {
            return Err(ahead - self.rate.tolerance());
        }
        Ok(tat + self.rate.interval)
    }

    fn store(&mut self, key: K, tat: Instant, now: Instant) {
        if !self.tat.contains_key(&key) && self.tat.len() >= self.keys_max {
            self.make_room(now);
        }
        self.tat.insert(key, tat);
    }

    /// Drops every full bucket; if none was, the one nearest to full.
    fn make_room(&mut self, now: Instant) {
        self.tat.retain(|_, tat| *tat > now);
        if self.tat.len() >= self.keys_max
            && let Some(nearest) = self.tat.iter().min_by_key(|(_, tat)| **tat).map(|(k, _)| k.clone())
        {
            self.tat.remove(&nearest);
        }
    }

    /// Gives back one token taken by an attempt that succeeded.
    fn give_back(&mut self, key: &K, now: Instant) {
        if let Some(tat) = self.tat.get_mut(key) {
            let back = tat.checked_sub(self.rate.interval).unwrap_or(now);
            if back <= now {
                self.tat.remove(key);
            } else {
                *tat = back;
            }
        }
    }

    /// Takes a token for an attempt that already happened: even past the budget, but then the
    /// bucket is left just empty (one interval to wait), so a burst does not pile up a long pause.
    fn charge(&mut self, key: K, now: Instant) {
        let tat = self.tat.get(&key).map_or(now, |&t| t.max(now)) + self.rate.interval;
        let cap = now + self.rate.tolerance() + self.rate.interval;
        self.store(key, tat.min(cap), now);
    }

    fn forget(&mut self, key: &K) {
        self.tat.remove(key);
    }

    fn len(&self) -> usize {
        self.tat.len()
    }
}

/// Both buckets' answers: allowed when both allow, else the longer wait of those that refuse.
fn both<A, B>(a: Result<A, Duration>, b: Result<B, Duration>) -> Result<(A, B), Duration> {
    match (a, b) {
        (Ok(a), Ok(b)) => Ok((a, b)),
        (Err(a), Err(b)) => Err(a.max(b)),
        (Err(wait), _) | (_, Err(wait)) => Err(wait),
    }
}

/// A wait in whole seconds, rounded up (a `Retry-After` of 0 would invite an immediate retry).
pub fn whole_seconds(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

/// Who is trying to sign in: the account's e-mail (normalised) and, when the server knows it,
/// the client's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub email: Option<String>,
    pub address: Option<IpAddr>,
}

/// An attempt allowed to go on: it must be settled with [`SignInThrottle::succeeded`] or
/// [`SignInThrottle::failed`] (a failure keeps the token it took).
#[derive(Debug)]
#[must_use = "settle the attempt with succeeded() or failed()"]
pub struct Permit {
    attempt: Attempt,
}

/// The failed sign-ins of one bank, per e-mail and per address (see the module documentation).
#[derive(Debug)]
pub struct SignInThrottle {
    inner: Mutex<(Buckets<String>, Buckets<IpAddr>)>,
}

impl Default for SignInThrottle {
    fn default() -> Self {
        SignInThrottle::new(PER_ACCOUNT, PER_ADDRESS, KEYS_MAX)
    }
}

impl SignInThrottle {
    pub fn new(per_account: Rate, per_address: Rate, keys_max: usize) -> Self {
        SignInThrottle { inner: Mutex::new((Buckets::new(per_account, keys_max), Buckets::new(per_address, keys_max))) }
    }

    /// Lets an attempt go on if both its e-mail's and its address's buckets allow it, taking the
    /// e-mail's token; refused, it costs nothing, so an attacker stopped by their address's
    /// budget does not spend the customer's. `Err` is how long until it would be allowed.
    pub fn begin(&self, attempt: Attempt, now: Instant) -> Result<Permit, Duration> {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (emails, addresses) = &mut *guard;
        let by_email = attempt.email.as_ref().map(|e| emails.try_take(e, now)).transpose();
        let by_address = attempt.address.as_ref().map(|a| addresses.try_take(a, now)).transpose();
        let (tat, _) = both(by_email, by_address)?;
        if let (Some(email), Some(tat)) = (&attempt.email, tat) {
            emails.store(email.clone(), tat, now);
        }
        Ok(Permit { attempt })
    }

    /// The attempt signed in: the account's failures are forgiven (its holder proved who they
    /// are); the address was not charged.
    pub fn succeeded(&self, permit: Permit) {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(email) = &permit.attempt.email {
            guard.0.forget(email);
        }
    }

    /// The password could not be checked (the bank was busy): the e-mail's token goes back.
    pub fn not_checked(&self, permit: Permit, now: Instant) {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(email) = &permit.attempt.email {
            guard.0.give_back(email, now);
        }
    }

    /// The attempt failed: the e-mail keeps the token it took, and the address is charged one.
    pub fn failed(&self, permit: Permit, now: Instant) {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(address) = permit.attempt.address {
            guard.1.charge(address, now);
        }
    }

    /// Buckets held (e-mails, addresses), for tests and metrics.
    pub fn len(&self) -> (usize, usize) {
        let guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        (guard.0.len(), guard.1.len())
    }
}

/// Per signed-in account: 30 lookups of keys nobody has, then one per 2 s. A customer mistypes
/// a key now and then; walking the directory for who has a key misses almost every time.
pub const MISSES_PER_ACCOUNT: Rate = Rate { interval: Duration::from_secs(2), burst: 30 };
/// Per client address: a larger budget (several customers may share an address).
pub const MISSES_PER_ADDRESS: Rate = Rate { interval: Duration::from_millis(500), burst: 120 };

/// Lookups of Pix keys that no account has, per signed-in account and per client address
/// (DESIGN.md §5a: the directory answers locally, so without this a session could enumerate it
/// at the speed of the bank). Only misses are charged; a lookup is refused, costing nothing,
/// while either bucket is empty.
#[derive(Debug)]
pub struct LookupThrottle {
    inner: Mutex<(Buckets<AccountNumber>, Buckets<IpAddr>)>,
}

impl Default for LookupThrottle {
    fn default() -> Self {
        LookupThrottle::new(MISSES_PER_ACCOUNT, MISSES_PER_ADDRESS, KEYS_MAX)
    }
}

impl LookupThrottle {
    pub fn new(per_account: Rate, per_address: Rate, keys_max: usize) -> Self {
        LookupThrottle { inner: Mutex::new((Buckets::new(per_account, keys_max), Buckets::new(per_address, keys_max))) }
    }

    /// Whether a lookup may go on; `Err` is how long until it may.
    pub fn check(&self, account: &AccountNumber, address: Option<IpAddr>, now: Instant) -> Result<(), Duration> {
        let guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let by_account = guard.0.try_take(account, now).map(|_| ());
        let by_address = address.map_or(Ok(()), |a| guard.1.try_take(&a, now).map(|_| ()));
        both(by_account, by_address).map(|_| ())
    }

    /// A lookup found no account: both the account and the address are charged one.
    pub fn missed(&self, account: &AccountNumber, address: Option<IpAddr>, now: Instant) {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        guard.0.charge(account.clone(), now);
        if let Some(address) = address {
            guard.1.charge(address, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn by_email(email: &str) -> Attempt {
        Attempt { email: Some(email.into()), address: None }
    }

    fn fail_n(t: &SignInThrottle, attempt: &Attempt, n: usize, now: Instant) {
        for i in 0..n {
            let permit = t.begin(attempt.clone(), now).unwrap_or_else(|w| panic!("attempt {i} refused ({w:?})"));
            t.failed(permit, now);
        }
    }

    #[test]
    fn five_failures_then_one_attempt_per_thirty_seconds() {
        let t = SignInThrottle::default();
        let now = Instant::now();
        let ana = by_email("ana@example.com");
        fail_n(&t, &ana, 5, now);
        assert_eq!(t.begin(ana.clone(), now).map(|_| ()), Err(30 * SECOND));
        assert_eq!(t.begin(ana.clone(), now + 10 * SECOND).map(|_| ()), Err(20 * SECOND));
        fail_n(&t, &ana, 1, now + 30 * SECOND);
        assert_eq!(t.begin(ana.clone(), now + 30 * SECOND).map(|_| ()), Err(30 * SECOND));
        // Left alone, the bucket refills whole: five attempts again.
        fail_n(&t, &ana, 5, now + 300 * SECOND);
    }

    #[test]
    fn a_refusal_costs_nothing_and_a_success_forgives_the_accounts_failures() {
        let t = SignInThrottle::default();
        let now = Instant::now();
        let ana = by_email("ana@example.com");
        fail_n(&t, &ana, 5, now);
        for _ in 0..100 {
            assert!(t.begin(ana.clone(), now + 29 * SECOND).is_err());
        }
        let permit = t.begin(ana.clone(), now + 30 * SECOND).expect("one attempt after 30 s");
        t.succeeded(permit);
        fail_n(&t, &ana, 5, now + 30 * SECOND);
        // Another account is not affected.
        fail_n(&t, &by_email("bia@example.com"), 5, now);
    }

    #[test]
    fn an_address_has_its_own_larger_budget_and_a_refusal_there_spares_the_account() {
        let t = SignInThrottle::default();
        let now = Instant::now();
        let address: IpAddr = "192.0.2.7".parse().expect("ip");
        for i in 0..PER_ADDRESS.burst {
            let attempt = Attempt { email: Some(format!("c{i}@example.com")), address: Some(address) };
            t.failed(t.begin(attempt, now).expect("within the address's budget"), now);
        }
        let victim = Attempt { email: Some("victim@example.com".into()), address: Some(address) };
        assert_eq!(t.begin(victim, now).map(|_| ()), Err(PER_ADDRESS.interval));
        // The victim's own bucket was not touched: from elsewhere, five attempts remain.
        let elsewhere = Attempt { email: Some("victim@example.com".into()), address: "198.51.100.1".parse().ok() };
        fail_n(&t, &elsewhere, 5, now);
    }

    #[test]
    fn successes_from_one_address_cost_nothing_and_a_burst_of_failures_waits_one_interval() {
        let t = SignInThrottle::default();
        let now = Instant::now();
        let address: IpAddr = "192.0.2.7".parse().expect("ip");
        let from = |i: usize| Attempt { email: Some(format!("c{i}@example.com")), address: Some(address) };
        // Many customers behind one address, signing in at once: none is refused.
        let permits: Vec<Permit> = (0..500).map(|i| t.begin(from(i), now).expect("a success costs nothing")).collect();
        for permit in permits {
            t.succeeded(permit);
        }
        // 300 guesses in flight at once all fail: the address then waits one interval, no more.
        let permits: Vec<Permit> = (0..300).map(|i| t.begin(from(i), now).expect("within budget")).collect();
        for permit in permits {
            t.failed(permit, now);
        }
        assert_eq!(t.begin(from(999), now).map(|_| ()), Err(PER_ADDRESS.interval));
        assert!(t.begin(from(999), now + PER_ADDRESS.interval).is_ok());
    }

    #[test]
    fn the_maps_stay_bounded_dropping_full_buckets_first() {
        let rate = Rate { interval: SECOND, burst: 2 };
        let t = SignInThrottle::new(rate, rate, 3);
        let now = Instant::now();
        for i in 0..100 {
            fail_n(&t, &by_email(&format!("c{i}@example.com")), 1, now);
            assert!(t.len().0 <= 3, "{:?}", t.len());
        }
        // A bucket near empty survives newer ones that are nearer to full.
        let t = SignInThrottle::new(rate, rate, 3);
        let hammered = by_email("hammered@example.com");
        fail_n(&t, &hammered, 2, now);
        for i in 0..10 {
            fail_n(&t, &by_email(&format!("c{i}@example.com")), 1, now);
        }
        assert!(t.begin(hammered, now).is_err(), "the most restricted bucket was kept");
    }
}
