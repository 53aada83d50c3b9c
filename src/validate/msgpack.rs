//! MessagePack decoding for validation. Owns the rules a binary message must meet under
//! `--msgpack-validation` (exactly one value, no trailing bytes, at most [`MAX_DEPTH`] nested
//! containers, UTF-8 strings, no reserved type byte) and the mapping of a decoded value to JSON
//! for schema validation.
//!
//! Decoding is hand-written rather than done with `rmp-serde` or `rmpv` because the decoder must
//! (1) reject a deeply nested message without recursing, before any value is built, (2) never
//! allocate by a declared length the message does not back with bytes, (3) map non-string keys,
//! `bin` and `ext` to JSON by rules of our own (serde's `serde_json::Value` refuses all three), and
//! (4) hand out the strings it saw, borrowed from the message, to the content detectors. It is a
//! table of the format's type bytes and two passes:
//!
//! 1. [`scan`] walks the message with an explicit stack of at most [`MAX_DEPTH`] counters (no
//!    recursion), checks every declared length against the bytes left, checks UTF-8, collects the
//!    strings (keys included) and requires the value to end exactly at the message's end.
//! 2. [`to_json`] runs only on a message [`scan`] accepted, so its recursion is bounded by
//!    [`MAX_DEPTH`]; it builds the `serde_json::Value` the schema sees.
//!
//! The JSON mapping:
//!
//! | MessagePack | JSON |
//! |---|---|
//! | nil, bool | `null`, `true` / `false` |
//! | int (every width) | integer |
//! | float 32 / 64 | number (float 32 widened exactly); NaN and ±infinity become `null` |
//! | str | string |
//! | bin | string: standard base64 with padding |
//! | ext | object `{"ext": <type, -128..127>, "data": "<base64>"}` (the timestamp type -1 too) |
//! | array | array |
//! | map | object; a key that maps to a JSON string is used as is, any other key as the compact JSON text of its mapping (`1` → `"1"`, `true` → `"true"`, `[1,2]` → `"[1,2]"`); two keys with the same mapped name are an error |

use base64::Engine as _;
use serde_json::map::Entry;
use serde_json::{Map, Number, Value};

/// Most containers (arrays and maps) a value may be nested in, the outermost one included.
pub const MAX_DEPTH: usize = 64;

/// Longest JSON name a map key that is not a string may map to. A map key that is itself a map
/// with a map key, and so on, has a JSON text that doubles in length at every level (each level
/// escapes the quotes and backslashes of the one inside), so without a bound a 100-byte message
/// would take exponential time and memory to map.
pub const MAX_KEY_BYTES: usize = 1024;

/// Why a binary message is not acceptable MessagePack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MsgpackError {
    /// The message ends inside a value (or is empty), or declares more elements than it holds.
    #[error("the value is truncated")]
    Truncated,
    /// Bytes follow the first complete value.
    #[error("bytes follow the value")]
    TrailingBytes,
    /// Containers are nested deeper than [`MAX_DEPTH`].
    #[error("containers nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// The reserved type byte 0xc1.
    #[error("reserved type byte 0xc1")]
    Reserved,
    /// A `str` value that is not UTF-8.
    #[error("a string is not valid UTF-8")]
    InvalidUtf8,
    /// Two keys of one map have the same JSON name.
    #[error("a map has two keys with the same name")]
    DuplicateKey,
    /// A map key that is not a string maps to a JSON name over [`MAX_KEY_BYTES`].
    #[error("a map key's JSON name is over {MAX_KEY_BYTES} bytes")]
    KeyTooLong,
}

impl MsgpackError {
    /// The reason code reported in the audit metadata.
    pub fn reason_code(self) -> &'static str {
        match self {
            MsgpackError::Truncated => "msgpack: truncated",
            MsgpackError::TrailingBytes => "msgpack: trailing-bytes",
            MsgpackError::TooDeep => "msgpack: depth",
            MsgpackError::Reserved => "msgpack: reserved-type",
            MsgpackError::InvalidUtf8 => "msgpack: invalid-utf8",
            MsgpackError::DuplicateKey => "msgpack: duplicate-key",
            MsgpackError::KeyTooLong => "msgpack: key-too-long",
        }
    }
}

