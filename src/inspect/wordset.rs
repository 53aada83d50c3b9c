//! A fixed set of short ASCII words (keywords, command names) with a constant-time lookup: an
//! open-addressing table over an FNV-1a hash, built once on first use. Matching a word costs one
//! hash and usually one comparison, instead of a memcmp per candidate; most words that are not in
//! the set (the ordinary words of a message) are turned away before that by a 4096-bit filter on
//! their length, first and last byte.

use std::sync::OnceLock;

/// Slots of the index: a power of two well above any word list here (load stays under 0.5).
const SLOTS: usize = 1024;

/// Bits of the filter.
const FILTER_BITS: usize = 4096;

/// The index of one word list. The list holds entries of any type; `key` says which word an
/// entry stands for.
pub struct WordSet<T: 'static = &'static [u8]> {
    entries: &'static [T],
    key: fn(&T) -> &[u8],
    index: OnceLock<Box<Index>>,
}

struct Index {
    /// Slot value = position in the list + 1, 0 = empty.
    slots: [u16; SLOTS],
    /// Bit [`filter_bit`] of every word in the list.
    filter: [u64; FILTER_BITS / 64],
}

/// A word's bit in the filter: its length, first and last byte, mixed.
#[inline]
fn filter_bit(word: &[u8]) -> usize {
    let (Some(&first), Some(&last)) = (word.first(), word.last()) else {
        return 0;
    };
    let k = (u32::from(first) << 16) | (u32::from(last) << 8) | (word.len() as u32 & 0xff);
    (k.wrapping_mul(0x9e37_79b1) >> 20) as usize
}

fn hash(word: &[u8]) -> usize {
    let mut h: u32 = 0x811c_9dc5;
    for &b in word {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    h as usize
}

impl WordSet {
    /// A set over `words` (at most 511 words, each distinct).
    pub const fn new(words: &'static [&'static [u8]]) -> Self {
        WordSet::with_key(words, |w| w)
    }
}

impl<T> WordSet<T> {
    /// A set over `entries` keyed by `key` (at most 511 entries, keys distinct).
    pub const fn with_key(entries: &'static [T], key: fn(&T) -> &[u8]) -> Self {
        WordSet {
            entries,
            key,
            index: OnceLock::new(),
        }
    }

    fn index(&self) -> &Index {
        self.index.get_or_init(|| {
            let mut t = Box::new(Index {
                slots: [0u16; SLOTS],
                filter: [0u64; FILTER_BITS / 64],
            });
            for (i, e) in self.entries.iter().enumerate().take(SLOTS / 2 - 1) {
                let word = (self.key)(e);
                let mut h = hash(word) % SLOTS;
                while t.slots[h] != 0 {
                    h = (h + 1) % SLOTS;
                }
                t.slots[h] = u16::try_from(i + 1).unwrap_or(0);
                let bit = filter_bit(word);
                t.filter[bit / 64] |= 1 << (bit % 64);
            }
            t
        })
    }

    /// The entry for `word`, if there is one.
    #[inline]
    pub fn get(&self, word: &[u8]) -> Option<&'static T> {
        self.position(word).and_then(|p| self.entries.get(p))
    }

    /// The position of `word` in the list, if it is there.
    #[inline]
    pub fn position(&self, word: &[u8]) -> Option<usize> {
        let index = self.index();
        let bit = filter_bit(word);
        if index.filter[bit / 64] & (1 << (bit % 64)) == 0 {
            return None;
        }
        self.probe(index, word)
    }

    /// The hash table lookup, for words the filter let through.
    #[inline(never)]
    fn probe(&self, index: &Index, word: &[u8]) -> Option<usize> {
        let mut h = hash(word) % SLOTS;
        loop {
            let slot = usize::from(index.slots[h]);
            if slot == 0 {
                return None;
            }
            if self
                .entries
                .get(slot - 1)
                .is_some_and(|e| (self.key)(e) == word)
            {
                return Some(slot - 1);
            }
            h = (h + 1) % SLOTS;
        }
    }

    /// A filter that lets through every word of the sets in `sets` (a few of each thousand other
    /// words too): one test before looking `word` up in several sets.
    pub fn union_filter(sets: &[&Self]) -> WordFilter {
        let mut bits = [0u64; FILTER_BITS / 64];
        for set in sets {
            for (b, f) in bits.iter_mut().zip(set.index().filter) {
                *b |= f;
            }
        }
        WordFilter { bits }
    }

    /// Is `word` in the list?
    #[inline]
    pub fn contains(&self, word: &[u8]) -> bool {
        self.position(word).is_some()
    }
}

/// The filter of a union of [`WordSet`]s (see [`WordSet::union_filter`]).
pub struct WordFilter {
    bits: [u64; FILTER_BITS / 64],
}

impl WordFilter {
    /// Can `word` be in one of the sets? (`false` is certain.)
    #[inline]
    pub fn may_contain(&self, word: &[u8]) -> bool {
        let bit = filter_bit(word);
        self.bits[bit / 64] & (1 << (bit % 64)) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static SET: WordSet = WordSet::new(&[b"select", b"union", b"id", b"a"]);

    #[test]
    fn finds_members_only() {
        assert_eq!(SET.position(b"union"), Some(1));
        assert!(SET.contains(b"a"));
        assert!(!SET.contains(b"selec"));
        assert!(!SET.contains(b""));
        assert!(!SET.contains(b"unions"));
    }

    #[test]
    fn a_union_filter_lets_every_member_through() {
        static OTHER: WordSet = WordSet::new(&[b"whoami", b"sleep"]);
        let filter = WordSet::union_filter(&[&SET, &OTHER]);
        for word in [&b"select"[..], b"union", b"id", b"a", b"whoami", b"sleep"] {
            assert!(filter.may_contain(word));
        }
    }
}
