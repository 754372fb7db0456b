//! `sipwall check-config FILE`.
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use sipwall_engine::Policy;

pub fn main(file: &Path) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("reading config {}", file.display()))?;
    match Policy::from_toml_str(&text) {
        Ok(_) => {
            println!("{}: ok", file.display());
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            eprintln!("{}: {err}", file.display());
            Ok(ExitCode::from(1))
        }
    }
}
