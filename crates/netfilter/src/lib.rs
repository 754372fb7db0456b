//! Placeholder: see ARCHITECTURE.md.
#![deny(unsafe_code)]
