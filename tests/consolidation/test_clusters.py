from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from gt_toolkit.consolidation.clusters import _components


@settings(max_examples=100, deadline=None)
@given(
    st.integers(min_value=0, max_value=30).flatmap(
        lambda n: st.tuples(
            st.just(n),
            st.lists(
                st.tuples(st.integers(0, max(n - 1, 0)), st.integers(0, max(n - 1, 0))),
                max_size=40 if n else 0,
            ),
        )
    )
)
def test_components_label_each_node_with_its_components_minimum(
    graph: tuple[int, list[tuple[int, int]]],
) -> None:
    n, edges = graph
    pairs = sorted({(min(a, b), max(a, b)) for a, b in edges if a != b})
    parent = list(range(n))  # reference: union-find

    def find(x: int) -> int:
        while parent[x] != x:
            x = parent[x]
        return x

    for a, b in pairs:
        ra, rb = find(a), find(b)
        parent[max(ra, rb)] = min(ra, rb)
    lo = np.array([a for a, _ in pairs], dtype=np.intp)
    hi = np.array([b for _, b in pairs], dtype=np.intp)
    assert _components(n, lo, hi).tolist() == [find(x) for x in range(n)]
