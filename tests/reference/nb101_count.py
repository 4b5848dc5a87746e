#!/usr/bin/python3
"""nb101_count.py — independent brute force of NAS-Bench-101's generate_graphs
for small vertex counts: every upper-triangular matrix, is_full_dag, at most
9 edges, every labelling, hash_module with hashlib md5; prints the number of
distinct hashes for 2..MAX vertices (cumulative), one "n count" per line.
Written from the NAS-Bench-101 scripts' logic, not from the C code.
usage: /usr/bin/python3 tests/reference/nb101_count.py [MAX=5]"""
import hashlib
import itertools
import sys


def is_full_dag(m, n):
    rows_bad = any(all(m[i][j] == 0 for j in range(n)) for i in range(n - 1))
    cols_bad = any(all(m[i][j] == 0 for i in range(n)) for j in range(1, n))
    return not rows_bad and not cols_bad


def hash_module(m, labeling):
    n = len(m)
    in_edges = [sum(m[i][v] for i in range(n)) for v in range(n)]
    out_edges = [sum(m[v]) for v in range(n)]
    hashes = [hashlib.md5(str((out_edges[v], in_edges[v], labeling[v])).encode()).hexdigest() for v in range(n)]
    for _ in range(n):
        new = []
        for v in range(n):
            ins = [hashes[w] for w in range(n) if m[w][v]]
            outs = [hashes[w] for w in range(n) if m[v][w]]
            new.append(hashlib.md5((''.join(sorted(ins)) + '|' + ''.join(sorted(outs)) + '|' + hashes[v]).encode()).hexdigest())
        hashes = new
    return hashlib.md5(str(sorted(hashes)).encode()).hexdigest()


def main():
    top = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    buckets = set()
    for n in range(2, top + 1):
        for bits in range(2 ** (n * (n - 1) // 2)):
            m = [[1 if x < y and (bits >> (x + y * (y - 1) // 2)) % 2 == 1 else 0 for y in range(n)] for x in range(n)]
            if not is_full_dag(m, n) or sum(map(sum, m)) > 9:
                continue
            for lab in itertools.product(range(3), repeat=n - 2):
                buckets.add(hash_module(m, [-1] + list(lab) + [-2]))
        print(n, len(buckets))


if __name__ == '__main__':
    main()
