//! `sipwall check-config FILE`: loads the file exactly as `run` and `inspect` do (policy,
//! `[enforce]`, block list files) and prints what it means, or the first error with its key
//! and line. Exit 0 when valid, 1 when not.
use std::path::PathBuf;
use std::process::ExitCode;

/// `sipwall check-config`.
#[derive(Debug, clap::Args)]
pub struct CheckConfigArgs {
    /// Config file (TOML).
    pub file: PathBuf,
}

/// `sipwall check-config`.
pub fn main(args: &CheckConfigArgs) -> anyhow::Result<ExitCode> {
    let file = &args.file;
    match crate::config::load(file) {
        Ok(config) => {
            let mut out = format!("{}: ok\n{}", file.display(), config.policy.summary());
            // Valid but risky settings (a trusted 0.0.0.0/0, ...): said, not refused.
            for w in config.policy.warnings() {
                out.push_str(&format!("warning: {w}\n"));
            }
            for (path, load) in &config.blocklists {
                out.push_str(&format!("block list file {}: {load:?}\n", path.display()));
            }
            for url in &config.feeds.urls {
                out.push_str(&format!(
                    "block list URL {url}: fetched by `run` every {} s\n",
                    config.feeds.fetch.refresh_secs
                ));
            }
            let ports = config.policy.ports_to_guard();
            match config.enforce.ruleset(&ports) {
                Ok(r) => out.push_str(&format!(
                    "enforce: mode {:?}, {} guarded port(s), {} queue(s) from {}, {}\n",
                    config.enforce.mode,
                    r.ports.len(),
                    r.queue_count,
                    r.queue_first,
                    if r.fail_closed { "fail closed" } else { "fail open" }
                )),
                Err(e) => {
                    eprintln!("{}: {e:#}", file.display());
                    return Ok(ExitCode::from(1));
                }
            }
            super::emit(&out)?;
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            eprintln!("{err:#}");
            Ok(ExitCode::from(1))
        }
    }
}
