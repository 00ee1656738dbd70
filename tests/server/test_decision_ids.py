"""Decision ids are UUIDv7 (RFC 9562) in the canonical text form: version 7, variant 10, the Unix milliseconds
of their making in the first 48 bits — so ids sort by time — and unique."""

from __future__ import annotations

import os
import time
import uuid

from decision_server.service import uuid7


def test_a_decision_id_is_a_canonical_uuid7_of_its_time() -> None:
    before = time.time_ns() // 1_000_000
    ids = [uuid7() for _ in range(2000)]
    after = time.time_ns() // 1_000_000
    assert len(set(ids)) == len(ids)
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text  # lower-case hex, dashes at 8-4-4-4-12
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
        assert before <= parsed.int >> 80 <= after


def test_ids_made_in_later_milliseconds_sort_later() -> None:
    first = uuid7()
    time.sleep(0.002)
    assert uuid7() > first


def test_a_forked_worker_never_repeats_its_parents_random_bits() -> None:
    # gunicorn forks its workers from a parent that may already have drawn random bytes for ids: a child must
    # not hand out the rest of the parent's pool (the same ids, each then stored only once).
    uuid7()  # the parent's pool now holds bytes the next ids would use
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        try:
            os.write(write_end, "\n".join(uuid7()[15:] for _ in range(50)).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        child_bits = set(pipe.read().decode().split("\n"))
    os.waitpid(child, 0)
    parent_bits = {uuid7()[15:] for _ in range(50)}
    assert len(child_bits) == 50
    assert not child_bits & parent_bits
