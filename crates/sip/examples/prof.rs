//! Profiling loop for the bench's headline message (used for the instruction counts in
//! docs/BENCHMARKS.md): `N=3000 valgrind --tool=callgrind target/release/examples/prof MODE`
//! with MODE `parse` (sipwall parse only), `all` (parse + every field), `rsip` (rsip parse
//! only) or `rsipall` (rsip parse + the same fields, as in benches/parse.rs).
use std::time::Instant;
fn main() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/phone/invite-600.sip");
    let raw = std::fs::read(path).unwrap();
    let mode = std::env::args().nth(1).unwrap_or_default();
    let n: usize = std::env::var("N").ok().and_then(|v| v.parse().ok()).unwrap_or(200_000);
    let t = Instant::now();
    let mut s = 0usize;
    for _ in 0..n {
        let r = std::hint::black_box(&raw[..]);
        match mode.as_str() {
            "parse" => s += sipwall_sip::Message::parse(r).unwrap().header_count(),
            "rsip" => s += rsip::SipMessage::try_from(r).unwrap().body().len(),
            "rsipall" => s += rsip_all(r),
            m if m.starts_with("acc:") => {
                let msg = sipwall_sip::Message::parse(r).unwrap();
                s += match &m[4..] {
                    "from" => msg.from().map_or(0, |x| x.uri.raw.len()),
                    "contact" => msg.contact().map_or(0, |x| x.uri.raw.len()),
                    "to" => msg.to().map_or(0, |x| x.uri.raw.len()),
                    "body" => msg.body().len(),
                    "first" => msg.max_forwards().unwrap_or(0) as usize,
                    "via" => msg.top_via().map_or(0, |x| x.protocol.len()),
                    "via_count" => msg.via_count(),
                    "ruri" => msg.request_uri().map_or(0, |x| x.raw.len()),
                    "cseq" => msg.cseq().map_or(0, |x| x.number as usize),
                    "sdp" => msg.sdp_session_name().map_or(0, |x| x.len()),
                    "call_id" => msg.call_id().map_or(0, |x| x.len()),
                    _ => msg.header_count(),
                }
            }
            _ => s += sipwall_sip::exercise::every_field(&sipwall_sip::Message::parse(r).unwrap()),
        }
    }
    println!("{mode}: {} ns/msg ({s})", t.elapsed().as_nanos() / n as u128);
}

#[path = "../benches/common/rsip_fields.rs"]
mod rsip_fields;
use rsip_fields::rsip_extract;

fn rsip_all(r: &[u8]) -> usize {
    rsip_extract(r).unwrap()
}
