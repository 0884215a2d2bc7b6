//! What a node knows of the replication pipeline's health: `Test-ReplicationHealth`, and
//! `Get-StorageGroupCopyStatus` asked of either node (it reports the passive copy).

use super::{Node, Role};
use crate::cluster::health::{HealthCheck, ReplicationHealth};
use crate::cluster::status::{CmsState, CopyStatus, SummaryCopyStatus};
use crate::cluster::{Net, Now};

impl Node {
    /// `Get-StorageGroupCopyStatus` as Exchange answers it in CCR: the passive copy, wherever
    /// it is asked. The active knows the passive's copy from its heartbeats; with the passive
    /// unheard, its replication service is down as far as anyone can tell.
    pub fn passive_copy_status(&self, now: Now) -> CopyStatus {
        self.passive_copy_status_of(0, now)
    }

    /// The same for storage group `group`.
    pub fn passive_copy_status_of(&self, group: u8, now: Now) -> CopyStatus {
        let g = self.group(group);
        if matches!(g.role, Role::Passive) {
            return self.copy_status_of(group);
        }
        let last_closed = g.closed.keys().next_back().copied().unwrap_or(0);
        let report = g
            .peer
            .as_ref()
            .filter(|_| !self.peer_down(now))
            .and_then(|p| p.copy.clone());
        match report {
            Some(c) => CopyStatus {
                node: self.id.peer(),
                summary: c.status,
                copy_queue_length: last_closed.saturating_sub(c.last_inspected),
                replay_queue_length: c.last_inspected.saturating_sub(c.last_replayed),
                last_inspected_generation: c.last_inspected,
                last_replayed_generation: c.last_replayed,
                last_inspected_log_time: None,
                last_replayed_log_time: None,
                failed_message: c
                    .reseed_required
                    .then(|| "the copy needs a reseed (Update-StorageGroupCopy)".into()),
                suspend_comment: c.suspend_comment,
            },
            None => CopyStatus {
                node: self.id.peer(),
                summary: SummaryCopyStatus::ServiceDown,
                copy_queue_length: 0,
                replay_queue_length: 0,
                last_inspected_generation: 0,
                last_replayed_generation: 0,
                last_inspected_log_time: None,
                last_replayed_log_time: None,
                failed_message: Some(format!("{} is not heard from", self.id.peer())),
                suspend_comment: None,
            },
        }
    }

    /// `Test-ReplicationHealth`: each check as this node can judge it.
    pub fn replication_health(&self, now: Now) -> ReplicationHealth {
        let check = |name: &str, passed: bool, detail: String| HealthCheck {
            check: name.into(),
            passed,
            detail,
        };
        let peer = self.id.peer();
        let cms = self.cms_status(now);
        let window = self.config.peer_down_after_ms();
        let silent: Vec<&str> = [(Net::Public, "public"), (Net::Private, "private")]
            .into_iter()
            .filter(|(net, _)| self.last_heard[net.index()].is_none_or(|t| now.mono >= t + window))
            .map(|(_, name)| name)
            .collect();
        // More missing than the dial allows: a failover now would leave the database
        // dismounted.
        let allowed = self.config.dial_limits.allowed(self.config.mount_dial);
        // A passive holds no lease of its own: it is in the quorum while it hears the owner
        // (two votes of three), or while the witness votes for it.
        let in_quorum = self.has_quorum(now) || (!self.owner_side() && !self.peer_down(now));
        let mut checks = vec![
            check(
                "ClusterService",
                in_quorum,
                if in_quorum {
                    "the cluster has quorum".into()
                } else {
                    format!(
                        "{} has no quorum: neither {peer} nor the witness votes for it",
                        self.id
                    )
                },
            ),
            check(
                "PeerNodeUp",
                !self.peer_down(now),
                format!(
                    "{peer} {}",
                    if self.peer_down(now) {
                        "is down"
                    } else {
                        "is up"
                    }
                ),
            ),
            check(
                "ClusterNetwork",
                silent.is_empty(),
                if silent.is_empty() {
                    "heartbeats on every cluster network".into()
                } else {
                    format!(
                        "no heartbeat from {peer} on the {} network",
                        silent.join(" and ")
                    )
                },
            ),
            check(
                "CmsGroup",
                cms.state == CmsState::Online,
                format!(
                    "{} is {:?}{}",
                    cms.identity,
                    cms.state,
                    cms.reason.map_or(String::new(), |r| format!(": {r}"))
                ),
            ),
            check(
                "ReplayService",
                self.store_failure.is_none(),
                self.store_failure.as_ref().map_or_else(
                    || "running".into(),
                    |f| format!("failed on {}: {f}", self.id),
                ),
            ),
        ];
        for group in 0..self.group_count() {
            let copy = self.passive_copy_status_of(group, now);
            // Each storage group's copy is checked; with more than one, each row names its.
            let sg = if self.group_count() > 1 {
                format!("{}: ", self.group(group).files.logs.prefix())
            } else {
                String::new()
            };
            checks.extend(self.copy_checks(&sg, &copy, allowed));
        }
        ReplicationHealth {
            server: self.id.to_string(),
            checks,
        }
    }

    /// Test-ReplicationHealth's checks of one storage group's passive copy.
    fn copy_checks(&self, sg: &str, copy: &CopyStatus, allowed: u32) -> Vec<HealthCheck> {
        let check = |name: &str, passed: bool, detail: String| HealthCheck {
            check: name.into(),
            passed,
            detail: format!("{sg}{detail}"),
        };
        vec![
            check(
                "SGCopySuspended",
                copy.summary != SummaryCopyStatus::Suspended,
                match &copy.suspend_comment {
                    Some(c) if copy.summary == SummaryCopyStatus::Suspended => {
                        format!("the copy on {} is suspended: {c}", copy.node)
                    }
                    _ => format!("the copy on {} is {:?}", copy.node, copy.summary),
                },
            ),
            check(
                "SGCopyFailed",
                !matches!(
                    copy.summary,
                    SummaryCopyStatus::Failed | SummaryCopyStatus::ServiceDown
                ),
                format!(
                    "the copy on {} is {:?}{}",
                    copy.node,
                    copy.summary,
                    copy.failed_message
                        .as_ref()
                        .map_or(String::new(), |m| format!(": {m}"))
                ),
            ),
            check(
                "SGCopyQueueLength",
                copy.copy_queue_length <= allowed,
                format!(
                    "copy queue {} log(s); the mount dial allows {allowed} missing",
                    copy.copy_queue_length
                ),
            ),
        ]
    }
}
