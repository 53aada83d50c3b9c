//! Streaming UTF-8 validation of one text message across its fragments (RFC 6455 section 8.1: a
//! text message that is not valid UTF-8 fails the connection). A fragment may end inside a
//! character; the bytes of the unfinished character are carried to the next fragment, so the
//! verdict is the one the whole message would get, reached on the first fragment that proves it
//! invalid.

/// The validation state of the text message in progress on one direction.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Utf8Stream {
    /// The first bytes of a character the previous fragment ended inside.
    carry: [u8; 3],
    carry_len: u8,
}

/// The message is not UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidUtf8;

impl Utf8Stream {
    /// Forgets the message in progress (a new message starts).
    pub fn reset(&mut self) {
        self.carry_len = 0;
    }

    /// Takes the next fragment's bytes; an error as soon as they cannot be part of valid UTF-8.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<(), InvalidUtf8> {
        if self.carry_len > 0 {
            let have = usize::from(self.carry_len);
            let take = bytes.len().min(4 - have);
            let mut joined = [0u8; 4];
            joined[..have].copy_from_slice(&self.carry[..have]);
            joined[have..have + take].copy_from_slice(&bytes[..take]);
            match std::str::from_utf8(&joined[..have + take]) {
                Ok(_) => {
                    self.carry_len = 0;
                    bytes = &bytes[take..];
                }
                Err(error) if error.valid_up_to() > 0 => {
                    // The carried character is complete; what follows it is checked below.
                    self.carry_len = 0;
                    bytes = &bytes[error.valid_up_to() - have..];
                }
                Err(error) if error.error_len().is_none() => {
                    // Still inside the same character: every input byte went into the carry.
                    self.carry[..have + take].copy_from_slice(&joined[..have + take]);
                    self.carry_len = (have + take) as u8;
                    return Ok(());
                }
                Err(_) => return Err(InvalidUtf8),
            }
        }
        match std::str::from_utf8(bytes) {
            Ok(_) => Ok(()),
            Err(error) if error.error_len().is_none() => {
                let rest = &bytes[error.valid_up_to()..];
                self.carry[..rest.len()].copy_from_slice(rest);
                self.carry_len = rest.len() as u8;
                Ok(())
            }
            Err(_) => Err(InvalidUtf8),
        }
    }

    /// The message ended: an unfinished character makes it invalid. Resets the state.
    pub fn finish(&mut self) -> Result<(), InvalidUtf8> {
        let unfinished = self.carry_len > 0;
        self.carry_len = 0;
        if unfinished {
            Err(InvalidUtf8)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(fragments: &[&[u8]]) -> Result<(), InvalidUtf8> {
        let mut stream = Utf8Stream::default();
        for fragment in fragments {
            stream.feed(fragment)?;
        }
        stream.finish()
    }

    #[test]
    fn characters_split_across_fragments_are_valid() {
        let text = "año € 𝄞 ok".as_bytes();
        for first in 0..=text.len() {
            for second in first..=text.len() {
                let parts = [&text[..first], &text[first..second], &text[second..]];
                assert_eq!(whole(&parts), Ok(()), "split at {first},{second}");
            }
        }
    }

    #[test]
    fn invalid_messages_fail_however_they_are_split() {
        let bad: [&[u8]; 6] = [
            b"\xc0\xbcscript\xc0\xbe",
            b"ok \xe2\x82",
            b"\xff",
            b"a\xed\xa0\x80b",
            b"\xf4\x90\x80\x80",
            b"\xe2\x28\xa1",
        ];
        for text in bad {
            assert!(std::str::from_utf8(text).is_err());
            for cut in 0..=text.len() {
                assert_eq!(
                    whole(&[&text[..cut], &text[cut..]]),
                    Err(InvalidUtf8),
                    "{text:?} cut at {cut}"
                );
            }
        }
    }

    #[test]
    fn matches_the_standard_library_on_pseudo_random_bytes() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..4000 {
            let mut bytes = Vec::new();
            for _ in 0..(seed % 13) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let pick = [
                    0x41, 0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xf0, 0x9d, 0x84, 0x9e, 0xff,
                ];
                bytes.push(pick[(seed % pick.len() as u64) as usize]);
            }
            let cut = (seed as usize) % (bytes.len() + 1);
            let expected = std::str::from_utf8(&bytes)
                .map(|_| ())
                .map_err(|_| InvalidUtf8);
            assert_eq!(
                whole(&[&bytes[..cut], &bytes[cut..]]),
                expected,
                "{bytes:?}"
            );
        }
    }
}