/// One item as its header describes it; containers carry their element count only.
#[derive(Debug, Clone, Copy)]
enum Item<'a> {
    Nil,
    Bool(bool),
    UInt(u64),
    Int(i64),
    F32(f32),
    F64(f64),
    Str(&'a [u8]),
    Bin(&'a [u8]),
    Ext(i8, &'a [u8]),
    Array(usize),
    Map(usize),
}

/// A cursor over the message that never reads past its end.
#[derive(Debug)]
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(data: &'a [u8]) -> Self {
        Reader { data, pos: 0 }
    }

    fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], MsgpackError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.data.len())
            .ok_or(MsgpackError::Truncated)?;
        let bytes = &self.data[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], MsgpackError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, MsgpackError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, MsgpackError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, MsgpackError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, MsgpackError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn ext(&mut self, len: usize) -> Result<Item<'a>, MsgpackError> {
        let kind = self.u8()? as i8;
        Ok(Item::Ext(kind, self.take(len)?))
    }

    /// Reads one item's header (and a scalar's body). Lengths are bounds-checked here.
    fn item(&mut self) -> Result<Item<'a>, MsgpackError> {
        let marker = self.u8()?;
        Ok(match marker {
            0x00..=0x7f => Item::UInt(u64::from(marker)),
            0x80..=0x8f => Item::Map(usize::from(marker & 0x0f)),
            0x90..=0x9f => Item::Array(usize::from(marker & 0x0f)),
            0xa0..=0xbf => Item::Str(self.take(usize::from(marker & 0x1f))?),
            0xc0 => Item::Nil,
            0xc1 => return Err(MsgpackError::Reserved),
            0xc2 => Item::Bool(false),
            0xc3 => Item::Bool(true),
            0xc4 => {
                let n = usize::from(self.u8()?);
                Item::Bin(self.take(n)?)
            }
            0xc5 => {
                let n = usize::from(self.u16()?);
                Item::Bin(self.take(n)?)
            }
            0xc6 => {
                let n = self.u32()? as usize;
                Item::Bin(self.take(n)?)
            }
            0xc7 => {
                let n = usize::from(self.u8()?);
                self.ext(n)?
            }
            0xc8 => {
                let n = usize::from(self.u16()?);
                self.ext(n)?
            }
            0xc9 => {
                let n = self.u32()? as usize;
                self.ext(n)?
            }
            0xca => Item::F32(f32::from_bits(self.u32()?)),
            0xcb => Item::F64(f64::from_bits(self.u64()?)),
            0xcc => Item::UInt(u64::from(self.u8()?)),
            0xcd => Item::UInt(u64::from(self.u16()?)),
            0xce => Item::UInt(u64::from(self.u32()?)),
            0xcf => Item::UInt(self.u64()?),
            0xd0 => Item::Int(i64::from(self.u8()? as i8)),
            0xd1 => Item::Int(i64::from(self.u16()? as i16)),
            0xd2 => Item::Int(i64::from(self.u32()? as i32)),
            0xd3 => Item::Int(self.u64()? as i64),
            0xd4 => self.ext(1)?,
            0xd5 => self.ext(2)?,
            0xd6 => self.ext(4)?,
            0xd7 => self.ext(8)?,
            0xd8 => self.ext(16)?,
            0xd9 => {
                let n = usize::from(self.u8()?);
                Item::Str(self.take(n)?)
            }
            0xda => {
                let n = usize::from(self.u16()?);
                Item::Str(self.take(n)?)
            }
            0xdb => {
                let n = self.u32()? as usize;
                Item::Str(self.take(n)?)
            }
            0xdc => Item::Array(usize::from(self.u16()?)),
            0xdd => Item::Array(self.u32()? as usize),
            0xde => Item::Map(usize::from(self.u16()?)),
            0xdf => Item::Map(self.u32()? as usize),
            0xe0..=0xff => Item::Int(i64::from(marker as i8)),
        })
    }
}

