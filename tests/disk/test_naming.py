"""Image naming and mount-table parsing: pure functions, no kernel needed."""

from __future__ import annotations

import os

import pytest

from galaxy.disk import agent_dir, ensure_disk, image_path
from galaxy.disk._mounts import parse_mountinfo
from galaxy.errors import InvalidInput


def test_image_path_keeps_agents_and_owners_apart() -> None:
    a = image_path("/data/ssd1", "agent-1", "c42", 0)
    b = image_path("/data/ssd1", "agent-2", "c42", 0)
    assert a == "/data/ssd1/galaxy-agent-1/c42/0.img"
    assert a != b
    assert a.startswith(agent_dir("/data/ssd1", "agent-1") + "/")


@pytest.mark.parametrize(("args", "field"), [
    (("relative", "a", "c", 0), "root"),
    (("/d", "../x", "c", 0), "agent_id"),
    (("/d", "a", "c/../../etc", 0), "owner"),
    (("/d", "a", "..", 0), "owner"),
    (("/d", "a", "c", -1), "index"),
])
def test_image_path_refuses_names_that_escape_the_directory(args: tuple[str, str, str, int], field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        image_path(*args)
    assert caught.value.field == field


def test_mountinfo_lines_with_escapes_and_optional_fields_parse() -> None:
    text = (
        "36 35 98:0 /mnt1 /mnt/with\\040space rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n"
        "43 27 7:12 / /srv/galaxy-a/c1/0 rw,nosuid,nodev,relatime - ext4 /dev/loop12 rw\n"
        "garbage line\n"
        "50 27 0:77 / /srv/tmp rw - tmpfs galaxy-disk rw,size=4096k\n"
    )
    entries = parse_mountinfo(text)
    assert [e.mount_point for e in entries] == ["/mnt/with space", "/srv/galaxy-a/c1/0", "/srv/tmp"]
    assert entries[1].device == os.makedev(7, 12) and entries[1].source == "/dev/loop12"
    assert entries[2].fstype == "tmpfs" and entries[2].super_options == "rw,size=4096k"


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"image_path": "rel.img", "size": 1 << 20, "mount_point": "/m"}, "image_path"),
    ({"image_path": "/x.img", "size": 1 << 20, "mount_point": "m"}, "mount_point"),
    ({"image_path": "/x.img", "size": 4096, "mount_point": "/m"}, "size"),
    ({"image_path": "/x.img", "size": 1 << 20, "mount_point": "/m", "medium": "xfs"}, "medium"),
    ({"image_path": "/x.img", "size": 1 << 20, "mount_point": "/m", "medium": "tmpfs"}, "image_path"),
    ({"image_path": "/x.img", "size": 1 << 20, "mount_point": "/m", "uid": -1}, "uid"),
])
def test_ensure_disk_names_the_bad_argument_before_touching_anything(kwargs: dict, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        ensure_disk(**kwargs)
    assert caught.value.field == field


def test_find_loop_under_a_path_that_is_not_a_directory_is_none(tmp_path) -> None:
    from galaxy.disk import find_loop

    blocker = tmp_path / "disk"
    blocker.write_text("a file where a host disk directory should be")
    assert find_loop(str(blocker / "galaxy-a" / "c1" / "0.img")) is None
