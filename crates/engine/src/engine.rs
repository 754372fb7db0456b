//! The engine. SKELETON: the engine issue implements it.
#![allow(missing_docs, unused_variables, dead_code, clippy::todo)]
use std::time::Duration;

use ipnet::IpNet;

use crate::decision::*;
use crate::policy::Policy;

/// Counters for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct EngineStats {
    pub packets: u64,
    pub accepted: u64,
    pub dropped: u64,
    pub rejected: u64,
    pub bans_added: u64,
    pub tracked_sources: u64,
    pub evicted_sources: u64,
}

pub struct Engine {
    policy: Policy,
}

impl Engine {
    pub fn new(policy: Policy) -> Self {
        todo!()
    }
    pub fn policy(&self) -> &Policy {
        &self.policy
    }
    /// Replace the policy, keeping bans and behaviour state.
    pub fn reload(&mut self, policy: Policy) {
        todo!()
    }
    pub fn decide(&mut self, packet: &Packet<'_>, now: Timestamp) -> Decision {
        todo!()
    }
    /// Ban by hand. Refuses (returns None) for trusted networks.
    pub fn ban_manual(
        &mut self,
        net: IpNet,
        duration: Duration,
        reason: &str,
        now: Timestamp,
    ) -> Option<BanAction> {
        todo!()
    }
    pub fn unban(&mut self, net: IpNet) -> Option<BanAction> {
        todo!()
    }
    /// Put back a ban loaded from the store (skipped if expired or trusted).
    pub fn restore_ban(&mut self, ban: Ban, now: Timestamp) -> bool {
        todo!()
    }
    /// Remove expired bans; returns their Remove actions.
    pub fn expire(&mut self, now: Timestamp) -> Vec<BanAction> {
        todo!()
    }
    pub fn bans(&self) -> impl Iterator<Item = &Ban> + '_ {
        std::iter::empty()
    }
    pub fn stats(&self) -> EngineStats {
        todo!()
    }
}
