//! The public network as a cluster resource: the serving node pings the hub over it every
//! heartbeat; when its own public network fails while the peer's works, the cluster moves the
//! clustered mailbox server to the peer (the IP Address resource failing over), losslessly,
//! because the nodes still talk over the private network. Node-to-node traffic (log copying
//! included, as with Exchange 2007 SP1's replication host names) falls back to the private
//! network while the peer's public heartbeats are not arriving.

use super::{Net, Node, NodeEvent, Now};
use crate::cluster::status::SummaryCopyStatus;

impl Node {
    /// Whether the hub answered a ping over the public network recently. Silence only counts
    /// once this node has been pinging for a whole detection period: just started, or just
    /// back from a pause, it gets the benefit of the doubt.
    pub(super) fn public_ok(&self, now: Now) -> bool {
        let window = self.config.peer_down_after_ms();
        let since = self.public_pong.unwrap_or(0).max(self.pinging_since);
        now.mono < since + window
    }

    /// Called with every heartbeat from the peer, before `last_heard` moves on.
    pub(super) fn note_heard(&mut self, now: Now, net: Net) {
        let gap = 2 * self.config.heartbeat_interval_ms();
        let last = self.last_heard[net.index()];
        if net == Net::Private && last.is_none_or(|t| now.mono > t + gap) {
            self.private_since = now.mono;
        }
    }

    /// Called with every ping sent.
    pub(super) fn note_ping(&mut self, now: Now) {
        let gap = 2 * self.config.heartbeat_interval_ms();
        if self.last_ping.is_none_or(|t| now.mono > t + gap) {
            self.pinging_since = now.mono;
        }
        self.last_ping = Some(now.mono);
    }

    /// The network to reach the peer (and its log share) on.
    pub(super) fn peer_net(&self, now: Now) -> Net {
        let window = self.config.peer_down_after_ms();
        let fresh = |net: Net| self.last_heard[net.index()].is_some_and(|t| now.mono < t + window);
        if !fresh(Net::Public) && fresh(Net::Private) {
            Net::Private
        } else {
            Net::Public
        }
    }

    /// Serving without a public network helps no client: move to a peer that has one.
    pub(super) fn leave_if_public_network_failed(&mut self, now: Now) {
        // Only a peer heard over the private network all along — while the public one fell
        // silent — can take over cleanly; a node cut off from everything, or just back from
        // that, is the quorum rules' business, not this one's.
        let peer_heard_privately = self.last_heard[Net::Private.index()]
            .is_some_and(|t| now.mono < t + 2 * self.config.heartbeat_interval_ms())
            && now.mono >= self.private_since + self.config.peer_down_after_ms();
        if !self.config.public_network_failover
            || !self.serving_any()
            || self.public_ok(now)
            || !peer_heard_privately
        {
            return;
        }
        let peer_ready = self.peer.as_ref().is_some_and(|p| p.public_ok)
            && self.groups().all(|g| {
                g.peer
                    .as_ref()
                    .and_then(|p| p.copy.as_ref())
                    .is_some_and(|c| c.status == SummaryCopyStatus::Healthy)
            });
        let tried_recently = self
            .public_move_tried
            .is_some_and(|t| now.mono < t + self.config.peer_down_after_ms());
        if !peer_ready || tried_recently {
            return;
        }
        self.public_move_tried = Some(now.mono);
        self.emit(NodeEvent::PublicNetworkFailed);
        let target = self.id.peer();
        self.start_move(
            now,
            target,
            format!("cluster: the public network failed on {}", self.id),
        );
    }
}
