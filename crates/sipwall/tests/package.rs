//! Installing sipwall like a network daemon.
//!
//! - `debian_package_installs_checks_and_purges_in_a_fresh_debian_12_root` (ignored: needs
//!   root, mmdebstrap, lintian and the network to this host's Debian mirror): drives
//!   `scripts/test-package.sh`, which builds the `.deb`, runs lintian and
//!   `systemd-analyze verify`, installs it into a fresh Debian 12 root and checks files,
//!   modes, `--version`, `man`, `check-config`, remove and purge. Its output is shown; a failed
//!   check fails this test with the check's name.
//! - `run_creates_the_state_directory_0700`: `sipwall run` outside systemd creates its state
//!   directory root-only. It stops before any firewall rule: the control socket path is taken
//!   by a plain file, an error raised after the state directory is made.
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().parent().unwrap()
}

#[test]
#[ignore = "needs root, mmdebstrap, lintian and network to the Debian mirror of this host's apt sources: run by scripts/test.sh"]
fn debian_package_installs_checks_and_purges_in_a_fresh_debian_12_root() {
    let script = workspace().join("scripts/test-package.sh");
    // The script bounds every step with `timeout`; this is the overall ceiling.
    let started = Instant::now();
    let out = Command::new("timeout")
        .arg("5400")
        .arg(&script)
        // The unoptimised binary `cargo test` has just built: this checks the packaging, not
        // the speed, and a release build would add minutes (scripts/build-deb.sh).
        .env("SIPWALL_DEB_PROFILE", "dev")
        .current_dir(workspace())
        .output()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", script.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    eprintln!("test-package.sh took {:?}", started.elapsed());
    let failed: Vec<&str> = stderr.lines().filter(|l| l.contains("test-package: FAIL")).collect();
    assert!(
        out.status.success(),
        "scripts/test-package.sh failed ({}): {}",
        out.status,
        if failed.is_empty() { "see its output above".to_string() } else { failed.join("; ") }
    );
    assert!(stdout.contains("test-package: ok"), "the script ended without its final ok");
    for check in [
        "ok: /var/lib/sipwall is created 0700 root",
        "ok: the shipped config passes check-config",
        "ok: purge deletes /var/lib/sipwall and /run/sipwall",
    ] {
        assert!(stdout.contains(check), "check not reported: {check}");
    }
}

#[test]
fn run_creates_the_state_directory_0700() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("var/lib/sipwall");
    let in_the_way = dir.path().join("control.sock");
    std::fs::write(&in_the_way, "not a socket").unwrap();
    let config = workspace().join("config/sipwall.example.toml");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sipwall"))
        .args(["run", "--config"])
        .arg(&config)
        .arg("--state")
        .arg(&state)
        .arg("--socket")
        .arg(&in_the_way)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // It must stop at the control socket; bound the wait, kill it if it does not.
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("sipwall run did not stop at the occupied control socket path");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!status.success(), "run must fail on the occupied socket path: {stderr}");
    assert!(stderr.contains("not a socket"), "failed for another reason: {stderr}");
    let mode = std::fs::metadata(&state).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "state directory mode {mode:o}");
    // Parents it had to create are not left world-writable either (umask applies, mode caps).
    let parent = std::fs::metadata(state.parent().unwrap()).unwrap().permissions().mode() & 0o777;
    assert_eq!(parent & 0o077, 0, "parent directory mode {parent:o}");
}
