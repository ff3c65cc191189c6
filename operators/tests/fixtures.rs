//! The fixture corpus: carrier payloads written from the documented shapes,
//! each with its expected canonical output checked in beside it.
//!
//! `tests/fixtures/<carrier>/<name>.json` is normalized and compared with
//! `<name>.expected.jsonl` (one JSON line per event, as
//! `normalize_to_json_lines` prints them) or, for a payload that must be
//! rejected, with `<name>.expected.err` (the error kind). Set
//! `DROPLINE_BLESS=1` to rewrite the expected files from the current
//! output; then read the diff line by line before committing it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};

use dropline_operators::model::{Carrier, EventSource, Status, SubStatus};
use dropline_operators::normalize::{normalize, normalize_to_json_lines};

fn fixtures(carrier: Carrier) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(carrier.as_str());
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension().is_some_and(|x| x == "json")
                && !p.to_string_lossy().ends_with(".expected.json")
        })
        .collect();
    files.sort();
    files
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
    path.with_file_name(format!("{stem}{suffix}"))
}

fn check_carrier(carrier: Carrier) {
    let bless = std::env::var_os("DROPLINE_BLESS").is_some();
    let files = fixtures(carrier);
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().any(|n| n.starts_with("poll_")),
        "{carrier}: no polling fixture"
    );
    assert!(
        names.iter().any(|n| n.starts_with("webhook_")),
        "{carrier}: no webhook fixture"
    );
    assert!(
        names.iter().any(|n| n.starts_with("malformed_")),
        "{carrier}: no malformed fixture"
    );
    for path in &files {
        let payload = fs::read(path).unwrap();
        let err_path = sibling(path, ".expected.err");
        let lines_path = sibling(path, ".expected.jsonl");
        let mut out = Vec::new();
        match normalize_to_json_lines(carrier, &payload, &mut out) {
            Ok(count) => {
                let got = String::from_utf8(out).unwrap();
                assert_eq!(got.lines().count(), count);
                if bless {
                    fs::write(&lines_path, &got).unwrap();
                    let _ = fs::remove_file(&err_path);
                    continue;
                }
                assert!(
                    !err_path.exists(),
                    "{}: expected an error, got {count} events",
                    path.display()
                );
                let want = fs::read_to_string(&lines_path)
                    .unwrap_or_else(|e| panic!("{}: {e}", lines_path.display()));
                for (i, (g, w)) in got.lines().zip(want.lines()).enumerate() {
                    assert_eq!(g, w, "{} line {}", path.display(), i + 1);
                }
                assert_eq!(
                    got.lines().count(),
                    want.lines().count(),
                    "{}: event count",
                    path.display()
                );
                // Every unknown event is reported, and only those.
                let n = normalize(carrier, &payload, 0, EventSource::Poll).unwrap();
                let unmapped = n
                    .events
                    .iter()
                    .filter(|e| {
                        e.status == Status::Unknown && e.sub_status == SubStatus::UnmappedCode
                    })
                    .count();
                assert_eq!(unmapped, n.unknown_codes.len(), "{}", path.display());
            }
            Err(err) => {
                if bless {
                    fs::write(&err_path, err.kind()).unwrap();
                    let _ = fs::remove_file(&lines_path);
                    continue;
                }
                let want = fs::read_to_string(&err_path)
                    .unwrap_or_else(|_| panic!("{}: unexpected error: {err}", path.display()));
                assert_eq!(err.kind(), want.trim(), "{}: {err}", path.display());
                assert_eq!(err.carrier(), Some(carrier));
            }
        }
    }
}

#[test]
fn ups_fixtures() {
    check_carrier(Carrier::Ups);
}

#[test]
fn fedex_fixtures() {
    check_carrier(Carrier::Fedex);
}

#[test]
fn usps_fixtures() {
    check_carrier(Carrier::Usps);
}

#[test]
fn dhl_fixtures() {
    check_carrier(Carrier::Dhl);
}