/// Checks that `data` is exactly one well-formed MessagePack value nested at most [`MAX_DEPTH`]
/// deep, and pushes every string in it (map keys included, in message order) onto `strings`.
/// Strings seen before an error stay in `strings`. Uses no recursion and allocates only what
/// `strings` needs.
pub fn scan<'a>(data: &'a [u8], strings: &mut Vec<&'a str>) -> Result<(), MsgpackError> {
    let mut reader = Reader::new(data);
    // left[0] counts the top-level value; left[d] the items still due in the container open at
    // depth d. A map of n entries is 2n items.
    let mut left = [0u64; MAX_DEPTH + 1];
    left[0] = 1;
    let mut depth = 0usize;
    loop {
        while left[depth] == 0 {
            if depth == 0 {
                return if reader.remaining() == 0 {
                    Ok(())
                } else {
                    Err(MsgpackError::TrailingBytes)
                };
            }
            depth -= 1;
        }
        left[depth] -= 1;
        let items = match reader.item()? {
            Item::Str(bytes) => {
                strings.push(std::str::from_utf8(bytes).map_err(|_| MsgpackError::InvalidUtf8)?);
                continue;
            }
            Item::Array(n) => n as u64,
            Item::Map(n) => 2 * n as u64,
            _ => continue,
        };
        if depth == MAX_DEPTH {
            return Err(MsgpackError::TooDeep);
        }
        // Every item takes at least one byte: a count above the bytes left cannot be honoured.
        if items > reader.remaining() as u64 {
            return Err(MsgpackError::Truncated);
        }
        depth += 1;
        left[depth] = items;
    }
}

/// Builds the JSON value (see the module documentation for the mapping) of a message that
/// [`scan`] accepted; on any other input it returns an error rather than recursing deeper than
/// [`MAX_DEPTH`] or allocating beyond the message size.
pub fn to_json(data: &[u8]) -> Result<Value, MsgpackError> {
    let mut builder = Builder {
        reader: Reader::new(data),
    };
    let value = builder.value(0)?;
    if builder.reader.remaining() != 0 {
        return Err(MsgpackError::TrailingBytes);
    }
    Ok(value)
}

/// Decodes a message completely: [`scan`] then [`to_json`].
pub fn decode<'a>(data: &'a [u8], strings: &mut Vec<&'a str>) -> Result<Value, MsgpackError> {
    scan(data, strings)?;
    to_json(data)
}

struct Builder<'a> {
    reader: Reader<'a>,
}

fn base64(bytes: &[u8]) -> Value {
    Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
}

fn float(value: f64) -> Value {
    Number::from_f64(value).map_or(Value::Null, Value::Number)
}

