mod common;
use ccr_core::cluster::config::ClusterConfig;
use ccr_core::cluster::NodeId::*;
use common::world::{Fault, NetConfig, World};

#[test]
fn probe() {
    let mut w = World::new(0, ClusterConfig::default(), NetConfig { max_delay_ms: 1, drop_rate: 0.0, dup_rate: 0.0 });
    w.workload(100, 150_000);
    w.schedule(28001, Fault::PowerLoss(Node1));
    w.schedule(39001, Fault::Cut { from: common::world::Place::Node(Node2), to: common::world::Place::Hub, net: ccr_core::cluster::Net::Public });
    w.run_until(160_000);
    w.heal_everything();
    w.run_until(400_000);
    for (t, id, e) in w.events.iter().filter(|(_, _, e)| !matches!(e, ccr_core::cluster::node::NodeEvent::LogCopied{..} | ccr_core::cluster::node::NodeEvent::LogReplayed{..})).take(60) {
        println!("  {t} {id} {e:?}");
    }
    println!("{:?} acked {}", w.mounts(), w.acked.len());
    for id in [Node1, Node2] { let n = w.node(id).unwrap(); println!("{id} view {:?} lineage {:?} closed {:?} db {}", n.view(), n.lineage(), n.last_closed(), n.database().len()); }
    w.check_settled();
}
