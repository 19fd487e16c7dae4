//! The client's small cache of workflow files and changed files per commit.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// A small cache that forgets its oldest entry when full.
pub(super) struct BoundedCache<K, V> {
    cap: usize,
    map: HashMap<K, V>,
    order: VecDeque<K>,
}

impl<K: Eq + Hash + Clone, V: Clone> BoundedCache<K, V> {
    pub(super) fn new(cap: usize) -> Self {
        BoundedCache {
            cap,
            map: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    pub(super) fn get(&self, key: &K) -> Option<V> {
        self.map.get(key).cloned()
    }

    pub(super) fn put(&mut self, key: K, value: V) {
        if self.map.insert(key.clone(), value).is_none() {
            self.order.push_back(key);
        }
        while self.map.len() > self.cap {
            match self.order.pop_front() {
                Some(old) => {
                    self.map.remove(&old);
                }
                None => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bounded_cache_forgets_its_oldest_entry() {
        let mut c = BoundedCache::new(2);
        c.put(1, "a");
        c.put(2, "b");
        c.put(1, "a2");
        c.put(3, "c");
        assert_eq!(
            (c.get(&1), c.get(&2), c.get(&3)),
            (None, Some("b"), Some("c"))
        );
    }
}
