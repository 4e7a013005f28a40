//! RFC 9162 Merkle tree hashing, proofs and their verification.
//!
//! Owns: the hash functions (`leaf = SHA-256(0x00 || bytes)`,
//! `node = SHA-256(0x01 || left || right)`, empty tree = `SHA-256("")`), the
//! proof construction over any source of complete-subtree hashes
//! ([`NodeSource`]), the two verifiers of RFC 9162 §2.1.3.2 / §2.1.4.2 and an
//! in-memory [`Frontier`] (compact range) that folds leaves into a root in
//! O(log n) memory, for offline verifiers.
//!
//! Must not: touch storage. The backends store complete subtrees and answer
//! [`NodeSource::node`]; everything here is pure.
//!
//! Leaves are 0-based: the record at ledger sequence `s` is leaf `s - 1`, and
//! the tree of size `n` covers sequences `1..=n`.

use sha2::{Digest, Sha256};

use crate::{Error, Hash};

/// `SHA-256(0x00 || bytes)`: the hash of one leaf.
#[must_use]
pub fn leaf_hash(bytes: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(bytes);
    h.finalize().into()
}

/// `SHA-256(0x01 || left || right)`: the hash of an interior node.
#[must_use]
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the empty tree, `SHA-256("")`.
#[must_use]
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// Where proofs get complete-subtree hashes from.
pub trait NodeSource {
    /// The hash of the complete subtree of `2^level` leaves starting at leaf
    /// `index << level`. Only asked for subtrees inside the tree size at hand.
    ///
    /// # Errors
    /// [`Error::Corrupt`] if the stored node is missing or malformed;
    /// [`Error::Io`] if the storage is unavailable.
    fn node(&self, level: u32, index: u64) -> Result<Hash, Error>;
}

/// Largest power of two strictly below `n` (`n >= 2`).
fn split(n: u64) -> u64 {
    1u64 << (63 - (n - 1).leading_zeros())
}

/// `MTH(D[start..end])` for a range whose left edge is aligned as the RFC
/// recursion produces it (`start` a multiple of the largest power of two
/// that fits the range).
fn mth(src: &dyn NodeSource, start: u64, end: u64) -> Result<Hash, Error> {
    let size = end - start;
    if size == 0 {
        return Ok(empty_root());
    }
    if size.is_power_of_two() {
        let level = size.trailing_zeros();
        return src.node(level, start >> level);
    }
    let k = split(size);
    let left = mth(src, start, start + k)?;
    let right = mth(src, start + k, end)?;
    Ok(node_hash(&left, &right))
}

/// The root of the tree of the first `size` leaves.
///
/// # Errors
/// As [`NodeSource::node`].
pub fn root(src: &dyn NodeSource, size: u64) -> Result<Hash, Error> {
    mth(src, 0, size)
}

/// The audit path of leaf `index` in the tree of `size` leaves (RFC 9162
/// §2.1.3.1). The caller checks `index < size`.
///
/// # Errors
/// As [`NodeSource::node`].
pub fn inclusion_proof(src: &dyn NodeSource, index: u64, size: u64) -> Result<Vec<Hash>, Error> {
    let mut out = Vec::new();
    path(src, index, 0, size, &mut out)?;
    Ok(out)
}

fn path(
    src: &dyn NodeSource,
    m: u64,
    start: u64,
    end: u64,
    out: &mut Vec<Hash>,
) -> Result<(), Error> {
    let n = end - start;
    if n <= 1 {
        return Ok(());
    }
    let k = split(n);
    if m < k {
        path(src, m, start, start + k, out)?;
        out.push(mth(src, start + k, end)?);
    } else {
        path(src, m - k, start + k, end, out)?;
        out.push(mth(src, start, start + k)?);
    }
    Ok(())
}

/// The consistency proof between the trees of `old` and `new` leaves
/// (RFC 9162 §2.1.4.1). The caller checks `0 < old <= new`.
///
/// # Errors
/// As [`NodeSource::node`].
pub fn consistency_proof(src: &dyn NodeSource, old: u64, new: u64) -> Result<Vec<Hash>, Error> {
    let mut out = Vec::new();
    if old > 0 && old < new {
        subproof(src, old, 0, new, true, &mut out)?;
    }
    Ok(out)
}

