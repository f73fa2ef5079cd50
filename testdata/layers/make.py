#!/usr/bin/env python3
"""Writes the hand-made layer tars of this directory (run from it; output is deterministic).

hostile-*.tar: one way each for a base layer to reach outside the image; kiln must refuse
every one naming the layer, the entry and the reason. ok-normalized.tar: what OCI allows
and kiln normalizes (leading `./` and `/`, a whiteout)."""
import io, tarfile

def entry(name, type=tarfile.REGTYPE, data=b"", link="", major=0, minor=0, mode=0o644):
    ti = tarfile.TarInfo(name)
    ti.type, ti.linkname, ti.mode, ti.mtime = type, link, mode, 0
    ti.uid = ti.gid = 0
    ti.devmajor, ti.devminor = major, minor
    ti.size = len(data) if type == tarfile.REGTYPE else 0
    return ti, (io.BytesIO(data) if type == tarfile.REGTYPE else None)

def write(path, entries):
    with open(path, "wb") as f:
        with tarfile.open(fileobj=f, mode="w", format=tarfile.USTAR_FORMAT) as t:
            for ti, data in entries:
                t.addfile(ti, data)

write("hostile-dotdot.tar", [
    entry("./", tarfile.DIRTYPE, mode=0o755),
    entry("../../../../tmp/kiln-escape", data=b"written outside\n"),
])
write("hostile-symlink.tar", [
    entry("etc/", tarfile.DIRTYPE, mode=0o755),
    entry("etc/cron.d", tarfile.SYMTYPE, link="../../../../etc/cron.d"),
    entry("etc/cron.d/evil", data=b"* * * * * root sh -c 'echo evil'\n"),
])
write("hostile-hardlink.tar", [
    entry("etc/", tarfile.DIRTYPE, mode=0o755),
    entry("etc/shadow-copy", tarfile.LNKTYPE, link="/etc/shadow"),
])
write("hostile-device.tar", [
    entry("dev/", tarfile.DIRTYPE, mode=0o755),
    entry("dev/mem", tarfile.CHRTYPE, major=1, minor=1, mode=0o600),
])
write("ok-normalized.tar", [
    entry("./", tarfile.DIRTYPE, mode=0o755),
    entry("./etc/", tarfile.DIRTYPE, mode=0o755),
    entry("./etc/hostname", data=b"base\n"),
    entry("/etc/motd", data=b"hello\n"),
    entry("etc/.wh.hostname"),
    entry("./etc/motd.link", tarfile.LNKTYPE, link="/etc/motd"),
])
