//! Cost of message validation next to the cost of just parsing the message, for a ~100-byte
//! trading order checked against `examples/schemas/trading.json`.
//!
//! `cargo bench --bench validate` runs the criterion benchmarks, then prints a summary measured in
//! the same run: parsing, parsing + validation, the difference, and MessagePack decode + validation.
//! The figures are recorded in `docs/validation.md`.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use criterion::{Criterion, Throughput};
use sentinel_ws_agent::model::Direction;
use sentinel_ws_agent::options::{PolicyOptions, SchemaSource};
use sentinel_ws_agent::validate::{json_schema, msgpack, Validator};

/// 108 bytes.
const ORDER: &[u8] = br#"{"action":"buy","symbol":"AAPL","quantity":100,"price":187.25,"order_type":"limit","client_order_id":"c-42"}"#;
/// Fails two keywords (reason codes are built only for failures).
const BAD_ORDER: &[u8] = br#"{"action":"buy","symbol":"aapl","quantity":0,"price":187.25,"order_type":"limit","client_order_id":"c-42"}"#;

fn validator() -> Validator {
    let schema: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "examples",
        "schemas",
        "trading.json",
    ]
    .iter()
    .collect();
    Validator::new(&PolicyOptions {
        json_schema: Some(SchemaSource::Path(schema)),
        msgpack_validation: true,
        ..PolicyOptions::default()
    })
    .expect("trading schema compiles")
}

/// The same order as MessagePack (a fixmap of six entries, 83 bytes).
fn order_msgpack() -> Vec<u8> {
    let mut m = vec![0x86];
    m.extend(b"\xa6action\xa3buy");
    m.extend(b"\xa6symbol\xa4AAPL");
    m.extend(b"\xa8quantity\x64");
    m.extend(b"\xa5price\xcb");
    m.extend(187.25f64.to_be_bytes());
    m.extend(b"\xaaorder_type\xa5limit");
    m.extend(b"\xafclient_order_id\xa4c-42");
    m
}

fn benches(c: &mut Criterion) {
    let validator = validator();
    let packed = order_msgpack();
    assert!(validator.check_text(ORDER).is_ok());
    assert!(validator.check_text(BAD_ORDER).is_err());
    assert!(validator
        .check_msgpack(&packed, Direction::ClientToServer, &mut Vec::new())
        .is_ok());

    let mut group = c.benchmark_group("json");
    group.throughput(Throughput::Bytes(ORDER.len() as u64));
    group.bench_function("parse serde_json::Value", |b| {
        b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(ORDER)).unwrap())
    });
    group.bench_function("parse strict (agent)", |b| {
        b.iter(|| json_schema::parse_strict(black_box(ORDER)).unwrap())
    });
    group.bench_function("parse + validate (check_text)", |b| {
        b.iter(|| validator.check_text(black_box(ORDER)))
    });
    group.bench_function("invalid: parse + validate + reason codes", |b| {
        b.iter(|| validator.check_text(black_box(BAD_ORDER)))
    });
    group.finish();

    let mut group = c.benchmark_group("msgpack");
    group.throughput(Throughput::Bytes(packed.len() as u64));
    group.bench_function("decode (scan + to_json)", |b| {
        b.iter(|| msgpack::decode(black_box(&packed), &mut Vec::new()).unwrap())
    });
    group.bench_function("decode + validate (check_msgpack)", |b| {
        b.iter(|| {
            validator.check_msgpack(
                black_box(&packed),
                Direction::ClientToServer,
                &mut Vec::new(),
            )
        })
    });
    group.finish();
}

/// Calls per timed round: short rounds (about 10 ms) so that, on a machine shared with other
/// work, some rounds run undisturbed; the best one is reported.
const ROUND: u32 = 10_000;
/// Timed rounds per figure.
const ROUNDS: usize = 41;

/// Best of [`ROUNDS`] rounds, in nanoseconds per call.
fn per_call(mut f: impl FnMut()) -> f64 {
    for _ in 0..ROUND * 10 {
        f();
    }
    (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..ROUND {
                f();
            }
            start.elapsed().as_nanos() as f64 / f64::from(ROUND)
        })
        .fold(f64::INFINITY, f64::min)
}

fn summary() {
    let validator = validator();
    let packed = order_msgpack();
    let parse = per_call(|| {
        black_box(serde_json::from_slice::<serde_json::Value>(black_box(ORDER)).unwrap());
    });
    let strict = per_call(|| {
        black_box(json_schema::parse_strict(black_box(ORDER)).unwrap());
    });
    let checked = per_call(|| {
        black_box(validator.check_text(black_box(ORDER))).unwrap();
    });
    let invalid = per_call(|| {
        black_box(validator.check_text(black_box(BAD_ORDER))).unwrap_err();
    });
    let decode = per_call(|| {
        black_box(msgpack::decode(black_box(&packed), &mut Vec::new()).unwrap());
    });
    let packed_checked = per_call(|| {
        black_box(validator.check_msgpack(
            black_box(&packed),
            Direction::ClientToServer,
            &mut Vec::new(),
        ))
        .unwrap();
    });
    println!();
    println!("validation summary (best of {ROUNDS} rounds of {ROUND} calls, wall time per call)");
    println!(
        "  JSON text, {} bytes, examples/schemas/trading.json",
        ORDER.len()
    );
    println!("    parse only (serde_json::from_slice to Value) {parse:>8.0} ns");
    println!("    parse strict (duplicate keys refused)        {strict:>8.0} ns");
    println!("    parse strict + validate (check_text)         {checked:>8.0} ns");
    println!(
        "    validation beyond plain parsing              {:>8.0} ns",
        checked - parse
    );
    println!("    invalid message, with reason codes           {invalid:>8.0} ns");
    println!("  MessagePack, {} bytes, same schema", packed.len());
    println!("    decode (scan + to_json)                      {decode:>8.0} ns");
    println!("    decode + validate (check_msgpack)            {packed_checked:>8.0} ns");
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    benches(&mut criterion);
    criterion.final_summary();
    // `cargo bench` passes `--bench`; `cargo test --benches` only smoke-tests the benchmarks.
    if std::env::args().any(|arg| arg == "--bench") {
        summary();
    }
}
