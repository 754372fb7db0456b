//! `sipwall check-config FILE`: loads the file exactly as `run` and `inspect` do (policy,
//! `[enforce]`, block list files, `[fleet]`) and prints what it means, or the first error with its key
//! and line. Exit 0 when valid, 1 when not.
use std::path::PathBuf;
use std::process::ExitCode;

/// `sipwall check-config`.
#[derive(Debug, clap::Args)]
pub struct CheckConfigArgs {
    /// Config file (TOML).
    pub file: PathBuf,
}

/// The `fleet:` line: where, and how the link is protected (the password hidden).
fn fleet_line(f: &crate::config::FleetConfig) -> String {
    let url = sipwall_fleet::url_for_log(&f.redis_url);
    let link = if !f.redis_url.starts_with("rediss://") {
        "no TLS".to_string()
    } else {
        let ca = f
            .tls_ca_file
            .as_ref()
            .map_or("the built-in web PKI roots".to_string(), |p| p.display().to_string());
        let client = f
            .tls_cert_file
            .as_ref()
            .map_or(String::new(), |p| format!(", client certificate {}", p.display()));
        format!("TLS, server verified against {ca}{client}")
    };
    format!(
        "fleet: Redis {url} ({link}), key prefix {}, entries {}\n",
        f.key_prefix,
        if f.hmac_key_file.is_some() { "signed" } else { "unsigned" }
    )
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
            if let Some(f) = &config.fleet {
                out.push_str(&fleet_line(f));
            }
            let ports = config.policy.ports_to_guard();
            match config.enforce.ruleset(&ports) {
                Ok(r) => out.push_str(&format!(
                    "enforce: mode {:?}, {} guarded port(s), {} queue(s) from {}, {}, {}, {}\n",
                    config.enforce.mode,
                    r.ports.len(),
                    r.queue_count,
                    r.queue_first,
                    if r.fail_closed { "fail closed" } else { "fail open" },
                    fast_path_words(&config),
                    early_drop_words(&config.enforce)
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

/// What the trusted fast path will hold at start (run-time trust joins it then).
fn fast_path_words(config: &crate::config::Config) -> String {
    if !config.enforce.trusted_fast_path {
        return "trusted fast path off".into();
    }
    let nets = crate::daemon::trust::fast_path_networks(
        config.policy.trusted.iter(),
        &config.enforce.protected,
    );
    format!("trusted fast path on ({} network(s))", nets.len())
}

/// Where the early drop will sit: the devices named, or those with an address here now.
fn early_drop_words(enforce: &crate::config::EnforceConfig) -> String {
    if !enforce.ingress_drop {
        return "early drop off".into();
    }
    let how = if enforce.ingress_devices.is_empty() { "devices with an address" } else { "named" };
    let devices = enforce.ingress_devices_here();
    if devices.is_empty() {
        return format!("early drop on, no device ({how})");
    }
    format!("early drop on {} ({how})", devices.join(", "))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_fleet_line_shows_tls_and_hides_the_password() {
        let text = "[fleet]\nredis_url = \"rediss://u:secret@192.0.2.1:6380/0\"\n\
                    tls_ca_file = \"/etc/sipwall/redis-ca.pem\"\n";
        let f = crate::config::parse_fleet(text).unwrap().unwrap();
        let line = super::fleet_line(&f);
        assert_eq!(
            line,
            "fleet: Redis rediss://u:***@192.0.2.1:6380/0 (TLS, server verified against \
             /etc/sipwall/redis-ca.pem), key prefix sipwall, entries unsigned\n"
        );
        let plain = crate::config::parse_fleet("[fleet]\nredis_url = \"redis://192.0.2.1\"\n")
            .unwrap()
            .unwrap();
        assert!(super::fleet_line(&plain).contains("(no TLS)"));
    }
}
