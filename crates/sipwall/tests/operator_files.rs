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

/// A store holding one active ban and one decision, in `dir/state`.
fn seeded_state(dir: &Path) -> std::path::PathBuf {
    use sipwall_engine::{Ban, BanOrigin, DecisionRecord, Evidence, Verdict};
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let mut store = sipwall_store::Store::open(state.join("sipwall.db")).unwrap();
    let now = common::wall_now();
    let ban = Ban {
        net: "203.0.113.9/32".parse().unwrap(),
        since: now,
        until: sipwall_engine::Timestamp(now.0 + std::time::Duration::from_secs(600)),
        count: 1,
        rule: "manual".into(),
        reason: "test".into(),
        evidence: Evidence::default(),
        origin: BanOrigin::Manual,
    };
    store.record_bans(&[ban]).unwrap();
    let record = DecisionRecord {
        rule: "manual.ban",
        evidence: Evidence::default(),
        summary: "manual ban of 203.0.113.9/32".into(),
    };
    let src = "203.0.113.9:0".parse().unwrap();
    store.record_decisions([(now, src, Verdict::Drop, &record)]).unwrap();
    state
}

/// `sipwall bans | head -0` and `sipwall decisions | head -0`: standard output is a pipe whose
/// reader is already gone. They exit 0 without a word (before: a panic, exit 101).
#[test]
fn listings_into_a_closed_pipe_exit_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let state = seeded_state(dir.path());
    let state = state.to_str().unwrap();
    let nosock = dir.path().join("none.sock");
    let nosock = nosock.to_str().unwrap();
    for args in [
        vec!["bans", "--state", state, "--socket", nosock],
        vec!["bans", "--state", state, "--socket", nosock, "--format", "json"],
        vec!["decisions", "--state", state],
        vec!["decisions", "--state", state, "--format", "json"],
    ] {
        // the listing itself works into an open pipe
        let (ok, out) = run_bounded(20, BIN, &args);
        assert!(ok && out.contains("203.0.113.9"), "{args:?}:\n{out}");
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader); // `head -0` has exited: every write fails with EPIPE
        let out = Command::new("timeout")
            .args(["-s", "KILL", "20", BIN])
            .args(&args)
            .stdin(Stdio::null())
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?} into a closed pipe:\n{stderr}");
        assert!(!stderr.contains("panicked") && !stderr.contains("error"), "{args:?}:\n{stderr}");
    }
}

/// `sipwall ban 198.51.100.7/16` is refused before anything is sent, with the canonical
/// network and the address as hints (before: 198.51.0.0/16 was banned without a word).
#[test]
fn a_network_with_host_bits_is_refused_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("none.sock");
    for (args, hint) in [
        (vec!["ban", "198.51.100.7/16"], "did you mean 198.51.0.0/16"),
        (vec!["unban", "198.51.100.7/24"], "did you mean 198.51.100.0/24"),
        (vec!["ban", "2001:db8::7/64", "--for", "1h"], "did you mean 2001:db8::/64"),
    ] {
        let mut a = args.clone();
        a.extend(["--socket", sock.to_str().unwrap()]);
        let (ok, out) = run_bounded(20, BIN, &a);
        assert!(!ok && out.contains("has host bits set") && out.contains(hint), "{args:?}:\n{out}");
        assert!(!out.contains("connecting"), "{args:?} was sent to a daemon:\n{out}");
    }
}
