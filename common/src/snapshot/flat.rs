//! A small open-addressing hash map for the snapshot's hot lookups (VIP by
//! address/port/protocol, VIP addresses, DNAT backend endpoints).
//!
//! Built once per snapshot, read per packet: power-of-two slots at most half full,
//! linear probing, one multiply to hash, keys compared in place. A lookup is
//! typically one cache line and no branch mispredictions beyond the first compare,
//! several times faster than a general-purpose `HashMap` for these tiny tables.

/// Keys the flat map can hash.
pub trait FlatKey: Copy + Eq {
    fn flat_hash(&self) -> u64;
}

impl FlatKey for u64 {
    #[inline(always)]
    fn flat_hash(&self) -> u64 {
        (*self ^ (*self >> 29)).wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }
}

impl FlatKey for u32 {
    #[inline(always)]
    fn flat_hash(&self) -> u64 {
        u64::from(*self).flat_hash()
    }
}

impl FlatKey for u128 {
    #[inline(always)]
    fn flat_hash(&self) -> u64 {
        ((*self as u64) ^ ((*self >> 64) as u64).rotate_left(17)).flat_hash()
    }
}

impl FlatKey for (u128, u32) {
    #[inline(always)]
    fn flat_hash(&self) -> u64 {
        (self.0.flat_hash() ^ u64::from(self.1)).flat_hash()
    }
}

/// An immutable-after-build open-addressing map.
#[derive(Debug, Clone)]
pub struct FlatMap<K, V> {
    slots: Box<[Option<(K, V)>]>,
    mask: usize,
    len: usize,
}

impl<K: FlatKey, V: Copy> Default for FlatMap<K, V> {
    fn default() -> Self {
        FlatMap { slots: vec![None; 1].into_boxed_slice(), mask: 0, len: 0 }
    }
}

impl<K: FlatKey, V: Copy> FlatMap<K, V> {
    /// Insert or replace (building; not for the packet path).
    pub fn insert(&mut self, key: K, value: V) {
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let mut i = self.index(&key);
        loop {
            match &mut self.slots[i] {
                Some((k, v)) if *k == key => {
                    *v = value;
                    return;
                }
                Some(_) => i = (i + 1) & self.mask,
                slot @ None => {
                    *slot = Some((key, value));
                    self.len += 1;
                    return;
                }
            }
        }
    }

    fn grow(&mut self) {
        let n = (self.slots.len() * 2).max(8);
        let old = std::mem::replace(&mut self.slots, vec![None; n].into_boxed_slice());
        self.mask = n - 1;
        self.len = 0;
        for (k, v) in old.iter().flatten() {
            self.insert(*k, *v);
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
            match &self.slots[i] {
                Some((k, v)) if k == key => return Some(v),
                Some(_) => i = (i + 1) & self.mask,
                None => return None,
            }
        }
    }

    #[inline]
    pub fn contains_key(&self, key: &K) -> bool {
        self.get(key).is_some()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.len
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
        let mut m6: FlatMap<(u128, u32), u16> = FlatMap::default();
        m6.insert((1, 2), 3);
        assert_eq!(m6.get(&(1, 2)), Some(&3));
        assert_eq!(m6.get(&(2, 1)), None);
    }
}
