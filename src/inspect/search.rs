//! Substring search shared by the detectors: one place for what each of them needs, written so
//! that a failed search costs a `memchr` scan rather than a comparison at every byte position.
//!
//! - [`find`] / [`contains`]: one needle. The needle's rarest byte (by a rough table of how
//!   common bytes are in text) is looked for with `memchr` (vectorized), and only where it occurs
//!   is the whole needle compared.
//! - [`Needles`]: a fixed list of needles searched in one pass over the haystack; a table of
//!   the needles' first bytes rejects most positions with one load.

/// Haystacks shorter than this are scanned with a plain loop.
const SHORT: usize = 32;

/// [`commonness`] of every byte, looked up in [`rarest`].
static COMMONNESS: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = commonness(b as u8);
        b += 1;
    }
    table
};

/// How common byte `b` is in the text messages the detectors read (higher is more common): a
/// rough English-letter order, blanks and digits common, punctuation rare.
const fn commonness(b: u8) -> u8 {
    match b {
        b' ' => 255,
        b'e' => 250,
        b't' => 245,
        b'a' => 240,
        b'o' => 235,
        b'i' => 230,
        b'n' => 225,
        b's' => 220,
        b'r' => 215,
        b'h' => 210,
        b'l' => 205,
        b'd' => 200,
        b'c' => 195,
        b'u' => 190,
        b'm' => 185,
        b'f' => 180,
        b'p' => 175,
        b'g' => 170,
        b'w' => 165,
        b'y' => 160,
        b'b' => 155,
        b'v' => 150,
        b'k' => 145,
        b'.' | b',' => 140,
        b'0'..=b'9' => 130,
        b'A'..=b'Z' => 120,
        b'x' | b'j' | b'q' | b'z' => 100,
        _ => 60,
    }
}

/// The byte of `needle` least likely to occur in text, and its offset (the first of equals).
fn rarest(needle: &[u8]) -> (usize, u8) {
    let mut best = (0, needle[0]);
    let mut least = COMMONNESS[usize::from(needle[0])];
    for (k, &b) in needle.iter().enumerate().skip(1) {
        let c = COMMONNESS[usize::from(b)];
        if c < least {
            best = (k, b);
            least = c;
        }
    }
    best
}

/// Where `needle` first occurs in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    // The needle's rarest byte is looked for; where it occurs, the whole needle is compared.
    let (offset, anchor) = rarest(needle);
    // The anchor of a match starting at `start` (0..=last) stands at `start + offset`.
    let end = hay.len() - needle.len() + offset + 1;
    let mut i = offset;
    while i < end {
        let window = &hay[i..end];
        // memchr's set-up costs more than a short plain loop.
        let found = if window.len() < SHORT {
            window.iter().position(|&b| b == anchor)
        } else {
            memchr::memchr(anchor, window)
        };
        let start = i + found? - offset;
        // Anchors are found in order, so the first match is the leftmost. The needle's first
        // and last bytes reject most candidates before a whole comparison.
        let candidate = &hay[start..start + needle.len()];
        if candidate[0] == needle[0]
            && candidate[needle.len() - 1] == needle[needle.len() - 1]
            && candidate == needle
        {
            return Some(start);
        }
        i = start + offset + 1;
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
        let hays: [&[u8]; 9] = [
            b"",
            b"a",
            b"abcabd",
            b"aaaaab",
            b"xyz{{7*7}}",
            b"ab",
            b"the alias of an alias: alias x=y",
            b"zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzxz",
            b"do done then fi; while true; do sleep 1; done",
        ];
        let needles: [&[u8]; 10] = [
            b"a", b"ab", b"abd", b"aab", b"}}", b"abc", b"alias", b"xz", b"done", b"; do",
        ];
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
