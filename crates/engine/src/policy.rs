//! Policy (TOML). SKELETON: the engine issue implements it.
#![allow(missing_docs, unused_variables, dead_code, clippy::todo)]

#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{0}")]
    Invalid(String),
}

impl Policy {
    /// Parse and validate TOML. Errors name the key and line.
    pub fn from_toml_str(text: &str) -> Result<Policy, PolicyError> {
        todo!()
    }
}
