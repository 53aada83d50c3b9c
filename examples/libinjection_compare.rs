//! Measures libinjection (the pure-Rust port `libinjectionrs`) as a second opinion beside the
//! agent's own detectors, on a labeled JSONL corpus (the format of `corpus_eval`).
//!
//! ```text
//! cargo run --release --features libinjection-compare --example libinjection_compare -- PATH.jsonl
//! ```
//!
//! For every core row it asks the agent's inspection pipeline (default policy, a complete
//! client-to-server text message, the row's text as it stands) and libinjection's SQLi and XSS
//! modes on the same text, then prints per class the recall of the agent alone, of libinjection
//! alone and of the two combined (a row counts as detected when either flags it), and the share
//! of benign rows each flags, for three combinations: SQLi mode only, XSS mode only, both. Last,
//! the throughput of each on the same texts (this thread's wall time of the fastest of three
//! passes), so the cost of a combination is read beside its gain.
//!
//! The decision this measurement supports is written in `docs/detection.md` ("libinjection as a
//! second opinion"). The example is built only with the `libinjection-compare` feature, so the
//! agent itself never links libinjection.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sentinel_ws_agent::inspect::MessagePart;
use sentinel_ws_agent::limits::reassembly::MessageKind;
use sentinel_ws_agent::model::{AuditTag, Direction, Verdict};
use sentinel_ws_agent::options::PolicyOptions;
use sentinel_ws_agent::pipeline::{self, InspectJob, PipelineScratch};
use sentinel_ws_agent::policy::Policy;
use serde::Deserialize;

#[derive(Deserialize)]
struct Row {
    text: String,
    label: String,
    #[serde(default)]
    tier: Option<String>,
}

/// What each opinion said about one row.
#[derive(Default, Clone, Copy)]
struct Opinions {
    ours: bool,
    sqli: bool,
    xss: bool,
}

/// The combinations measured: which of libinjection's modes join the agent's verdict.
const MODES: [(&str, bool, bool); 3] = [
    ("sqli mode", true, false),
    ("xss mode", false, true),
    ("both modes", true, true),
];

/// Row counts of one class under one combination.
#[derive(Default)]
struct Tally {
    rows: usize,
    ours: usize,
    lib: usize,
    combined: usize,
}

fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: libinjection_compare PATH.jsonl");
        return ExitCode::from(2);
    };
    let rows = match read_rows(&path) {
        Ok(rows) => rows,
        Err(e) => {
            eprintln!("cannot read {path}: {e}");
            return ExitCode::from(2);
        }
    };
    let policy = match Policy::compile(PolicyOptions::default()) {
        Ok(p) => Arc::new(p),
        Err(e) => {
            eprintln!("cannot compile the default policy: {e}");
            return ExitCode::from(2);
        }
    };
    let jobs: Vec<InspectJob> = rows.iter().map(|r| job(&policy, &r.text)).collect();
    let mut scratch = PipelineScratch::default();
    let opinions: Vec<Opinions> = rows
        .iter()
        .zip(&jobs)
        .map(|(row, job)| {
            let verdict = pipeline::evaluate(job, &mut scratch);
            Opinions {
                ours: verdict.tags.iter().any(|t| CLASS_TAGS.contains(t)),
                sqli: libinjectionrs::detect_sqli(row.text.as_bytes()).is_injection(),
                xss: libinjectionrs::detect_xss(row.text.as_bytes()).is_injection(),
            }
        })
        .collect();

    println!("{} core rows of {path}", rows.len());
    for (name, with_sqli, with_xss) in MODES {
        let mut by_class: BTreeMap<&str, Tally> = BTreeMap::new();
        for (row, o) in rows.iter().zip(&opinions) {
            let lib = (with_sqli && o.sqli) || (with_xss && o.xss);
            let t = by_class.entry(row.label.as_str()).or_default();
            t.rows += 1;
            t.ours += usize::from(o.ours);
            t.lib += usize::from(lib);
            t.combined += usize::from(o.ours || lib);
        }
        println!("== libinjection {name}: share of rows flagged (attacks: recall; benign: false positives)");
        println!(
            "  class       rows     agent  libinjection  combined   (rows: agent / lib / combined)"
        );
        for (class, t) in &by_class {
            println!(
                "  {:<8} {:>7}  {:>7.2}%  {:>11.2}%  {:>7.2}%   ({} / {} / {})",
                class,
                t.rows,
                pct(t.ours, t.rows),
                pct(t.lib, t.rows),
                pct(t.combined, t.rows),
                t.ours,
                t.lib,
                t.combined
            );
        }
    }

    let bytes: usize = rows.iter().map(|r| r.text.len()).sum();
    let agent = fastest(|| {
        for job in &jobs {
            std::hint::black_box(pipeline::evaluate(job, &mut scratch));
        }
    });
    let sqli = fastest(|| {
        for row in &rows {
            std::hint::black_box(libinjectionrs::detect_sqli(row.text.as_bytes()).is_injection());
        }
    });
    let xss = fastest(|| {
        for row in &rows {
            std::hint::black_box(libinjectionrs::detect_xss(row.text.as_bytes()).is_injection());
        }
    });
    println!("== throughput on these texts (fastest of 3 passes, one thread)");
    for (name, took) in [
        ("agent pipeline", agent),
        ("libinjection sqli", sqli),
        ("libinjection xss", xss),
    ] {
        println!(
            "  {:<18} {:>7.1} MB/s  ({:.2}x the agent's time)",
            name,
            bytes as f64 / took.as_secs_f64() / 1e6,
            took.as_secs_f64() / agent.as_secs_f64()
        );
    }
    ExitCode::SUCCESS
}

/// The class tags a row counts as detected by.
const CLASS_TAGS: [AuditTag; 3] = [AuditTag::Xss, AuditTag::Sqli, AuditTag::CmdInjection];

fn pct(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

fn fastest(mut pass: impl FnMut()) -> Duration {
    (0..3)
        .map(|_| {
            let start = Instant::now();
            pass();
            start.elapsed()
        })
        .min()
        .unwrap_or(Duration::MAX)
}

fn job(policy: &Arc<Policy>, text: &str) -> InspectJob {
    InspectJob {
        policy: Arc::clone(policy),
        kind: MessageKind::Text,
        part: MessagePart::Complete,
        data: Bytes::copy_from_slice(text.as_bytes()),
        direction: Direction::ClientToServer,
        prior: Verdict::allow(),
    }
}

/// The corpus's core rows (probe rows are left out, as in `corpus_eval`'s gated figures).
fn read_rows(path: &str) -> std::io::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for (n, line) in BufReader::new(File::open(path)?).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let row: Row = serde_json::from_str(&line).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("line {}: {e}", n + 1),
            )
        })?;
        if row.tier.as_deref() != Some("probe") {
            rows.push(row);
        }
    }
    Ok(rows)
}
