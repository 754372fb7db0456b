//! `sipwall run`: the inline daemon. (Owned by the run issue.)
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `sipwall run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Policy file (TOML).
    #[arg(long, short)]
    pub config: PathBuf,
}

pub fn main(_args: RunArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("run is not implemented yet")
}
