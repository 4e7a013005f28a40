#!/usr/bin/env python3
"""Independent RFC 9162 verifier for wfl's audit e2e test: hashlib only, no project code.

Input (argv[1]): JSON with
  leaves:      hex of each record's stored bytes, in sequence order (sequence = index + 1)
  chain:       hex of each record's chain hash as served
  inclusion:   [{sequence, tree_size, leaf_hash, root_hash, proof: [hex]}]
  consistency: [{old_size, new_size, old_root, new_root, proof: [hex]}]
  checkpoints: [{tree_size, root_hash, head_hash}]
Recomputes every root from the leaves by the RFC's recursive definition, runs the RFC's proof
verification algorithms, and checks that a flipped bit in any proof is rejected.
Prints "ok <checks>" and exits 0, or prints the first failure and exits 1.
"""
import hashlib
import json
import sys


def sha(b):
    return hashlib.sha256(b).digest()


def leaf_hash(d):
    return sha(b"\x00" + d)


def node_hash(l, r):
    return sha(b"\x01" + l + r)


def mth(hashes):
    n = len(hashes)
    if n == 0:
        return sha(b"")
    if n == 1:
        return hashes[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return node_hash(mth(hashes[:k]), mth(hashes[k:]))


def verify_inclusion(index, size, leaf, proof, root):
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(m, n, r1, r2, proof):
    if m == 0 or m > n:
        return False
    if m == n:
        return not proof and r1 == r2
    if not proof:
        return False
    path = ([r1] if m & (m - 1) == 0 else []) + list(proof)
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == r1 and sr == r2 and sn == 0


def flipped(proof):
    for i in range(len(proof)):
        p = list(proof)
        p[i] = bytes([p[i][0] ^ 1]) + p[i][1:]
        yield p


def main():
    data = json.load(open(sys.argv[1]))
    h = bytes.fromhex
    stored = [h(x) for x in data["leaves"]]
    leaves = [leaf_hash(d) for d in stored]
    chain, prev = [], bytes(32)
    for d in stored:
        prev = sha(prev + d)
        chain.append(prev)
    checks = 0

    def fail(msg):
        print("FAIL: " + msg)
        sys.exit(1)

    if [c.hex() for c in chain] != data["chain"]:
        fail("the served chain hashes do not recompute from the stored bytes")
    for c in data["inclusion"]:
        s, n = c["sequence"], c["tree_size"]
        root = mth(leaves[:n])
        proof = [h(p) for p in c["proof"]]
        if h(c["leaf_hash"]) != leaves[s - 1]:
            fail(f"leaf hash of {s}")
        if h(c["root_hash"]) != root:
            fail(f"root of size {n}")
        if not verify_inclusion(s - 1, n, leaves[s - 1], proof, root):
            fail(f"inclusion of {s} in {n}")
        for bad in flipped(proof):
            if verify_inclusion(s - 1, n, leaves[s - 1], bad, root):
                fail(f"a flipped inclusion proof of {s} in {n} verified")
        checks += 1
    for c in data["consistency"]:
        m, n = c["old_size"], c["new_size"]
        r1, r2 = mth(leaves[:m]), mth(leaves[:n])
        proof = [h(p) for p in c["proof"]]
        if h(c["old_root"]) != r1 or h(c["new_root"]) != r2:
            fail(f"roots of {m} -> {n}")
        if not verify_consistency(m, n, r1, r2, proof):
            fail(f"consistency {m} -> {n}")
        for bad in flipped(proof):
            if verify_consistency(m, n, r1, r2, bad):
                fail(f"a flipped consistency proof {m} -> {n} verified")
        checks += 1
    for c in data["checkpoints"]:
        n = c["tree_size"]
        if h(c["root_hash"]) != mth(leaves[:n]) or h(c["head_hash"]) != chain[n - 1]:
            fail(f"checkpoint at {n}")
        checks += 1
    print(f"ok {checks}")


if __name__ == "__main__":
    main()
