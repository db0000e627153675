//! A small open-addressing hash map for the snapshot's hot lookups (VIP by
//! address/port/protocol, VIP addresses, DNAT backend endpoints).
//!
//! Built once per snapshot, read per packet: power-of-two slots at most half full,
//! linear probing, one multiply to hash, keys compared in place. A lookup is
//! typically one cache line and no branch mispredictions beyond the first compare,
//! several times faster than a general-purpose `HashMap` for these tiny tables.

/// Keys the flat map can hash.
pub trait FlatKey: Copy + Eq {
    /// The key that marks an empty slot. It may still be inserted: the map keeps
    /// its value aside (`FlatMap::empty_key`), so no key is refused.
    const EMPTY: Self;
    fn flat_hash(&self) -> u64;
}

impl FlatKey for u64 {
    const EMPTY: u64 = u64::MAX;
    #[inline(always)]
    fn flat_hash(&self) -> u64 {
        (*self ^ (*self >> 29)).wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }
}

impl FlatKey for u32 {
    const EMPTY: u32 = u32::MAX;
    #[inline(always)]
    fn flat_hash(&self) -> u64 {
        u64::from(*self).flat_hash()
    }
}

impl FlatKey for u128 {
    const EMPTY: u128 = u128::MAX;
    #[inline(always)]
    fn flat_hash(&self) -> u64 {
        ((*self as u64) ^ ((*self >> 64) as u64).rotate_left(17)).flat_hash()
    }
}

impl FlatKey for (u128, u32) {
    const EMPTY: (u128, u32) = (u128::MAX, u32::MAX);
    #[inline(always)]
    fn flat_hash(&self) -> u64 {
        (self.0.flat_hash() ^ u64::from(self.1)).flat_hash()
    }
}

/// An immutable-after-build open-addressing map. Keys and values in two arrays
/// (a probe reads keys only); an empty slot holds [`FlatKey::EMPTY`], so a hit is
/// one compare and a miss two, with no tag byte to load.
#[derive(Debug, Clone)]
pub struct FlatMap<K, V> {
    keys: Box<[K]>,
    vals: Box<[V]>,
    mask: usize,
    len: usize,
    /// The value of the key [`FlatKey::EMPTY`] itself, if it was inserted.
    empty_key: Option<V>,
}

impl<K: FlatKey, V: Copy + Default> Default for FlatMap<K, V> {
    fn default() -> Self {
        FlatMap {
            keys: vec![K::EMPTY; 1].into_boxed_slice(),
            vals: vec![V::default(); 1].into_boxed_slice(),
            mask: 0,
            len: 0,
            empty_key: None,
        }
    }
}

impl<K: FlatKey, V: Copy + Default> FlatMap<K, V> {
    /// Insert or replace (building; not for the packet path).
    pub fn insert(&mut self, key: K, value: V) {
        if key == K::EMPTY {
            self.empty_key = Some(value);
            return;
        }
        if (self.len + 1) * 2 > self.keys.len() {
            self.grow();
        }
        let mut i = self.index(&key);
        loop {
            if self.keys[i] == key {
                self.vals[i] = value;
                return;
            }
            if self.keys[i] == K::EMPTY {
                self.keys[i] = key;
                self.vals[i] = value;
                self.len += 1;
                return;
            }
            i = (i + 1) & self.mask;
        }
    }

    fn grow(&mut self) {
        let n = (self.keys.len() * 2).max(8);
        let keys = std::mem::replace(&mut self.keys, vec![K::EMPTY; n].into_boxed_slice());
        let vals = std::mem::replace(&mut self.vals, vec![V::default(); n].into_boxed_slice());
        self.mask = n - 1;
        self.len = 0;
        for (k, v) in keys.iter().zip(vals.iter()) {
            if *k != K::EMPTY {
                self.insert(*k, *v);
            }
        }
    }

    #[inline(always)]
    fn index(&self, key: &K) -> usize {
        (key.flat_hash() >> 32) as usize & self.mask
    }

    /// The value for `key`.
    #[inline]
    pub fn get(&self, key: &K) -> Option<&V> {
        let mut i = self.index(key);
        // At most half full: the probe always meets an empty slot.
        loop {
            let k = *self.keys.get(i)?;
            if k == *key {
                // `EMPTY` itself matches the first empty slot: its value is kept aside.
                return if k == K::EMPTY { self.empty_key.as_ref() } else { self.vals.get(i) };
            }
            if k == K::EMPTY {
                return None;
            }
            i = (i + 1) & self.mask;
        }
    }

    #[inline]
    pub fn contains_key(&self, key: &K) -> bool {
        self.get(key).is_some()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.len + usize::from(self.empty_key.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_what_was_inserted_and_nothing_else() {
        let mut m: FlatMap<u64, u16> = FlatMap::default();
        assert_eq!(m.get(&1), None);
        for i in 0..1000u64 {
            m.insert(i * 7919, i as u16);
        }
        m.insert(7919, 42);
        assert_eq!(m.len(), 1000);
        for i in 0..1000u64 {
            let want = if i == 1 { 42 } else { i as u16 };
            assert_eq!(m.get(&(i * 7919)), Some(&want));
            assert_eq!(m.get(&(i * 7919 + 1)), None);
        }
        // The empty-slot marker is a key like any other.
        assert_eq!(m.get(&u64::MAX), None);
        m.insert(u64::MAX, 9);
        assert_eq!(m.get(&u64::MAX), Some(&9));
        assert_eq!(m.len(), 1001);
        assert_eq!(m.get(&(7919 * 1000)), None);
        let mut a: FlatMap<u128, ()> = FlatMap::default();
        assert!(!a.contains_key(&u128::MAX));
        a.insert(u128::MAX, ());
        assert!(a.contains_key(&u128::MAX) && !a.contains_key(&0));
        let mut m6: FlatMap<(u128, u32), u16> = FlatMap::default();
        m6.insert((1, 2), 3);
        assert_eq!(m6.get(&(1, 2)), Some(&3));
        assert_eq!(m6.get(&(2, 1)), None);
    }
}
