//! `sipwall generate man|completions DIR` (hidden): writes the man pages and the shell
//! completions from the CLI definition itself, so they cannot drift from it. Used by
//! `scripts/build-deb.sh` before packaging; not meant for users.
//!
//! Output, in DIR (created if missing; existing files of the same name are replaced):
//! - `man`: `sipwall.8` and one `sipwall-SUBCOMMAND.8` per visible subcommand;
//! - `completions`: `sipwall.bash`, `_sipwall` (zsh) and `sipwall.fish`.
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::CommandFactory as _;
use clap_complete::Shell;

/// Arguments of `sipwall generate`.
#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    /// What to write.
    #[arg(value_enum)]
    pub what: What,
    /// Directory to write into.
    pub dir: PathBuf,
}

/// The kinds of generated files.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum What {
    /// Man pages (section 8).
    Man,
    /// bash, zsh and fish completions.
    Completions,
}

/// Entry point of `sipwall generate`.
pub fn main(args: GenerateArgs) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let written = match args.what {
        What::Man => man(&args.dir)?,
        What::Completions => completions(&args.dir)?,
    };
    for path in written {
        println!("{}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn cli() -> clap::Command {
    let mut cmd = crate::Cli::command();
    cmd.build();
    cmd
}

/// One page for the command and one per visible subcommand (`sipwall-run.8`, ...), named as
/// their SEE ALSO sections refer to them.
fn man(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let cmd = cli();
    let mut written = vec![write_page(dir, "sipwall", cmd.clone())?];
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help") {
        let name = format!("sipwall-{}", sub.get_name());
        // After `build()` clap already names a subcommand `sipwall-run` for display; the page
        // title and its NAME line come from that.
        written.push(write_page(dir, &name, sub.clone())?);
    }
    Ok(written)
}

fn write_page(dir: &Path, name: &str, cmd: clap::Command) -> anyhow::Result<PathBuf> {
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd).section("8").render(&mut out).context("rendering a man page")?;
    let path = dir.join(format!("{name}.8"));
    std::fs::write(&path, out).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

fn completions(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let mut cmd = cli();
        let path = clap_complete::generate_to(shell, &mut cmd, "sipwall", dir)
            .with_context(|| format!("writing {shell} completions into {}", dir.display()))?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn man_pages_cover_every_visible_subcommand_and_not_generate() {
        let dir = tempfile::tempdir().unwrap();
        let written = man(dir.path()).unwrap();
        let names: Vec<String> =
            written.iter().map(|p| p.file_name().unwrap().to_string_lossy().into()).collect();
        for want in ["sipwall.8", "sipwall-run.8", "sipwall-check-config.8", "sipwall-bans.8"] {
            assert!(names.contains(&want.to_string()), "{want} missing from {names:?}");
        }
        assert!(!names.iter().any(|n| n.contains("generate")), "{names:?}");
        let top = std::fs::read_to_string(dir.path().join("sipwall.8")).unwrap();
        assert!(top.starts_with(".ie") || top.contains(".TH sipwall"), "{top}");
        assert!(top.contains("check\\-config"), "subcommand list missing");
        let run = std::fs::read_to_string(dir.path().join("sipwall-run.8")).unwrap();
        assert!(run.contains("\\-\\-cleanup"), "run page misses --cleanup");
    }

    #[test]
    fn completions_for_three_shells_know_the_subcommands() {
        let dir = tempfile::tempdir().unwrap();
        let written = completions(dir.path()).unwrap();
        let names: Vec<String> =
            written.iter().map(|p| p.file_name().unwrap().to_string_lossy().into()).collect();
        assert_eq!(names, ["sipwall.bash", "_sipwall", "sipwall.fish"]);
        for p in &written {
            let text = std::fs::read_to_string(p).unwrap();
            assert!(text.contains("check-config"), "{} lacks check-config", p.display());
        }
    }
}