impl Builder<'_> {
    /// The value at nesting `depth` (the number of containers around it).
    fn value(&mut self, depth: usize) -> Result<Value, MsgpackError> {
        Ok(match self.reader.item()? {
            Item::Nil => Value::Null,
            Item::Bool(b) => Value::Bool(b),
            Item::UInt(n) => Value::Number(n.into()),
            Item::Int(n) => Value::Number(n.into()),
            Item::F32(f) => float(f64::from(f)),
            Item::F64(f) => float(f),
            Item::Str(bytes) => Value::String(
                std::str::from_utf8(bytes)
                    .map_err(|_| MsgpackError::InvalidUtf8)?
                    .to_owned(),
            ),
            Item::Bin(bytes) => base64(bytes),
            Item::Ext(kind, bytes) => {
                let mut object = Map::new();
                object.insert("ext".to_owned(), Value::Number(kind.into()));
                object.insert("data".to_owned(), base64(bytes));
                Value::Object(object)
            }
            Item::Array(n) => {
                self.open(depth, n)?;
                let mut array = Vec::with_capacity(n);
                for _ in 0..n {
                    array.push(self.value(depth + 1)?);
                }
                Value::Array(array)
            }
            Item::Map(n) => {
                self.open(depth, n.saturating_mul(2))?;
                let mut object = Map::new();
                for _ in 0..n {
                    let key = match self.value(depth + 1)? {
                        Value::String(key) => key,
                        other => {
                            let text = other.to_string();
                            if text.len() > MAX_KEY_BYTES {
                                return Err(MsgpackError::KeyTooLong);
                            }
                            text
                        }
                    };
                    let value = self.value(depth + 1)?;
                    match object.entry(key) {
                        Entry::Vacant(entry) => {
                            entry.insert(value);
                        }
                        Entry::Occupied(_) => return Err(MsgpackError::DuplicateKey),
                    }
                }
                Value::Object(object)
            }
        })
    }

    /// Guards a container: the depth and its item count against the bytes left.
    fn open(&self, depth: usize, items: usize) -> Result<(), MsgpackError> {
        if depth >= MAX_DEPTH {
            return Err(MsgpackError::TooDeep);
        }
        if items > self.reader.remaining() {
            return Err(MsgpackError::Truncated);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn decoded(data: &[u8]) -> Result<Value, MsgpackError> {
        decode(data, &mut Vec::new())
    }

    #[test]
    fn map_keys_nested_in_map_keys_are_bounded() {
        // Found by the msgpack fuzz target: {{{…{1: 1}…: 1}: 1}: 1}, a map whose key is a map
        // whose key is a map, 60 levels deep in 121 bytes; each level's key is the JSON text of
        // the level inside, escaped again, so the text doubled per level and to_json never
        // finished.
        let levels = 60;
        let mut data = vec![0x81; levels];
        data.extend([0x01, 0x01]);
        data.extend(std::iter::repeat_n(0x01, levels - 1));
        assert!(scan(&data, &mut Vec::new()).is_ok());
        let started = std::time::Instant::now();
        assert_eq!(to_json(&data), Err(MsgpackError::KeyTooLong));
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        // A few levels are still mapped as documented.
        let data = [0x81, 0x81, 0x01, 0x02, 0x03];
        assert_eq!(decoded(&data).unwrap(), json!({"{\"1\":2}": 3}));
    }

    /// A fixmap of the trading order, written by hand.
    fn order() -> Vec<u8> {
        let mut m = vec![0x83];
        m.extend(b"\xa6action\xa3buy");
        m.extend(b"\xa6symbol\xa4AAPL");
        m.extend(b"\xa8quantity\x0a");
        m
    }

    #[test]
    fn decodes_a_map_and_collects_strings() {
        let data = order();
        let mut strings = Vec::new();
        let value = decode(&data, &mut strings).unwrap();
        assert_eq!(
            value,
            json!({"action": "buy", "symbol": "AAPL", "quantity": 10})
        );
        assert_eq!(strings, vec!["action", "buy", "symbol", "AAPL", "quantity"]);
    }

    #[test]
    fn scalars_map_to_json() {
        assert_eq!(decoded(&[0xc0]).unwrap(), Value::Null);
        assert_eq!(decoded(&[0xc3]).unwrap(), json!(true));
        assert_eq!(decoded(&[0xff]).unwrap(), json!(-1));
        assert_eq!(decoded(&[0xd0, 0x80]).unwrap(), json!(-128));
        assert_eq!(decoded(&[0xcd, 0x01, 0x00]).unwrap(), json!(256));
        assert_eq!(
            decoded(&[0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).unwrap(),
            json!(u64::MAX)
        );
        assert_eq!(
            decoded(&[0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0]).unwrap(),
            json!(i64::MIN)
        );
        assert_eq!(decoded(&[0xca, 0x3f, 0xc0, 0, 0]).unwrap(), json!(1.5));
        let mut nan = vec![0xcb];
        nan.extend(f64::NAN.to_be_bytes());
        assert_eq!(decoded(&nan).unwrap(), Value::Null);
        assert_eq!(decoded(&[0xc4, 2, 0xff, 0x00]).unwrap(), json!("/wA="));
        assert_eq!(
            decoded(&[0xd6, 0xff, 0, 0, 0, 1]).unwrap(),
            json!({"ext": -1, "data": "AAAAAQ=="})
        );
        assert_eq!(decoded(&[0xd9, 2, b'h', b'i']).unwrap(), json!("hi"));
    }

    #[test]
    fn non_string_keys_use_their_json_text() {
        // {1: "a", true: "b", nil: "c", [1]: "d"}
        let data = [
            0x84, 0x01, 0xa1, b'a', 0xc3, 0xa1, b'b', 0xc0, 0xa1, b'c', 0x91, 0x01, 0xa1, b'd',
        ];
        assert_eq!(
            decoded(&data).unwrap(),
            json!({"1": "a", "true": "b", "null": "c", "[1]": "d"})
        );
        // {1: 0, "1": 0} collide.
        assert_eq!(
            decoded(&[0x82, 0x01, 0x00, 0xa1, b'1', 0x00]),
            Err(MsgpackError::DuplicateKey)
        );
        assert_eq!(
            decoded(&[0x82, 0xa1, b'k', 0x00, 0xa1, b'k', 0x01]),
            Err(MsgpackError::DuplicateKey)
        );
    }

    #[test]
    fn trailing_bytes_and_truncation_are_rejected() {
        let mut data = order();
        data.push(0xc0);
        assert_eq!(decoded(&data), Err(MsgpackError::TrailingBytes));
        let data = order();
        for cut in 0..data.len() {
            assert_eq!(
                decoded(&data[..cut]),
                Err(MsgpackError::Truncated),
                "cut at {cut}"
            );
        }
        assert_eq!(decoded(&[0xc1]), Err(MsgpackError::Reserved));
        assert_eq!(decoded(&[0xa2, 0xff, 0xfe]), Err(MsgpackError::InvalidUtf8));
    }

    #[test]
    fn declared_lengths_beyond_the_message_are_truncation() {
        // array32 and map32 of 4 billion elements, str32 and bin32 of 4 GB, in a few bytes.
        for data in [
            &[0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0][..],
            &[0xdf, 0xff, 0xff, 0xff, 0xff, 0xc0, 0xc0][..],
            &[0xdb, 0xff, 0xff, 0xff, 0xff, b'a'][..],
            &[0xc6, 0xff, 0xff, 0xff, 0xff, 0x00][..],
            &[0xc9, 0xff, 0xff, 0xff, 0xff, 0x01, 0x00][..],
        ] {
            assert_eq!(decoded(data), Err(MsgpackError::Truncated), "{data:x?}");
            assert_eq!(to_json(data), Err(MsgpackError::Truncated), "{data:x?}");
        }
    }

    #[test]
    fn depth_limit_without_recursion() {
        let nested = |levels: usize| {
            let mut data = vec![0x91; levels];
            data.push(0xc0);
            data
        };
        assert!(decoded(&nested(MAX_DEPTH)).is_ok());
        assert_eq!(decoded(&nested(MAX_DEPTH + 1)), Err(MsgpackError::TooDeep));
        assert_eq!(decoded(&nested(1_000_000)), Err(MsgpackError::TooDeep));
        // Maps nest the same way (as values and as keys), and an empty container still counts.
        let mut maps = [0x81, 0xa1, b'k'].repeat(MAX_DEPTH);
        maps.push(0x80);
        assert_eq!(decoded(&maps), Err(MsgpackError::TooDeep));
        let keys = vec![0x81; 100_000];
        assert_eq!(decoded(&keys), Err(MsgpackError::TooDeep));
        // The builder refuses too when called on input scan never saw.
        assert_eq!(to_json(&nested(100_000)), Err(MsgpackError::TooDeep));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A small xorshift generator: deterministic, no dependency.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut data = Vec::new();
        for _ in 0..20_000 {
            data.clear();
            let len = (next() % 48) as usize;
            for _ in 0..len {
                // Bias towards container and length markers.
                let byte = match next() % 4 {
                    0 => [0x91, 0x81, 0xdc, 0xdd, 0xde, 0xdf, 0xc6, 0xdb][(next() % 8) as usize],
                    _ => next() as u8,
                };
                data.push(byte);
            }
            let mut strings = Vec::new();
            let scanned = scan(&data, &mut strings);
            let built = to_json(&data);
            if scanned.is_ok() {
                // What scan accepts, the builder accepts unless keys collide.
                assert!(
                    built.is_ok() || built == Err(MsgpackError::DuplicateKey),
                    "{data:x?}: {built:?}"
                );
            }
        }
    }
}
