//! The benchmark tools and their floor, run briefly end to end: `examples/load.rs` starts the real
//! server and `examples/floor.rs`, measures both in one round, and stops the server to weigh its
//! data directory. The rates mean nothing in a debug build on a shared machine and are not
//! checked; that the tool measured what it claims is: every call answered as the mix expects,
//! no errors, the floor answering a ticket the desk answered, and a footprint per ticket.
//! `examples/fanout.rs` does the same for live streams: both servers' streams opened, and every
//! event delivered to every one, in order, once.

mod common;

use std::process::Command;

use common::example_binary;

/// The calls answered in the line `  {name}: ok N ...` of the tool's output.
fn answered(stdout: &str, name: &str) -> u64 {
    let prefix = format!("{name}: ok ");
    let line = stdout
        .lines()
        .find_map(|l| l.trim_start().strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no `{prefix}` line in:\n{stdout}"));
    line.split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in `{line}`"))
}

/// Runs example `name` with `args` to its end, and returns what it printed; fails the test if
/// the example failed.
fn run(name: &str, args: &[&str]) -> String {
    let output = Command::new(example_binary(name))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run the {name} example: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{name} failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn the_load_tool_measures_the_desk_and_its_floor_in_the_same_round() {
    let stdout = run(
        "load",
        &[
            "--spawn",
            "--floor",
            "--footprint",
            "--mix",
            "first-tier",
            "--rounds",
            "1",
            "--seconds",
            "1",
            "--concurrency",
            "4",
            "--connections",
            "2",
        ],
    );
    assert!(
        !stdout.contains("errors"),
        "calls failed or ended otherwise than the mix expects:\n{stdout}"
    );
    for name in ["Health/Check", "FirstTier", "floor"] {
        assert!(
            answered(&stdout, name) > 0,
            "{name} answered nothing:\n{stdout}"
        );
    }
    // The floor answers with the ticket the desk answered first: resolved by the first tier.
    assert!(
        stdout.contains("floor: outcomes {\"Resolved via L1\""),
        "the floor did not answer the desk's ticket:\n{stdout}"
    );
    for summary in [
        "FirstTier / Health/Check over 1 rounds:",
        "floor / Health/Check over 1 rounds:",
        "FirstTier / floor over 1 rounds:",
    ] {
        assert!(stdout.contains(summary), "no `{summary}` in:\n{stdout}");
    }
    let per_ticket: f64 = stdout
        .split("bytes per ticket")
        .next()
        .and_then(|head| head.rsplit(": ").next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no footprint in:\n{stdout}"));
    assert!(
        per_ticket > 0.0,
        "a store of answered tickets weighs nothing:\n{stdout}"
    );
}

#[test]
fn the_fanout_tool_measures_the_desk_and_its_floor_in_the_same_run() {
    let stdout = run(
        "fanout",
        &[
            "--subscribers",
            "8",
            "--connections",
            "2",
            "--rate",
            "50",
            "--seconds",
            "1",
            "--drain-seconds",
            "30",
        ],
    );
    // Both servers measured, every stream checked event by event: lossless on each.
    for side in ["desk", "floor"] {
        assert!(
            stdout.contains(&format!("{side} round 1: 8 of 8 streams open")),
            "{side} did not open every stream:\n{stdout}"
        );
    }
    let lossless = stdout
        .lines()
        .filter(|l| l.trim_start().starts_with("delivered ") && l.ends_with("events: lossless"))
        .count();
    assert_eq!(lossless, 2, "both servers lossless:\n{stdout}");
    let verdict = stdout
        .lines()
        .find(|l| l.starts_with("verdict"))
        .unwrap_or_else(|| panic!("no verdict row:\n{stdout}"));
    assert_eq!(
        verdict.split_whitespace().collect::<Vec<_>>(),
        ["verdict", "lossless", "lossless"]
    );
    assert!(
        stdout.contains("round 1 desk/floor: p99 delivery latency"),
        "no ratio line:\n{stdout}"
    );
}
