"""Peers that Decide's compiled fast path is measured against on consumer_loan (see benchmarks/test_bench_peers.py)."""
