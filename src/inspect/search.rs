//! Substring search shared by the detectors: one place for what each of them needs, written so
//! that a failed search costs a `memchr` scan rather than a comparison at every byte position.
//!
//! - [`find`] / [`contains`]: one needle. The first byte of the needle is looked for with
//!   `memchr` (vectorized), and only where it occurs are the other bytes compared.
//! - [`Needles`]: a fixed list of needles searched in one pass over the haystack; a table of
//!   the needles' first bytes rejects most positions with one load.

/// Haystacks shorter than this are scanned with a plain loop.
const SHORT: usize = 32;

/// Where `needle` first occurs in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    if hay.len() < needle.len() {
        return None;
    }
    // Candidate starts: positions 0..=last.
    let last = hay.len() - needle.len();
    let mut i = 0;
    while i <= last {
        let window = &hay[i..=last];
        // memchr's set-up costs more than a short plain loop.
        let found = if window.len() < SHORT {
            window.iter().position(|&b| b == first)
        } else {
            memchr::memchr(first, window)
        };
        let p = i + found?;
        if hay[p + 1..].starts_with(rest) {
            return Some(p);
        }
        i = p + 1;
    }
    None
}

/// Does `needle` occur in `hay`?
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    find(hay, needle).is_some()
}

/// A fixed list of needles with a first-byte filter (built at compile time).
pub struct Needles {
    list: &'static [&'static [u8]],
    /// Which bytes start some needle.
    first: [bool; 256],
}

impl Needles {
    /// The set of `list` (no empty needle).
    pub const fn new(list: &'static [&'static [u8]]) -> Self {
        let mut first = [false; 256];
        let mut k = 0;
        while k < list.len() {
            first[list[k][0] as usize] = true;
            k += 1;
        }
        Needles { list, first }
    }

    /// Does any of the needles occur in `hay`? One pass; at a position whose byte starts some
    /// needle, the needles are compared there.
    pub fn any_in(&self, hay: &[u8]) -> bool {
        hay.iter().enumerate().any(|(i, &b)| {
            self.first[usize::from(b)] && self.list.iter().any(|n| hay[i..].starts_with(n))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_agrees_with_a_naive_search() {
        let hays: [&[u8]; 6] = [b"", b"a", b"abcabd", b"aaaaab", b"xyz{{7*7}}", b"ab"];
        let needles: [&[u8]; 6] = [b"a", b"ab", b"abd", b"aab", b"}}", b"abc"];
        for hay in hays {
            for needle in needles {
                let naive = hay.windows(needle.len()).position(|w| w == needle);
                assert_eq!(find(hay, needle), naive, "{hay:?} {needle:?}");
            }
        }
        assert_eq!(find(b"abc", b""), None);
    }

    #[test]
    fn needles_match_anywhere() {
        static SET: Needles = Needles::new(&[b"/etc/passwd", b"win.ini", b".ssh/"]);
        assert!(SET.any_in(b"../../etc/passwd"));
        assert!(SET.any_in(b"c:\\win.ini"));
        assert!(SET.any_in(b"~/.ssh/id_rsa"));
        assert!(!SET.any_in(b"/etc/passw"));
        assert!(!SET.any_in(b""));
    }
}
