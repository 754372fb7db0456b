//! Several captures as one stream, merged by timestamp (k-way merge; module docs of
//! [`super`]), each file read, counted and reported on its own.
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use sipwall_capture::{CaptureReader, Limits};
use sipwall_engine::{Engine, LearnMode, Policy, Timestamp};

use super::model::{
    Analysis, CampaignReport, FileReport, LearnedReport, LearningReport, SourceReport,
};
use super::tally::{DirectionRule, Tally};

/// Called with the bytes read so far (all files) as the read progresses.
pub type Progress<'a> = &'a mut dyn FnMut(u64);

/// Most capture files `inspect` takes in one run (see the module docs: every file is open
/// at once, each with its own read buffer and reassembly state).
pub const MAX_FILES: usize = 256;

/// One capture being read: its report so far and, while it has messages left, its reader.
struct Input {
    file: FileReport,
    reader: Option<CaptureReader>,
}

impl Input {
    fn open(path: &Path, ports: &[u16]) -> Self {
        let mut file = FileReport {
            path: path.display().to_string(),
            bytes_read: 0,
            frames: 0,
            sip_messages: 0,
            udp: 0,
            tcp_segments: 0,
            fragments_reassembled: 0,
            skipped_not_sip: 0,
            skipped_malformed: 0,
            skipped_other: 0,
            warnings: Vec::new(),
            error: None,
        };
        let opened =
            std::fs::File::open(path).map_err(sipwall_capture::CaptureError::from).and_then(|f| {
                CaptureReader::new(std::io::BufReader::with_capacity(1 << 16, f), Limits::default())
            });
        let reader = match opened {
            Ok(mut r) => {
                if !ports.is_empty() {
                    r.set_ports(Some(ports.to_vec()));
                }
                Some(r)
            }
            Err(e) => {
                file.error = Some(e.to_string());
                None
            }
        };
        Input { file, reader }
    }

    /// Timestamp of this file's next message; `None` once it has none left, when its
    /// counters are copied into the report and the file is closed.
    fn next_ts(&mut self) -> Option<Duration> {
        let reader = self.reader.as_mut()?;
        match reader.peek_ts() {
            Ok(Some(ts)) => return Some(ts),
            Ok(None) => {}
            Err(e) => self.file.error = Some(e.to_string()),
        }
        let file = &mut self.file;
        file.warnings = reader.warnings().to_vec();
        let st = reader.stats();
        file.bytes_read = st.bytes;
        file.frames = st.frames;
        file.sip_messages = st.sip_messages;
        file.udp = st.udp;
        file.tcp_segments = st.tcp_segments;
        file.fragments_reassembled = st.reassembled;
        file.skipped_not_sip = st.not_sip + st.port_filtered;
        file.skipped_malformed = st.malformed;
        file.skipped_other =
            st.not_ip + st.unsupported_linktype + st.fragments_dropped + st.tcp_gaps;
        self.reader = None;
        None
    }

    /// Bytes of the file read so far.
    fn position(&self) -> u64 {
        self.reader.as_ref().map_or(self.file.bytes_read, CaptureReader::position)
    }
}

/// Run the engine over the captures, merged by timestamp, and gather the report.
/// The caller bounds the number of files ([`MAX_FILES`]): all are open at once.
pub fn analyse(
    captures: &[PathBuf],
    policy: Policy,
    ports: &[u16],
    local: Vec<IpNet>,
    progress: Progress<'_>,
) -> Analysis {
    let sip_ports = if ports.is_empty() { policy.ports_to_guard() } else { ports.to_vec() };
    let mut tally = Tally {
        rule: DirectionRule { local, sip_ports },
        engine: Engine::new(policy),
        sources: HashMap::new(),
        analysis: Analysis {
            files: Vec::new(),
            messages: 0,
            unitemised_messages: 0,
            first_ms: None,
            last_ms: None,
            sources: Vec::new(),
            bans: Vec::new(),
            learning: Default::default(),
        },
    };
    let mut inputs: Vec<Input> = captures.iter().map(|p| Input::open(p, ports)).collect();
    // K-way merge: the heap holds each open file's next timestamp, the message itself stays
    // in its reader. Ties go to the file given first; within a file, its own order.
    let mut heap: BinaryHeap<Reverse<(Duration, usize)>> = BinaryHeap::new();
    for (i, input) in inputs.iter_mut().enumerate() {
        if let Some(ts) = input.next_ts() {
            heap.push(Reverse((ts, i)));
        }
    }
    let mut n = 0u64;
    while let Some(Reverse((_, i))) = heap.pop() {
        if n % 4096 == 0 {
            progress(inputs.iter().map(Input::position).sum());
        }
        n += 1;
        let input = &mut inputs[i];
        if let Some(reader) = input.reader.as_mut() {
            // Peeked, so a message is there (an error would have come at the peek).
            if let Ok(Some(pkt)) = reader.next_packet() {
                tally.message(&pkt);
            }
        }
        if let Some(ts) = input.next_ts() {
            heap.push(Reverse((ts, i)));
        }
    }
    progress(inputs.iter().map(Input::position).sum());
    let Tally { sources, mut analysis, engine, .. } = tally;
    analysis.learning = learning(&engine, analysis.last_ms.unwrap_or(0));
    analysis.files = inputs.into_iter().map(|i| i.file).collect();
    let mut list: Vec<SourceReport> = sources.into_values().collect();
    list.sort_by(|a, b| b.danger().cmp(&a.danger()).then(a.address.cmp(&b.address)));
    analysis.sources = list;
    analysis
}

/// What the engine learned over the captures, and the campaigns active at their end.
fn learning(engine: &Engine, last_ms: u64) -> LearningReport {
    let st = engine.learn_status();
    LearningReport {
        mode: match st.mode {
            LearnMode::Auto => "auto",
            LearnMode::Off => "off",
        }
        .to_string(),
        enforcing: st.enforcing,
        learned: engine
            .learned()
            .into_iter()
            .map(|f| LearnedReport {
                kind: f.key.kind().to_string(),
                value: f.key.value(),
                first_seen_ms: f.first_seen.as_millis(),
                last_seen_ms: f.last_seen.as_millis(),
                evidence: f.evidence,
            })
            .collect(),
        campaigns: engine
            .campaigns(Timestamp::from_millis(last_ms))
            .into_iter()
            .map(|c| CampaignReport {
                kind: match c.kind {
                    sipwall_engine::CampaignKind::TargetUser => "target-user",
                    sipwall_engine::CampaignKind::Fingerprint => "fingerprint",
                }
                .to_string(),
                key: c.key,
                label: c.label,
                sources: c.sources,
                first_seen_ms: c.first_seen.as_millis(),
                last_seen_ms: c.last_seen.as_millis(),
            })
            .collect(),
    }
}
