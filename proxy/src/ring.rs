//! Placement: md5 of the path plus a cluster secret picks a partition, and each
//! partition belongs to one object server, as in Swift's ring (one replica).

use md5::{Digest, Md5};

#[derive(Debug, Clone)]
pub struct Ring {
    nodes: Vec<String>,
    part_shift: u32,
    suffix: String,
}

impl Ring {
    pub fn new(nodes: Vec<String>, part_power: u32, suffix: String) -> anyhow::Result<Ring> {
        anyhow::ensure!(
            !nodes.is_empty(),
            "the ring needs at least one object server"
        );
        anyhow::ensure!(part_power <= 24, "part_power must be at most 24");
        Ok(Ring {
            nodes,
            part_shift: 32 - part_power,
            suffix,
        })
    }

    /// Every node, in configuration order.
    pub fn nodes(&self) -> &[String] {
        &self.nodes
    }

    /// The partition of `/account[/container[/object]]`.
    pub fn partition(&self, path: &str) -> u32 {
        let d = Md5::new()
            .chain_update(path.as_bytes())
            .chain_update(self.suffix.as_bytes())
            .finalize();
        u32::from_be_bytes([d[0], d[1], d[2], d[3]]) >> self.part_shift
    }

    pub fn node_for(&self, path: &str) -> &str {
        let p = self.partition(path) as usize;
        &self.nodes[p % self.nodes.len()]
    }

    pub fn account_node(&self, a: &str) -> &str {
        self.node_for(&format!("/{a}"))
    }

    pub fn container_node(&self, a: &str, c: &str) -> &str {
        self.node_for(&format!("/{a}/{c}"))
    }

    pub fn object_node(&self, a: &str, c: &str, o: &str) -> &str {
        self.node_for(&format!("/{a}/{c}/{o}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_is_stable_and_spread() {
        let nodes: Vec<String> = (0..3).map(|i| format!("n{i}")).collect();
        let r = Ring::new(nodes, 10, "s".into()).unwrap();
        assert_eq!(r.object_node("a", "c", "o"), r.object_node("a", "c", "o"));
        let mut counts = [0; 3];
        for i in 0..3000 {
            let n = r.object_node("a", "c", &format!("o{i}"));
            counts[n[1..].parse::<usize>().unwrap()] += 1;
        }
        assert!(counts.iter().all(|&c| c > 800), "{counts:?}");
        assert!(Ring::new(vec![], 10, "s".into()).is_err());
    }
}
