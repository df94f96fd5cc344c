//! A hash map that is cheap to copy and to change after a copy: the shape of a table the
//! control side changes one entry at a time and publishes whole after each change
//! ([`crate::shard::RouteMap`]).
//!
//! The entries are spread over [`BUCKETS`] buckets, each behind an `Arc`. Cloning the map
//! clones the bucket pointers only; changing an entry copies the one bucket it lives in when a
//! published copy still shares it. So publishing after one `-A` costs O(N / BUCKETS) instead of
//! O(N): at 50 000 services about 200 entries are copied, not 50 000.

use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

// hashbrown's own hasher (foldhash, seeded per process) rather than std's SipHash: the proxy
// looks a shard up here on every flow event, and the keys (service addresses, shard ids) come
// from the configuration, not from the network, so SipHash's resistance to chosen keys buys
// nothing (callgrind: ~1 900 instructions per short connection in this map's lookups).
use hashbrown::{DefaultHashBuilder, HashMap};

/// Number of buckets: enough that a bucket stays small (tens of entries) at the largest tables
/// the daemon is measured with, few enough that cloning the map (one pointer copy and reference
/// count per bucket) stays cheap.
pub const BUCKETS: usize = 1024;

/// See the module docs.
#[derive(Debug)]
pub struct CowMap<K, V> {
    buckets: Vec<Arc<HashMap<K, V>>>,
    len: usize,
    /// Picks an entry's bucket; copied with the map, so a copy finds its entries.
    hasher: DefaultHashBuilder,
}

impl<K, V> Clone for CowMap<K, V> {
    fn clone(&self) -> Self {
        CowMap {
            buckets: self.buckets.clone(),
            len: self.len,
            hasher: self.hasher,
        }
    }
}

impl<K: Hash + Eq + Clone, V: Clone> Default for CowMap<K, V> {
    fn default() -> Self {
        CowMap {
            buckets: (0..BUCKETS).map(|_| Arc::new(HashMap::new())).collect(),
            len: 0,
            hasher: DefaultHashBuilder::default(),
        }
    }
}

impl<K: Hash + Eq + Clone, V: Clone> CowMap<K, V> {
    fn bucket(&self, k: &K) -> usize {
        (self.hasher.hash_one(k) % BUCKETS as u64) as usize
    }

    /// The value of `k`.
    pub fn get(&self, k: &K) -> Option<&V> {
        self.buckets[self.bucket(k)].get(k)
    }

    /// Set `k` to `v`; the old value, if any.
    pub fn insert(&mut self, k: K, v: V) -> Option<V> {
        let b = self.bucket(&k);
        let old = Arc::make_mut(&mut self.buckets[b]).insert(k, v);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Remove `k`; its value, if it had one.
    pub fn remove(&mut self, k: &K) -> Option<V> {
        let i = self.bucket(k);
        let b = &mut self.buckets[i];
        if !b.contains_key(k) {
            // Do not copy a shared bucket for nothing.
            return None;
        }
        let old = Arc::make_mut(b).remove(k);
        self.len -= usize::from(old.is_some());
        old
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.buckets.iter().flat_map(|b| b.iter())
    }

    /// Every value, in no particular order.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.iter().map(|(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_after_a_copy_copies_one_bucket_and_leaves_the_copy_alone() {
        let mut m: CowMap<u32, String> = CowMap::default();
        for i in 0..5000 {
            m.insert(i, i.to_string());
        }
        assert_eq!(m.len(), 5000);
        let published = m.clone();
        assert_eq!(m.insert(7, "seven".into()), Some("7".into()));
        assert_eq!(m.remove(&8), Some("8".into()));
        assert_eq!(m.remove(&8), None);
        m.insert(9000, "new".into());
        assert_eq!(m.len(), 5000);
        // The copy still sees the old table.
        assert_eq!(published.get(&7).map(String::as_str), Some("7"));
        assert_eq!(published.get(&8).map(String::as_str), Some("8"));
        assert_eq!(published.get(&9000), None);
        assert_eq!(published.len(), 5000);
        // Only the changed keys' buckets were copied; every other bucket is still shared.
        let shared = m
            .buckets
            .iter()
            .zip(&published.buckets)
            .filter(|(a, b)| Arc::ptr_eq(a, b))
            .count();
        assert!(shared >= BUCKETS - 3, "{shared} buckets shared");
        assert_eq!(m.iter().count(), 5000);
    }
}