fn subproof(
    src: &dyn NodeSource,
    m: u64,
    start: u64,
    end: u64,
    complete: bool,
    out: &mut Vec<Hash>,
) -> Result<(), Error> {
    let n = end - start;
    if m == n {
        if !complete {
            out.push(mth(src, start, end)?);
        }
        return Ok(());
    }
    let k = split(n);
    if m <= k {
        subproof(src, m, start, start + k, complete, out)?;
        out.push(mth(src, start + k, end)?);
    } else {
        subproof(src, m - k, start + k, end, false, out)?;
        out.push(mth(src, start, start + k)?);
    }
    Ok(())
}

/// RFC 9162 §2.1.3.2: does `proof` show leaf `index` (hash `leaf`) in the
/// tree of `size` leaves with root `root`?
#[must_use]
pub fn verify_inclusion(index: u64, size: u64, leaf: &Hash, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && r == *root
}

/// RFC 9162 §2.1.4.2: does `proof` show that the tree of `old` leaves with
/// root `old_root` is a prefix of the tree of `new` leaves with `new_root`?
#[must_use]
pub fn verify_consistency(
    old: u64,
    new: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> bool {
    if old == 0 || old > new {
        return false;
    }
    if old == new {
        return proof.is_empty() && old_root == new_root;
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    let (mut fnode, mut snode) = (old - 1, new - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    fr == *old_root && sr == *new_root && snode == 0
}

/// A compact range over the leaves pushed so far: the roots of the complete
/// subtrees of the binary decomposition of the size, largest first. Pushing
/// a leaf costs one hash plus one per carry (amortised two in all), and the
/// root at the current size costs one hash per set bit of the size.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    /// `(level, hash)`, strictly decreasing levels.
    stack: Vec<(u32, Hash)>,
}

impl Frontier {
    /// The empty tree.
    #[must_use]
    pub fn new() -> Frontier {
        Frontier::default()
    }

    /// Leaves pushed so far.
    #[must_use]
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Append one leaf by its leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        let mut level = 0;
        let mut hash = leaf;
        while let Some(&(top_level, top)) = self.stack.last() {
            if top_level != level {
                break;
            }
            self.stack.pop();
            hash = node_hash(&top, &hash);
            level += 1;
        }
        self.stack.push((level, hash));
        self.size += 1;
    }

    /// The root of the leaves pushed so far.
    #[must_use]
    pub fn root(&self) -> Hash {
        let mut iter = self.stack.iter().rev();
        let Some(&(_, mut acc)) = iter.next() else {
            return empty_root();
        };
        for (_, h) in iter {
            acc = node_hash(h, &acc);
        }
        acc
    }
}

/// Hash `hashes` (a power-of-two count, at least one) up to their root.
pub(crate) fn fold_power_of_two(hashes: &[Hash]) -> Hash {
    let mut level: Vec<Hash> = hashes.to_vec();
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| match pair {
                [l, r] => node_hash(l, r),
                [one] => *one,
                _ => empty_root(),
            })
            .collect();
    }
    level.first().copied().unwrap_or_else(empty_root)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Naive source: every node recomputed from the leaves.
    struct Naive(Vec<Hash>);

    impl NodeSource for Naive {
        fn node(&self, level: u32, index: u64) -> Result<Hash, Error> {
            let start = (index << level) as usize;
            let end = start + (1usize << level);
            Ok(fold_power_of_two(&self.0[start..end]))
        }
    }

    #[test]
    fn proofs_verify_for_every_size_and_index_up_to_40() {
        let leaves: Vec<Hash> = (0..40u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let mut frontier = Frontier::new();
        for n in 1..=40u64 {
            frontier.push(leaves[n as usize - 1]);
            let src = Naive(leaves[..n as usize].to_vec());
            let r = root(&src, n).unwrap();
            assert_eq!(frontier.root(), r, "frontier root at {n}");
            for m in 0..n {
                let proof = inclusion_proof(&src, m, n).unwrap();
                assert!(verify_inclusion(m, n, &leaves[m as usize], &proof, &r));
                let other = leaves[(m as usize + 1) % n as usize];
                if n > 1 {
                    assert!(!verify_inclusion(m, n, &other, &proof, &r));
                }
            }
            for old in 1..=n {
                let old_root = root(&src, old).unwrap();
                let proof = consistency_proof(&src, old, n).unwrap();
                assert!(
                    verify_consistency(old, n, &old_root, &r, &proof),
                    "{old}->{n}"
                );
                if old < n {
                    assert!(!verify_consistency(old, n, &r, &old_root, &proof));
                }
            }
        }
    }
}
