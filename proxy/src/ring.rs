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

    /// The partition of `/account[/container[/object]]`, given as its names.
    /// The path is hashed piece by piece, never built.
    pub fn partition(&self, names: &[&str]) -> u32 {
        let mut h = Md5::new();
        for name in names {
            h.update(b"/");
            h.update(name.as_bytes());
        }
        let d = h.chain_update(self.suffix.as_bytes()).finalize();
        // part_power 0: one partition (a shift by 32 would overflow).
        u32::from_be_bytes([d[0], d[1], d[2], d[3]])
            .checked_shr(self.part_shift)
            .unwrap_or(0)
    }

    /// The node of the path made of `names`. With one node there is
    /// nothing to choose (`zerocloud up`), and nothing is hashed.
    fn node_for(&self, names: &[&str]) -> &str {
        match self.nodes.as_slice() {
            [only] => only,
            nodes => &nodes[self.partition(names) as usize % nodes.len()],
        }
    }

    pub fn account_node(&self, a: &str) -> &str {
        self.node_for(&[a])
    }

    pub fn container_node(&self, a: &str, c: &str) -> &str {
        self.node_for(&[a, c])
    }

    pub fn object_node(&self, a: &str, c: &str, o: &str) -> &str {
        self.node_for(&[a, c, o])
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
        // The partition is the md5 of the path, as Swift's ring has it.
        let whole = Md5::new()
            .chain_update(b"/a/c/o")
            .chain_update(b"s")
            .finalize();
        assert_eq!(
            r.partition(&["a", "c", "o"]),
            u32::from_be_bytes([whole[0], whole[1], whole[2], whole[3]]) >> 22
        );
        let flat = Ring::new(vec!["a".into(), "b".into()], 0, "s".into()).unwrap();
        assert_eq!(flat.partition(&["a", "c", "o"]), 0);
        let one = Ring::new(vec!["only".into()], 10, "s".into()).unwrap();
        assert_eq!(one.object_node("a", "c", "o"), "only");
    }
}
