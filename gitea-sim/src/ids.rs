//! Random tokens and content hashes.

use sha2::{Digest, Sha256};

/// `n` random lowercase hex characters (from v4 UUIDs).
#[must_use]
pub fn random_hex(n: usize) -> String {
    let mut out = String::with_capacity(n + 32);
    while out.len() < n {
        out.push_str(&uuid::Uuid::new_v4().simple().to_string());
    }
    out.truncate(n);
    out
}

/// A 40-hex-character object id derived from `parts`.
///
/// Looks like a git SHA-1 and is stable for the same input, but is not a real git object id.
#[must_use]
pub fn object_id(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    let mut s = hex::encode(h.finalize());
    s.truncate(40);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_hex_has_the_requested_length_and_differs_each_time() {
        let a = random_hex(40);
        assert_eq!(a.len(), 40);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, random_hex(40));
    }

    #[test]
    fn object_ids_are_stable_and_separate_their_parts() {
        assert_eq!(object_id(&[b"ab", b"c"]), object_id(&[b"ab", b"c"]));
        assert_ne!(object_id(&[b"ab", b"c"]), object_id(&[b"a", b"bc"]));
        assert_eq!(object_id(&[b"x"]).len(), 40);
    }
}

/// A small deterministic random number generator (SplitMix64), for the orders Gitea leaves
/// to the database.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// Seeded from a random UUID.
    pub(crate) fn random() -> Self {
        SplitMix64(uuid::Uuid::new_v4().as_u64_pair().0)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Fisher–Yates.
    pub(crate) fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = usize::try_from(self.next() % (i as u64 + 1)).unwrap_or(0);
            items.swap(i, j);
        }
    }
}
