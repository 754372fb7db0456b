//! `sipwall inspect`: offline analysis of captures. (Owned by the inspect issue.)
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `sipwall inspect`.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// Policy file (TOML); the built-in defaults when absent.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Capture files (pcap or pcapng).
    #[arg(required = true)]
    pub captures: Vec<PathBuf>,
}

pub fn main(_args: InspectArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("inspect is not implemented yet")
}
