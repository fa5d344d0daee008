//! Deterministic identifiers: the same seed gives the same claim ids, instance ids and pod
//! names on every run.

use std::collections::BTreeSet;
use std::sync::Mutex;

use nodewright_core::ports::IdSource;

/// SplitMix64 (Steele, Lea and Flood): tiny, fast and good enough to name things.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// `len` lowercase base-36 characters.
    pub(crate) fn base36(&mut self, len: usize) -> String {
        const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
        let mut n = self.next_u64();
        (0..len)
            .map(|_| {
                let c = DIGITS[(n % 36) as usize] as char;
                n /= 36;
                c
            })
            .collect()
    }
}

/// Claim-id suffixes from a seeded SplitMix64: five lowercase base-36 characters, never the
/// same twice (a repeat is drawn again, so ids stay unique however long the run).
#[derive(Debug)]
pub struct SeededIds {
    state: Mutex<(SplitMix64, BTreeSet<String>)>,
}

impl SeededIds {
    pub fn new(seed: u64) -> Self {
        SeededIds {
            state: Mutex::new((SplitMix64::new(seed), BTreeSet::new())),
        }
    }
}

impl IdSource for SeededIds {
    fn next_suffix(&self) -> String {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (rng, issued) = &mut *guard;
        loop {
            let suffix = rng.base36(5);
            if issued.insert(suffix.clone()) {
                return suffix;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_suffixes_and_none_repeats() {
        let a = SeededIds::new(7);
        let b = SeededIds::new(7);
        let first: Vec<String> = (0..1000).map(|_| a.next_suffix()).collect();
        let second: Vec<String> = (0..1000).map(|_| b.next_suffix()).collect();
        assert_eq!(first, second);
        let unique: BTreeSet<&String> = first.iter().collect();
        assert_eq!(unique.len(), first.len());
        assert!(
            first
                .iter()
                .all(|s| s.len() == 5 && s.chars().all(|c| c.is_ascii_digit() || c.is_ascii_lowercase()))
        );
    }
}
