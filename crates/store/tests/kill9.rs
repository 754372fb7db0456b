//! An acknowledged ban is never lost, even on `kill -9`.
//!
//! The parent test re-executes this test binary as a child (running only the ignored
//! `child_writer` test, told what to do by environment variables). The child records bans as
//! fast as it can, single and in batches of 10, and prints `ACK <first> <last>` to stdout after
//! each `record_ban` / `record_bans` returns Ok. The parent reads the acks and SIGKILLs the child
//! mid-stream, then reads what is left in the pipe, reopens the store and checks that every
//! acknowledged ban is present with all its fields. Three rounds on the same file, each killed
//! at a different point, so recovery of a WAL cut mid-transaction is exercised too.
mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use sipwall_engine::Ban;
use sipwall_store::Store;

const ENV_DB: &str = "SIPWALL_STORE_KILL9_DB";
const ENV_START: &str = "SIPWALL_STORE_KILL9_START";
/// Upper bound of bans a child writes if never killed (bounds the loop).
const CHILD_MAX: u32 = 200_000;

/// Ban number `i` (deterministic, so the parent can rebuild what the child wrote).
fn nth_ban(i: u32) -> Ban {
    let [a, b, c, d] = i.to_be_bytes();
    let mut ban = if i % 2 == 0 {
        ban(
            &format!("2001:db8:{a:x}{b:02x}::{c:x}{d:02x}/128"),
            1 + i % 7,
            NOW_MS + u64::from(i),
            NOW_MS + 86_400_000,
        )
    } else {
        ban(&format!("10.{b}.{c}.{d}/32"), 1 + i % 7, NOW_MS + u64::from(i), NOW_MS + 86_400_000)
    };
    ban.reason = format!("ban number {i}");
    ban
}

#[test]
#[ignore = "child process of acknowledged_bans_survive_sigkill; run by it, not by hand"]
fn child_writer() {
    let Ok(path) = std::env::var(ENV_DB) else {
        // Run by `--include-ignored` without its parent: nothing to do.
        eprintln!("child_writer: only acknowledged_bans_survive_sigkill runs this");
        return;
    };
    let start: u32 = std::env::var(ENV_START).unwrap().parse().unwrap();
    let mut store = Store::open(&path).unwrap();
    let out = std::io::stdout();
    let mut out = out.lock();
    let mut i = start;
    while i < start + CHILD_MAX {
        if (i / 10) % 3 == 2 {
            let batch: Vec<Ban> = (i..i + 10).map(nth_ban).collect();
            store.record_bans(&batch).unwrap();
            writeln!(out, "ACK {} {}", i, i + 9).unwrap();
            i += 10;
        } else {
            store.record_ban(&nth_ban(i)).unwrap();
            writeln!(out, "ACK {i} {i}").unwrap();
            i += 1;
        }
        out.flush().unwrap();
    }
}

/// Runs one child from ban number `start`, kills it after `kill_after` acks; returns the
/// acknowledged (first, last) ranges.
fn run_and_kill(path: &std::path::Path, start: u32, kill_after: usize) -> Vec<(u32, u32)> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["child_writer", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env(ENV_DB, path)
        .env(ENV_START, start.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child writer");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acks = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while acks.len() < kill_after {
        assert!(Instant::now() < deadline, "child too slow: {} acks in 60 s", acks.len());
        let Some(line) = lines.next() else { panic!("child exited after {} acks", acks.len()) };
        if let Some(rest) = line.unwrap().strip_prefix("ACK ") {
            let (a, b) = rest.split_once(' ').unwrap();
            acks.push((a.parse().unwrap(), b.parse().unwrap()));
        }
    }
    child.kill().expect("SIGKILL the child"); // std sends SIGKILL on Unix
                                              // Acks already in the pipe were printed after their commit returned: they count too.
    for line in lines {
        if let Some(rest) = line.unwrap().strip_prefix("ACK ") {
            let (a, b) = rest.split_once(' ').unwrap();
            acks.push((a.parse().unwrap(), b.parse().unwrap()));
        }
    }
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(9), "child was killed by SIGKILL, not finished: {status:?}");
    let last = acks.last().unwrap().1;
    assert!(last < start + CHILD_MAX - 1, "killed mid-way, not at the end");
    acks
}

#[test]
fn acknowledged_bans_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let mut acked_total = 0usize;
    for (round, kill_after) in [(0u32, 150usize), (1, 37), (2, 301)] {
        let start = round * 1_000_000;
        let acks = run_and_kill(&path, start, kill_after);
        let store = Store::open(&path).expect("reopen after kill -9");
        for &(first, last) in &acks {
            for i in first..=last {
                let want = nth_ban(i);
                let got = store.get_ban(want.net).unwrap();
                assert_eq!(got.as_ref(), Some(&want), "round {round}: acknowledged ban {i} lost");
            }
        }
        acked_total += acks.iter().map(|(a, b)| (b - a + 1) as usize).sum::<usize>();
        // Nothing beyond what was acked can be half there: the store holds whole bans only,
        // each with its history row and offence count.
        let active = store.load_active_bans(t(NOW_MS)).unwrap();
        assert!(active.len() >= acked_total, "{} stored < {acked_total} acked", active.len());
        for b in &active {
            assert_eq!(store.ban_history(b.net).unwrap().len(), 1, "{}", b.net);
            assert_eq!(store.offence_count(b.net).unwrap(), b.count, "{}", b.net);
        }
    }
}
