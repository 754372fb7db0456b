//! `sipwall status` and `sipwall reload`: ask the running daemon. Without a daemon, `status`
//! says "not running" and exits 3, as `systemctl status` does, so scripts can tell "down"
//! from "broken" (2).
use std::process::ExitCode;

use super::{emit, Format, SocketArgs};
use crate::client;
use crate::protocol::{Request, Status};
use crate::time;

/// Exit status of `sipwall status` when no daemon answers.
pub const NOT_RUNNING: u8 = 3;

/// `sipwall status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    #[command(flatten)]
    pub socket: SocketArgs,
}

/// `sipwall reload`.
#[derive(Debug, clap::Args)]
pub struct ReloadArgs {
    #[command(flatten)]
    pub socket: SocketArgs,
}

/// `sipwall status`.
pub fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let sock = args.socket.path()?;
    let s = match client::call_ok(&sock, &Request::Status) {
        Ok(r) => *r.status.ok_or_else(|| anyhow::anyhow!("the daemon sent no status"))?,
        Err(e) if client::daemon_absent(&e) => {
            let out = match args.format {
                Format::Json => {
                    serde_json::to_string_pretty(&serde_json::json!({"running": false}))? + "\n"
                }
                Format::Text => {
                    format!("sipwall is not running (no daemon answers at {})\n", sock.display())
                }
            };
            emit(&out)?;
            return Ok(ExitCode::from(NOT_RUNNING));
        }
        Err(e) => return Err(e),
    };
    let out = match args.format {
        Format::Json => {
            let mut v = serde_json::to_value(&s)?;
            v["running"] = serde_json::Value::Bool(true);
            serde_json::to_string_pretty(&v)? + "\n"
        }
        Format::Text => status_text(&s),
    };
    emit(&out)?;
    Ok(ExitCode::SUCCESS)
}

/// `sipwall reload`: the daemon re-reads its config; a config error is printed and the exit
/// status is 1 (the daemon keeps its current policy).
pub fn reload(args: ReloadArgs) -> anyhow::Result<ExitCode> {
    let sock = args.socket.path()?;
    let r = client::call(&sock, &Request::Reload)?;
    if r.ok {
        emit(&(r.message.unwrap_or_default() + "\n"))?;
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("sipwall: reload failed: {}", r.error.as_deref().unwrap_or("refused"));
        Ok(ExitCode::FAILURE)
    }
}

/// The `fleet:` lines of `sipwall status`.
fn fleet_text(f: &crate::protocol::FleetStatus) -> String {
    let state = if f.connected {
        "connected".to_string()
    } else {
        format!("DISCONNECTED ({})", f.error.as_deref().unwrap_or("connecting"))
    };
    let sync = match f.last_sync_ms {
        0 => "never".to_string(),
        ms => format!("{} ({} bans)", time::rfc3339(ms), f.last_sync_bans),
    };
    let mut o = format!(
        "fleet:     node {} on {}: {state}; last sync {sync}, {} resync(s), lag {} ms{}\n",
        f.node_id,
        f.redis,
        f.resyncs,
        f.lag_ms,
        if f.signed { ", signed" } else { "" }
    );
    o.push_str(&format!(
        "           {} received, {} published, {} queued, {} dropped; ignored: {} refused here, \
         {} bad signature, {} too wide, {} over rate, {} malformed\n",
        f.received,
        f.published,
        f.queued,
        f.dropped,
        f.refused_local,
        f.rejected_signature,
        f.rejected_width,
        f.rejected_rate,
        f.rejected_malformed
    ));
    o
}

