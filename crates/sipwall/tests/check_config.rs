//! `sipwall check-config` run as a user would: the real binary on real files.
use std::process::Command;

fn check(text: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sipwall.toml");
    std::fs::write(&file, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sipwall"))
        .arg("check-config")
        .arg(&file)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn the_example_config_passes_and_is_explained() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/sipwall.example.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_sipwall"))
        .args(["check-config", example])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(": ok") && stdout.contains("signatures: 20 built-in"), "{stdout}");
    assert!(stdout.contains("fail open"), "{stdout}");
}

#[test]
fn errors_name_the_key_and_the_line() {
    for (text, key, line) in [
        ("[trusted]\nnetworks = [\"198.51.100.0/33\"]\n", "trusted.networks", "line 2"),
        (
            "[calls]\nblock_ip_calls = true\nlocal_users = [\"201\"]\nlocal_user = []\n",
            "local_user",
            "line 4",
        ),
        ("[ports]\n\ntripwire = [5060]\nguarded = [5060]\n", "ports.", "line"),
        ("[behaviour.flood]\nmax = 0\n", "behaviour.flood.max", "line 2"),
        ("[enforce]\nmode = \"host\"\nqueues = 0\n", "enforce.queues", "line 3"),
        ("[enforce]\nmode = \"routr\"\n", "routr", "line 2"),
        ("[bogus]\nx = 1\n", "bogus", "line 1"),
    ] {
        let (ok, out) = check(text);
        assert!(!ok, "accepted: {text}");
        assert!(out.contains(key) && out.contains(line), "{text}\n=> {out}");
    }
}

/// A trusted network as wide as the whole internet is valid but almost surely a mistake (every
/// source would be accepted and never banned): `check-config` accepts it and warns, naming the
/// key and the line.
#[test]
fn risky_settings_are_accepted_with_a_warning() {
    let (ok, out) = check("[trusted]\nnetworks = [\"0.0.0.0/0\"]\n");
    assert!(ok, "{out}");
    assert!(out.contains("warning: line 2") && out.contains("trusted.networks"), "{out}");
    let (ok, out) = check("[trusted]\nnetworks = [\"198.51.100.0/24\"]\n");
    assert!(ok && !out.contains("warning"), "{out}");
}
