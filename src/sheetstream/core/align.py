"""Sequence alignment: the matching blocks of two sequences of hashable tokens (rows, or rows' keys).

The common prefix and suffix are skipped and the middle is aligned with Myers' O(ND) algorithm; when the
sequences differ too much for that to be cheap, tokens unique on both sides anchor the alignment (patience diff)
and the gaps between anchors are aligned the same way. Tokens are compared with `==` a slice at a time.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Hashable, Sequence
from math import isqrt

Block = tuple[int, int, int]
"""(i, j, n): old items i..i+n-1 correspond one to one to new items j..j+n-1."""

# Myers' algorithm costs about D*D/2 steps for D differing items; past this it gives way to anchoring on unique ones.
_MAX_MYERS_D = 256


def align(a: Sequence[Hashable], b: Sequence[Hashable]) -> list[Block]:
    """Matching blocks of two sequences, in order: Myers when the difference is small, else unique anchors."""
    blocks: list[Block] = []
    pending = [(0, len(a), 0, len(b))]
    while pending:
        alo, ahi, blo, bhi = pending.pop()
        prefix = match_len(a, b, alo, blo, min(ahi - alo, bhi - blo), True)
        if prefix:
            blocks.append((alo, blo, prefix))
            alo, blo = alo + prefix, blo + prefix
        suffix = match_len(a, b, ahi, bhi, min(ahi - alo, bhi - blo), False)
        if suffix:
            ahi, bhi = ahi - suffix, bhi - suffix
            blocks.append((ahi, bhi, suffix))
        if alo == ahi or blo == bhi:
            continue
        # Bound Myers' work by the size of the range, so ranges that differ a lot cost linear time each.
        size = ahi - alo + bhi - blo
        found = _myers(a[alo:ahi], b[blo:bhi], min(_MAX_MYERS_D, max(16, 2 * isqrt(size))))
        if found is not None:
            blocks.extend((alo + i, blo + j, n) for i, j, n in found)
            continue
        pi, pj = alo, blo
        for i, j in _unique_anchors(a, alo, ahi, b, blo, bhi):
            pending.append((pi, i, pj, j))
            blocks.append((i, j, 1))
            pi, pj = i + 1, j + 1
        if (pi, pj) != (alo, blo):
            pending.append((pi, ahi, pj, bhi))
        # else: nothing in common worth aligning; the range is one replaced block.
    blocks.sort()
    merged: list[Block] = []
    for i, j, n in blocks:
        if merged and merged[-1][0] + merged[-1][2] == i and merged[-1][1] + merged[-1][2] == j:
            merged[-1] = (merged[-1][0], merged[-1][1], merged[-1][2] + n)
        else:
            merged.append((i, j, n))
    return merged


def match_len(a: Sequence[object], b: Sequence[object], i: int, j: int, limit: int, forward: bool) -> int:
    """How many items match from a[i], b[j] onwards (or backwards, before them), at most `limit`.

    Gallops over slices, so long equal stretches are compared in C rather than item by item.
    """

    def same(lo: int, hi: int) -> bool:
        if forward:
            return a[i + lo : i + hi] == b[j + lo : j + hi]
        return a[i - hi : i - lo] == b[j - hi : j - lo]

    n, step = 0, 1
    while n < limit:
        size = min(step, limit - n)
        if not same(n, n + size):
            lo, hi = n, n + size - 1  # the first mismatch is within [n, n + size)
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if same(lo, mid):
                    lo = mid
                else:
                    hi = mid - 1
            return lo
        n += size
        step *= 2
    return limit


def _myers(a: Sequence[Hashable], b: Sequence[Hashable], max_d: int) -> list[Block] | None:
    """Matching blocks of a shortest edit script (Myers 1986), or None if it needs more than `max_d` edits."""
    n, m = len(a), len(b)
    offset = max_d + 1
    v = [0] * (2 * max_d + 3)  # v[k + offset]: furthest x reached on diagonal k = x - y
    trace: list[list[int]] = []
    for d in range(max_d + 1):
        trace.append(v[:])
        for k in range(-d, d + 1, 2):
            if k == -d or (k != d and v[k - 1 + offset] < v[k + 1 + offset]):
                x = v[k + 1 + offset]  # step down: an inserted b item
            else:
                x = v[k - 1 + offset] + 1  # step right: a deleted a item
            y = x - k
            if x < n and y < m and a[x] == b[y]:
                x += match_len(a, b, x, y, min(n - x, m - y), True)
            v[k + offset] = x
            if x >= n and x - k >= m:
                return _myers_blocks(trace, n, m, offset)
    return None


def _myers_blocks(trace: list[list[int]], n: int, m: int, offset: int) -> list[Block]:
    """Walk Myers' trace back from (n, m) and collect the diagonal stretches (the matches)."""
    blocks: list[Block] = []
    x, y = n, m
    for d in range(len(trace) - 1, -1, -1):
        v = trace[d]  # the furthest points after d - 1 edits
        k = x - y
        prev_k = prev_x = start_x = 0
        if d:
            down = k == -d or (k != d and v[k - 1 + offset] < v[k + 1 + offset])
            prev_k = k + 1 if down else k - 1
            prev_x = v[prev_k + offset]
            start_x = prev_x if down else prev_x + 1  # where this edit's snake starts
        if x > start_x:
            blocks.append((start_x, start_x - k, x - start_x))
        x, y = prev_x, prev_x - prev_k
    blocks.reverse()
    return blocks


def _unique_anchors(
    a: Sequence[Hashable], alo: int, ahi: int, b: Sequence[Hashable], blo: int, bhi: int
) -> list[tuple[int, int]]:
    """Pairs (i, j) of items found exactly once in each range, the longest list of them in order (patience)."""
    count_a = Counter(a[alo:ahi])
    count_b = Counter(b[blo:bhi])
    where_b = {b[j]: j for j in range(blo, bhi) if count_b[b[j]] == 1}
    pairs = [(i, where_b[a[i]]) for i in range(alo, ahi) if count_a[a[i]] == 1 and a[i] in where_b]
    return [pairs[p] for p in increasing_subsequence([j for _, j in pairs])]


def increasing_subsequence(values: Sequence[int]) -> list[int]:
    """Indexes of a longest strictly increasing subsequence of `values`, in order (O(n log n))."""
    tails: list[int] = []  # tails[L]: smallest last value of an increasing subsequence of length L + 1
    tail_index: list[int] = []
    previous = [-1] * len(values)
    for index, value in enumerate(values):
        length = bisect_left(tails, value)
        if length == len(tails):
            tails.append(value)
            tail_index.append(index)
        else:
            tails[length] = value
            tail_index[length] = index
        previous[index] = tail_index[length - 1] if length else -1
    out: list[int] = []
    index = tail_index[-1] if tail_index else -1
    while index != -1:
        out.append(index)
        index = previous[index]
    out.reverse()
    return out
