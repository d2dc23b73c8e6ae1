"""DiskPool: per-medium accounting, all-or-nothing reservation, errors that say what is short."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from galaxy.disk import DiskPool, DiskRequest, HostDisk, Placement
from galaxy.errors import Conflict, InvalidInput, ResourceUnavailable

GiB = 1 << 30
SSD1 = HostDisk("/ssd1", "ssd", 10 * GiB)
SSD2 = HostDisk("/ssd2", "ssd", 4 * GiB)
HDD = HostDisk("/hdd", "hdd", 100 * GiB)


def pool() -> DiskPool:
    return DiskPool([SSD1, SSD2, HDD])


def test_reserve_places_on_the_asked_medium_and_counts_bytes() -> None:
    p = pool()
    placed = p.reserve("c1", [DiskRequest("ssd", 3 * GiB), DiskRequest("hdd", 20 * GiB)])
    assert [(x.owner, x.index, x.medium, x.size) for x in placed] == [
        ("c1", 0, "ssd", 3 * GiB), ("c1", 1, "hdd", 20 * GiB)]
    assert placed[0].host_disk in (SSD1, SSD2) and placed[1].host_disk == HDD
    assert p.used_bytes() == {"ssd": 3 * GiB, "hdd": 20 * GiB}
    assert p.free_bytes() == {"ssd": 11 * GiB, "hdd": 80 * GiB}


def test_requests_spread_to_the_emptiest_disk_of_the_medium() -> None:
    p = pool()
    placed = p.reserve("c1", [DiskRequest("ssd", 5 * GiB), DiskRequest("ssd", 4 * GiB)])
    assert [x.host_disk for x in placed] == [SSD1, SSD1]  # 10 free beats 4; then 5 free beats 4
    placed = p.reserve("c2", [DiskRequest("ssd", 4 * GiB)])
    assert placed[0].host_disk == SSD2


def test_a_request_that_cannot_be_met_reserves_nothing_and_names_medium_asked_and_free() -> None:
    p = pool()
    p.reserve("c1", [DiskRequest("ssd", 8 * GiB)])
    before = (p.used_bytes(), p.free_bytes())
    with pytest.raises(ResourceUnavailable) as caught:
        p.reserve("c2", [DiskRequest("hdd", 1 * GiB), DiskRequest("ssd", 5 * GiB)])
    message = str(caught.value)
    assert "ssd" in message and str(5 * GiB) in message and str(4 * GiB) in message  # asked; free
    assert caught.value.field == "disks[1].size"
    assert (p.used_bytes(), p.free_bytes()) == before
    assert p.placements("c2") == []
    # …and c2 may try again with something that fits
    assert len(p.reserve("c2", [DiskRequest("ssd", 4 * GiB)])) == 1


def test_two_requests_that_each_fit_but_not_together_fail_whole() -> None:
    p = DiskPool([HostDisk("/d", "ssd", 10 * GiB)])
    with pytest.raises(ResourceUnavailable):
        p.reserve("c", [DiskRequest("ssd", 6 * GiB), DiskRequest("ssd", 6 * GiB)])
    assert p.free_bytes() == {"ssd": 10 * GiB}


def test_unknown_medium_is_unavailable_and_named() -> None:
    with pytest.raises(ResourceUnavailable) as caught:
        pool().reserve("c", [DiskRequest("nvme", GiB)])
    assert "nvme" in str(caught.value) and caught.value.field == "disks[0].medium"


def test_free_gives_the_bytes_back() -> None:
    p = pool()
    p.reserve("c1", [DiskRequest("ssd", 10 * GiB), DiskRequest("ssd", 4 * GiB)])
    with pytest.raises(ResourceUnavailable):
        p.reserve("c2", [DiskRequest("ssd", 1)])
    freed = p.free("c1")
    assert len(freed) == 2
    assert p.free_bytes()["ssd"] == 14 * GiB
    assert p.free("c1") == []  # idempotent
    p.reserve("c2", [DiskRequest("ssd", 10 * GiB)])


def test_an_owner_reserves_once_until_freed() -> None:
    p = pool()
    p.reserve("c1", [DiskRequest("ssd", GiB)])
    with pytest.raises(Conflict):
        p.reserve("c1", [DiskRequest("ssd", GiB)])
    assert p.used_bytes()["ssd"] == GiB


def test_tmpfs_is_unlimited_unless_configured() -> None:
    p = pool()
    placed = p.reserve("c1", [DiskRequest("tmpfs", 1000 * GiB)])
    assert placed == [Placement("c1", 0, None, "tmpfs", 1000 * GiB)]
    assert "tmpfs" not in p.free_bytes() and p.used_bytes()["tmpfs"] == 1000 * GiB

    limited = DiskPool([HostDisk("tmpfs", "tmpfs", 2 * GiB)])
    limited.reserve("c1", [DiskRequest("tmpfs", GiB)])
    with pytest.raises(ResourceUnavailable):
        limited.reserve("c2", [DiskRequest("tmpfs", 2 * GiB)])
    assert limited.free_bytes() == {"tmpfs": GiB}


def test_rebuild_replaces_reservations_and_may_exceed_a_shrunk_capacity() -> None:
    p = pool()
    p.reserve("gone", [DiskRequest("hdd", GiB)])
    p.rebuild([Placement("c1", 1, SSD2, "ssd", 3 * GiB), Placement("c1", 0, SSD2, "ssd", 3 * GiB),
               Placement("c2", 0, None, "tmpfs", GiB)])
    assert p.placements("gone") == []
    assert [x.index for x in p.placements("c1")] == [0, 1]
    assert p.used_bytes() == {"ssd": 6 * GiB, "hdd": 0, "tmpfs": GiB}
    assert p.free_bytes() == {"ssd": 10 * GiB, "hdd": 100 * GiB}  # SSD2 over-full counts as 0 free
    with pytest.raises(ResourceUnavailable):
        p.reserve("c3", [DiskRequest("ssd", 11 * GiB)])


def test_rebuild_refuses_unknown_disks_and_duplicates_without_changing_anything() -> None:
    p = pool()
    p.reserve("c1", [DiskRequest("ssd", GiB)])
    with pytest.raises(InvalidInput) as caught:
        p.rebuild([Placement("c2", 0, HostDisk("/elsewhere", "ssd", GiB), "ssd", GiB)])
    assert "/elsewhere" in str(caught.value)
    with pytest.raises(InvalidInput):
        p.rebuild([Placement("c2", 0, SSD1, "ssd", 1), Placement("c2", 0, SSD1, "ssd", 1)])
    assert p.used_bytes()["ssd"] == GiB and len(p.placements("c1")) == 1


@pytest.mark.parametrize("make", [
    lambda: HostDisk("/d", "ssd", -1),
    lambda: HostDisk("", "ssd", 1),
    lambda: DiskRequest("ssd", 0),
    lambda: DiskRequest("", 1),
    lambda: DiskRequest("ssd", True),
    lambda: DiskPool([SSD1, HostDisk("/ssd1", "hdd", 1)]),
])
def test_bad_values_are_invalid_input(make: object) -> None:
    with pytest.raises(InvalidInput):
        make()  # type: ignore[operator]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 5),
                          st.lists(st.tuples(st.sampled_from(["ssd", "hdd"]), st.integers(1, 40)),
                                   max_size=3)), max_size=30))
def test_reservations_never_exceed_capacity(ops: list[tuple[bool, int, list[tuple[str, int]]]]) -> None:
    disks = [HostDisk("/a", "ssd", 50), HostDisk("/b", "ssd", 30), HostDisk("/c", "hdd", 60)]
    p = DiskPool(disks)
    for is_free, who, reqs in ops:
        owner = f"o{who}"
        if is_free:
            p.free(owner)
            continue
        try:
            p.reserve(owner, [DiskRequest(m, s) for m, s in reqs])
        except (ResourceUnavailable, Conflict):
            pass
        per_disk = {d.path: 0 for d in disks}
        for x in p.placements():
            assert x.host_disk is not None
            per_disk[x.host_disk.path] += x.size
        assert all(per_disk[d.path] <= d.capacity for d in disks)
        used, free = p.used_bytes(), p.free_bytes()
        assert used["ssd"] + free["ssd"] == 80 and used["hdd"] + free["hdd"] == 60
