//! A long-lived `nft -e -i` process for ban set updates.
//!
//! Why: starting `nft` costs milliseconds per call (process start, ruleset cache), while one
//! command sent to a running `nft -i` took ~0.5 ms on our machines (measured:
//! docs/BENCHMARKS.md). Each line is its own kernel transaction. `-e` (echo) makes nft print
//! every applied command, so after the commands we send a sentinel — `add element` of a unique
//! number into the table's `sync` set (1 s timeout) — and the command batch is done when the
//! sentinel's echo comes back. Errors arrive on stderr, read by their own thread.
//!
//! If the process dies or stops answering (2 s), the shell reports an error and the caller
//! falls back to `nft -f -`; the next call starts a new process.
use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// Errors of the shell.
#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    /// Could not start or talk to `nft -i`.
    #[error("nft shell: {0}")]
    Io(String),
    /// nft reported errors for the commands.
    #[error("nft shell: {0}")]
    Nft(String),
}

/// A running `nft -e -i`.
pub struct NftShell {
    child: Child,
    stdin: ChildStdin,
    out: Receiver<String>,
    err: Receiver<String>,
    table: String,
    seq: u16,
}

impl std::fmt::Debug for NftShell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NftShell").field("pid", &self.child.id()).finish()
    }
}

impl NftShell {
    /// Start `nft -e -i` for table `inet <table>` (which must have the `sync` set).
    pub fn start(table: &str) -> Result<NftShell, ShellError> {
        let mut child = Command::new("nft")
            .args(["-e", "-i"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| ShellError::Io(format!("starting nft -e -i: {e}")))?;
        let stdin = child.stdin.take().ok_or_else(|| ShellError::Io("no stdin".into()))?;
        let stdout = child.stdout.take().ok_or_else(|| ShellError::Io("no stdout".into()))?;
        let stderr = child.stderr.take().ok_or_else(|| ShellError::Io("no stderr".into()))?;
        let (otx, out) = mpsc::channel();
        let (etx, err) = mpsc::channel();
        std::thread::Builder::new()
            .name("nft-shell-out".into())
            .spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if otx.send(line).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| ShellError::Io(e.to_string()))?;
        std::thread::Builder::new()
            .name("nft-shell-err".into())
            .spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if etx.send(line).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| ShellError::Io(e.to_string()))?;
        Ok(NftShell { child, stdin, out, err, table: table.to_string(), seq: 0 })
    }

    /// Run these commands (one per line); returns the error lines nft printed, if any.
    pub fn run(&mut self, commands: &str) -> Result<(), ShellError> {
        // Stale output of an earlier, timed-out call.
        while self.out.try_recv().is_ok() {}
        while self.err.try_recv().is_ok() {}
        self.seq = self.seq.wrapping_add(1).max(1);
        let sentinel =
            format!("add element inet {} sync {{ {} timeout 1s }}", self.table, self.seq);
        let mut text = String::with_capacity(commands.len() + sentinel.len() + 2);
        for line in commands.lines().filter(|l| !l.trim().is_empty()) {
            text.push_str(line);
            text.push('\n');
        }
        text.push_str(&sentinel);
        text.push('\n');
        self.stdin
            .write_all(text.as_bytes())
            .and_then(|_| self.stdin.flush())
            .map_err(|e| ShellError::Io(format!("writing to nft: {e}")))?;
        let want = format!("sync {{ {} ", self.seq);
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.out.recv_timeout(left) {
                Ok(line) if line.contains(&want) => break,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    return Err(ShellError::Io("no answer from nft within 2 s".into()))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(ShellError::Io("nft exited".into()))
                }
            }
        }
        // stderr is written before the sentinel is even read by nft; give its reader a moment.
        let mut errors = Vec::new();
        while let Ok(l) = self.err.recv_timeout(Duration::from_micros(200)) {
            errors.push(l);
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ShellError::Nft(errors.join("\n")))
        }
    }
}

impl Drop for NftShell {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
