//! Block-list feeds, both ways.
//!
//! * Out ([`render`]): the active bans as a plain list, an `nft -f` file, an `ipset restore`
//!   file, a MikroTik script or JSON, for `sipwall feed export` and `GET /api/v1/feed`.
//! * In ([`list`], [`fetch`]): `[blocklist] urls`, downloaded by the daemon on a thread of its
//!   own (never on the judging path), each entry validated, the last good copy kept in
//!   `STATE_DIR/feeds/`, the allowlist (trusted networks, this host's and local addresses,
//!   known-good addresses) always winning, and the union with the configured block list
//!   handed to the block-list loader (`replace_blocklist_in_batches`), like the files.
//!
//! Fetched entries live in the kernel's block-list sets only; the engine's policy keeps the
//! configured networks and files. The kernel set drops a listed source before the queue, so
//! the engine does not see it inline, and `inspect` (offline, no network) never fetches.
pub mod fetch;
pub mod list;
pub mod render;
