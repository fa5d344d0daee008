//! FNV-1a, the one stable hash the core uses for names and hashes kept across runs (the
//! standard library's hasher is seeded per process).

use std::hash::{Hash, Hasher};

/// The FNV-1a hash of `value`.
pub fn fnv1a(value: &impl Hash) -> u64 {
    let mut hasher = Fnv(0xcbf2_9ce4_8422_2325);
    value.hash(&mut hasher);
    hasher.finish()
}

struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}
