//! The simulators' random numbers: SplitMix64, seeded, with the few draws a simulation needs.
//!
//! Written here rather than taken from `rand` so that a seed's stream can never change under us
//! with a dependency upgrade: a seed printed by a failing run must replay the same world later.

/// SplitMix64: tiny, fast, and good enough to drive a simulation; no dependency needed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (the modulo bias is negligible for the small `n` used here).
    pub fn below<T: Draw>(&mut self, n: T) -> T {
        let n = n.to_i128();
        assert!(n > 0, "below({n}) has nothing to draw from");
        T::from_i128(i128::from(self.next_u64() % n as u64))
    }

    /// Uniform in `lo..=hi`.
    pub fn range<T: Draw>(&mut self, (lo, hi): (T, T)) -> T {
        let (lo, hi) = (lo.to_i128(), hi.to_i128());
        assert!(lo <= hi, "range({lo}, {hi}) is empty");
        let span = (hi - lo + 1) as u64;
        T::from_i128(lo + i128::from(self.next_u64() % span))
    }

    /// True with probability `p / 1000`.
    pub fn per_mille(&mut self, p: u32) -> bool {
        self.below(1000u32) < p
    }

    /// One of `items`, uniformly.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    /// Fisher–Yates: every order equally likely.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

/// The integer types a simulation draws (counts, indices, cents, ticks). Every draw goes through
/// `i128`, so each type gets the very same stream of values for the same seed.
pub trait Draw: Copy {
    fn to_i128(self) -> i128;
    /// Only called with values inside the range asked for, so the conversion cannot fail.
    fn from_i128(value: i128) -> Self;
}

macro_rules! draw_for {
    ($($t:ty),*) => {$(
        impl Draw for $t {
            fn to_i128(self) -> i128 {
                self as i128
            }
            fn from_i128(value: i128) -> Self {
                <$t>::try_from(value).expect("a draw stays inside the range asked for")
            }
        }
    )*};
}

draw_for!(i32, i64, u32, u64, usize);

#[cfg(test)]
mod tests {
    use super::*;

    /// SplitMix64's published first outputs for seed 0: a seed printed by a failing run replays
    /// the same world on any later build.
    #[test]
    fn the_stream_of_a_seed_is_splitmix64_and_never_changes() {
        let mut rng = Rng::new(0);
        let firsts: Vec<u64> = (0..3).map(|_| rng.next_u64()).collect();
        assert_eq!(firsts, vec![0xE220_A839_7B1D_CDAF, 0x6E78_9E6A_A1B9_65F4, 0x06C4_5D18_8009_454F]);
    }

    /// A draw gives the same value whatever integer type it is made in, so the two simulators'
    /// former typed generators (usize and i64; u64) replay unchanged on this one.
    #[test]
    fn a_draw_is_the_same_in_every_integer_type() {
        let (mut a, mut b, mut c) = (Rng::new(42), Rng::new(42), Rng::new(42));
        for _ in 0..1_000 {
            let signed = a.range((-5i64, 900));
            assert_eq!(signed + 5, b.range((0u64, 905)) as i64);
            assert_eq!(signed + 5, i64::from(c.range((0i32, 905))));
            assert_eq!(a.below(17usize) as u64, b.below(17u64));
            c.below(17u32);
        }
    }
}