/// The text of `sipwall status`.
pub fn status_text(s: &Status) -> String {
    let mut o = String::new();
    let up =
        time::human(std::time::Duration::from_secs(s.now_ms.saturating_sub(s.started_ms) / 1000));
    o.push_str(&format!(
        "sipwall {} running (pid {}), up {up} since {}\n",
        s.version,
        s.pid,
        time::rfc3339(s.started_ms)
    ));
    if s.observe {
        o.push_str("OBSERVING: decisions are recorded, nothing is dropped or banned\n");
    }
    o.push_str(&format!("mode:      {} (queue backend {})\n", s.mode, s.queue_backend));
    if !s.simulate.is_empty() && !s.observe {
        o.push_str(&format!("simulated: {} (would drop/ban only)\n", s.simulate.join(", ")));
    }
    o.push_str(&format!("guarded:   {}\n", list(&s.guarded_ports)));
    match &s.trusted_fast_path {
        None => o.push_str("fast path: off (trusted requests are queued)\n"),
        Some(_) if s.trusted_fast_path_unavailable.is_some() => o.push_str(&format!(
            "fast path: UNAVAILABLE, trusted requests are queued (the kernel refused its rules: {})\n",
            s.trusted_fast_path_unavailable.as_deref().unwrap_or_default()
        )),
        Some(nets) if nets.is_empty() => o.push_str("fast path: on, nothing trusted\n"),
        Some(nets) => o.push_str(&format!(
            "fast path: {} (UDP requests skip the queue; answers and REGISTERs do not){}\n",
            nets.join(", "),
            s.trusted_fast_path_packets.map(|n| format!(": {n} packets")).unwrap_or_default()
        )),
    }
    match &s.early_drop {
        None => o.push_str("early drop: off (banned sources are dropped at PREROUTING only)\n"),
        Some(devs) => {
            let on = if devs.is_empty() { "no device".to_string() } else { devs.join(", ") };
            o.push_str(&format!("early drop: {on} (banned sources dropped at ingress)\n"));
        }
    }
    for refused in &s.early_drop_refused {
        o.push_str(&format!(
            "early drop: REFUSED on {refused} (PREROUTING still drops its banned sources)\n"
        ));
    }
    let trip: Vec<String> = s.tripwire_ports.iter().map(u16::to_string).collect();
    o.push_str(&format!("tripwire:  {}\n", list(&trip)));
    o.push_str(&format!("store:     {}\n", s.store));
    if let Some(l) = &s.learn {
        o.push_str(&format!("learning:  {} ({})\n", l.line(), l.mode));
    }
    match &s.last_reload {
        None => o.push_str("reload:    none since start\n"),
        Some(r) => o.push_str(&format!(
            "reload:    {} {}: {}\n",
            time::rfc3339(r.at_ms),
            if r.ok { "ok" } else { "FAILED" },
            r.message
        )),
    }
    if let Some(f) = &s.fleet {
        o.push_str(&fleet_text(f));
    }
    o.push_str(&format!("sources:   {} tracked\n", s.tracked_sources));
    o.push_str(&format!("bans:      {} active", s.bans_active));
    if s.bans_simulated > 0 {
        o.push_str(&format!(" ({} simulated)", s.bans_simulated));
    }
    o.push('\n');
    for (rule, n) in &s.bans_by_rule {
        o.push_str(&format!("  {n:>8}  {rule}\n"));
    }
    let opt = |v: Option<u64>| v.map_or("-".to_string(), |n| n.to_string());
    let head = [
        "QUEUE",
        "PKT/S",
        "PACKETS",
        "DROPPED",
        "WOULD-DROP",
        "UNPARSED",
        "FRAGMENTS",
        "K-WAITING",
        "K-DROPPED",
        "USER-DROPPED",
    ];
    let rows: Vec<[String; 10]> = s
        .queues
        .iter()
        .map(|q| {
            [
                q.num.to_string(),
                format!("{:.1}", q.packets_per_sec),
                q.packets.to_string(),
                q.dropped.to_string(),
                q.would_drop.to_string(),
                q.unparsed.to_string(),
                q.fragments.to_string(),
                opt(q.kernel_waiting),
                opt(q.kernel_dropped),
                opt(q.user_dropped),
            ]
        })
        .collect();
    let mut w = head.map(str::len);
    for r in &rows {
        for (w, c) in w.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i > 0 {
                l.push_str("  ");
            }
            l.push_str(&format!("{c:>width$}", width = w[i]));
        }
        l + "\n"
    };
    o.push_str(&line(head.to_vec()));
    for r in &rows {
        o.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    o
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{QueueStatus, ReloadStatus};

    fn fixed() -> Status {
        Status {
            version: "0.1.0".into(),
            pid: 4242,
            started_ms: 1_764_000_000_000,
            now_ms: 1_764_000_000_000 + 5_400_000,
            mode: "host".into(),
            observe: false,
            simulate: vec!["behaviour".into()],
            queue_backend: "nft".into(),
            guarded_ports: vec!["udp:5060".into(), "tcp:5060".into(), "tls:5061".into()],
            trusted_fast_path: Some(vec!["198.51.100.0/24".into()]),
            trusted_fast_path_packets: Some(48_213),
            trusted_fast_path_unavailable: None,
            early_drop: Some(vec!["eth0".into()]),
            early_drop_refused: Vec::new(),
            tripwire_ports: vec![5070],
            queues: vec![
                QueueStatus {
                    num: 0,
                    packets_per_sec: 12.5,
                    packets: 123_456,
                    dropped: 789,
                    would_drop: 3,
                    unparsed: 2,
                    fragments: 1,
                    kernel_waiting: Some(0),
                    kernel_dropped: Some(4),
                    user_dropped: Some(0),
                },
                QueueStatus { num: 1, ..QueueStatus::default() },
            ],
            bans_active: 3,
            bans_by_rule: [("manual".to_string(), 1), ("signature.sipvicious".to_string(), 2)]
                .into_iter()
                .collect(),
            bans_simulated: 0,
            tracked_sources: 17,
            store: "ok".into(),
            last_reload: Some(ReloadStatus {
                at_ms: 1_764_000_600_000,
                ok: false,
                message:
                    "line 3: enforce.mode: unknown variant `bridge`; keeping the current policy"
                        .into(),
            }),
            learn: None,
            fleet: None,
        }
    }

    #[test]
    fn status_says_whether_learning_enforces_yet() {
        let learn = crate::protocol::LearnSummary {
            mode: "auto".into(),
            enforcing: false,
            local_users: 2,
            ..Default::default()
        };
        let t = status_text(&Status { learn: Some(learn.clone()), ..fixed() });
        assert!(
            t.contains("learning:  learning, not enforcing yet (no upstream learned): 0 upstream(s), 2 local user(s)"),
            "{t}"
        );
        let on = crate::protocol::LearnSummary { enforcing: true, upstreams: 1, ..learn };
        let t = status_text(&Status { learn: Some(on), ..fixed() });
        assert!(
            t.contains("learning:  enforcing the unsolicited-INVITE rule: 1 upstream(s)"),
            "{t}"
        );
    }

    #[test]
    fn status_text_reads_well() {
        insta::assert_snapshot!(status_text(&fixed()));
    }

    #[test]
    fn the_fast_path_is_said_off_on_or_unavailable() {
        let mut s = fixed();
        s.trusted_fast_path_unavailable = Some("iptables-restore: u32: no such match".into());
        let t = status_text(&s);
        assert!(t.contains("fast path: UNAVAILABLE") && t.contains("no such match"), "{t}");
        s.trusted_fast_path = None;
        s.trusted_fast_path_unavailable = None;
        assert!(status_text(&s).contains("fast path: off"));
        s.trusted_fast_path = Some(Vec::new());
        assert!(status_text(&s).contains("fast path: on, nothing trusted"));
    }

    #[test]
    fn the_early_drop_is_said_on_off_or_refused() {
        let mut s = fixed();
        assert!(status_text(&s).contains("early drop: eth0 (banned sources dropped at ingress)"));
        s.early_drop = Some(Vec::new());
        s.early_drop_refused = vec!["eth9: nft: No such file or directory".into()];
        let t = status_text(&s);
        assert!(t.contains("early drop: no device"), "{t}");
        assert!(t.contains("early drop: REFUSED on eth9: nft: No such file"), "{t}");
        s.early_drop = None;
        s.early_drop_refused.clear();
        assert!(status_text(&s).contains("early drop: off"));
    }

    #[test]
    fn the_fleet_link_is_shown_when_on() {
        assert!(!status_text(&fixed()).contains("fleet:"));
        let f = crate::protocol::FleetStatus {
            node_id: "pbx-07".into(),
            redis: "redis://192.0.2.1:6379/0".into(),
            connected: false,
            error: Some("connection refused".into()),
            last_sync_ms: 1_764_000_000_000,
            last_sync_bans: 42,
            resyncs: 2,
            received: 7,
            refused_local: 1,
            rejected_signature: 3,
            signed: true,
            ..Default::default()
        };
        let t = status_text(&Status { fleet: Some(f), ..fixed() });
        assert!(
            t.contains("fleet:     node pbx-07 on redis://192.0.2.1:6379/0: DISCONNECTED (connection refused); last sync 2025-11-24T16:00:00Z (42 bans), 2 resync(s), lag 0 ms, signed"),
            "{t}"
        );
        assert!(
            t.contains("7 received")
                && t.contains("1 refused here")
                && t.contains("3 bad signature"),
            "{t}"
        );
    }

    #[test]
    fn observing_is_said_first() {
        let s = Status { observe: true, mode: "observe".into(), ..fixed() };
        let t = status_text(&s);
        assert_eq!(
            t.lines().nth(1),
            Some("OBSERVING: decisions are recorded, nothing is dropped or banned")
        );
    }

    #[test]
    fn the_status_model_round_trips_in_json() {
        let s = fixed();
        let j = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<Status>(&j).unwrap(), s);
        let v: serde_json::Value = serde_json::from_str(&j).unwrap();
        assert_eq!(v["queues"][0]["kernel_dropped"], 4);
        assert!(v["queues"][1].get("kernel_dropped").is_none(), "absent when unknown");
        assert_eq!(v["bans_by_rule"]["signature.sipvicious"], 2);
    }
}
