//! The real binary against hostile files and closed pipes, as an operator (or a mistake)
//! would hand them over. No root needed: every case fails (or ends) before anything is
//! installed. Every command runs under `timeout -s KILL`, so a hang fails the test instead of
//! wedging it.
use std::path::Path;
use std::process::{Command, Stdio};

mod common;
use common::run_bounded;

const BIN: &str = env!("CARGO_BIN_EXE_sipwall");

fn mkfifo(path: &Path) {
    let st = Command::new("mkfifo").arg(path).status().expect("mkfifo");
    assert!(st.success(), "mkfifo {}", path.display());
}

/// A FIFO as config or block list ends `check-config` and `run` at once with an error naming
/// the file (before: both waited for a writer forever); so does `/dev/zero` as a block list
/// (before: read until memory ran out).
#[test]
fn fifo_and_device_files_are_refused_by_check_config_and_run() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("policy.fifo");
    mkfifo(&fifo);
    let bl_fifo = dir.path().join("blocklist.fifo");
    mkfifo(&bl_fifo);
    let with_fifo = dir.path().join("fifo-list.toml");
    std::fs::write(&with_fifo, "[blocklist]\nfiles = [\"blocklist.fifo\"]\n").unwrap();
    let with_zero = dir.path().join("zero-list.toml");
    std::fs::write(&with_zero, "[blocklist]\nfiles = [\"/dev/zero\"]\n").unwrap();
    let state = dir.path().join("state");
    let sock = dir.path().join("control.sock");
    for (cfg, names, why) in [
        (&fifo, fifo.display().to_string(), "a FIFO"),
        (&with_fifo, bl_fifo.display().to_string(), "a FIFO"),
        (&with_zero, "/dev/zero".to_string(), "a character device"),
    ] {
        let cfg = cfg.to_str().unwrap();
        let (ok, out) = run_bounded(20, BIN, &["check-config", cfg]);
        assert!(!ok && out.contains(&names) && out.contains(why), "check-config {cfg}:\n{out}");
        let (ok, out) = run_bounded(
            20,
            BIN,
            &[
                "run",
                "--config",
                cfg,
                "--state",
                state.to_str().unwrap(),
                "--socket",
                sock.to_str().unwrap(),
            ],
        );
        assert!(!ok && out.contains(&names) && out.contains(why), "run {cfg}:\n{out}");
    }
    assert!(!state.exists() && !sock.exists(), "a refused config left files behind");
}
