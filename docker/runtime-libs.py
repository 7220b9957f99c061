#!/usr/bin/env python3
"""Collects the shared libraries a binary loads, for the slim runtime stage of docker/Dockerfile.

    runtime-libs.py BINARY OUT_DIR BASE_LIST

Copies into OUT_DIR (flat, as the file names the loader looks for, symlinks resolved) every
library of BINARY's load closure (ldd) that the runtime base image does not have already
(BASE_LIST: the file names in /usr/lib/x86_64-linux-gnu of that image, one a line).

Debian's libtorch_cpu.so is over-linked: it lists OpenCV, FFmpeg, ZeroMQ, LevelDB, LMDB and
OpenCL as DT_NEEDED without using a single symbol of theirs, and through OpenCV's highgui and
videoio they pull in Qt, GTK, GStreamer and codecs (about 300 libraries). (OpenCL stays: oneDNN
uses it.) A DT_NEEDED entry
naming one of the libraries of PRUNE below is removed from the copy of the library that has it,
after checking that the copy references no symbol those libraries define and has no symbol
version requirement on them; if it does, the script fails rather than produce an image that
breaks at load time. The closure is then computed again with the patched copies first on the
library path, and must contain none of the pruned libraries.

Needs ldd, nm and readelf (binutils). Prints what it pruned and the totals; exits 1 with a
message on any failure.
"""
import os
import re
import shutil
import struct
import subprocess
import sys

# Libraries listed but not used (by symbol) by the libtorch CPU build of Debian bookworm.
PRUNE = re.compile(r"^lib(opencv_\w+|avcodec|avformat|avutil|avdevice|avfilter|swscale|swresample"
                   r"|zmq|leveldb|lmdb)\.so(\.|$)")
DT_NULL, DT_NEEDED, DT_STRTAB = 0, 1, 5
PT_LOAD, PT_DYNAMIC = 1, 2


def fail(msg):
    sys.exit(f"runtime-libs.py: FAIL: {msg}")


def closure(binary, env=None):
    """name -> path of every library ldd lists with a path (the loader itself excluded)."""
    out = subprocess.run(["ldd", binary], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        fail(f"ldd {binary}: {out.stderr.strip()}")
    libs = {}
    for line in out.stdout.splitlines():
        m = re.match(r"\s*(\S+) => (\S+)", line)
        if not m:
            continue
        if m.group(2) == "not":
            fail(f"{binary}: {m.group(1)} not found")
        libs[m.group(1)] = m.group(2)
    return libs


class Elf:
    """The dynamic section of an ELF64 little-endian file, editable in place."""

    def __init__(self, path):
        with open(path, "rb") as f:
            self.data = bytearray(f.read())
        d = self.data
        if d[:4] != b"\x7fELF" or d[4] != 2 or d[5] != 1:
            fail(f"{path}: not an ELF64 little-endian file")
        phoff, = struct.unpack_from("<Q", d, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", d, 0x36)
        self.loads, self.dyn = [], None
        for i in range(phnum):
            p_type, _, p_offset, p_vaddr, _, p_filesz = struct.unpack_from(
                "<IIQQQQ", d, phoff + i * phentsize)
            if p_type == PT_LOAD:
                self.loads.append((p_vaddr, p_offset, p_filesz))
            elif p_type == PT_DYNAMIC:
                self.dyn = (p_offset, p_filesz)
        if self.dyn is None:
            fail(f"{path}: no dynamic section")
        self.entries = []
        off, size = self.dyn
        for i in range(size // 16):
            tag, val = struct.unpack_from("<qQ", d, off + 16 * i)
            self.entries.append((tag, val))
            if tag == DT_NULL:
                break
        strtab = next(v for t, v in self.entries if t == DT_STRTAB)
        self.strtab = self.file_offset(strtab)

    def file_offset(self, vaddr):
        for v, o, n in self.loads:
            if v <= vaddr < v + n:
                return vaddr - v + o
        fail("DT_STRTAB outside the loaded segments")

    def string(self, index):
        start = self.strtab + index
        return self.data[start:self.data.index(b"\0", start)].decode()

    def needed(self):
        return [self.string(v) for t, v in self.entries if t == DT_NEEDED]

    def remove_needed(self, names):
        """Drops the DT_NEEDED entries of names; the array keeps its size (DT_NULL padding)."""
        kept = [(t, v) for t, v in self.entries
                if not (t == DT_NEEDED and self.string(v) in names)]
        off, size = self.dyn
        n = len(self.entries)
        kept += [(DT_NULL, 0)] * (n - len(kept))
        for i, (t, v) in enumerate(kept):
            struct.pack_into("<qQ", self.data, off + 16 * i, t, v)


def symbols(path, undefined):
    flag = "--undefined-only" if undefined else "--defined-only"
    out = subprocess.run(["nm", "-D", flag, path], capture_output=True, text=True, check=True)
    return {line.split()[-1].split("@")[0] for line in out.stdout.splitlines() if line.strip()}


def version_files(path):
    """The file names of path's symbol version requirements (readelf -V, .gnu.version_r)."""
    out = subprocess.run(["readelf", "-V", path], capture_output=True, text=True, check=True)
    return set(re.findall(r"File: (\S+)", out.stdout))


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    binary, out_dir, base_list = sys.argv[1:]
    with open(base_list) as f:
        base = {line.strip() for line in f if line.strip()}
    os.makedirs(out_dir, exist_ok=True)
    libs = closure(binary)
    before = len(libs)
    # Walks the DT_NEEDED graph from the binary, not following the pruned libraries: a library
    # that only they need (libchromaprint needs libavcodec, and uses it) is never visited.
    patched = {}
    queue = [n for n in Elf(binary).needed()]
    seen = set()
    while queue:
        name = queue.pop()
        if name in seen:
            continue
        seen.add(name)
        if PRUNE.match(name):
            fail(f"{binary} itself needs {name}")
        if name not in libs:
            if name.startswith("ld-linux"):
                continue
            fail(f"{name} is needed but ldd did not list it")
        path = libs[name]
        elf = Elf(path)
        needed = elf.needed()
        drop = [n for n in needed if PRUNE.match(n)]
        queue += [n for n in needed if not PRUNE.match(n)]
        if not drop:
            continue
        used = symbols(path, undefined=True)
        for n in drop:
            if n not in libs:
                fail(f"{name} needs {n}, which ldd did not list")
            common = used & symbols(libs[n], undefined=False)
            if common:
                fail(f"{name} uses {len(common)} symbols of {n} (e.g. {sorted(common)[0]}); "
                     f"it cannot be pruned")
        bad = version_files(path) & set(drop)
        if bad:
            fail(f"{name} has symbol version requirements on {sorted(bad)}")
        elf.remove_needed(set(drop))
        dest = os.path.join(out_dir, name)
        with open(dest, "wb") as f:
            f.write(elf.data)
        os.chmod(dest, 0o644)
        patched[name] = drop
        print(f"{name}: removed the unused DT_NEEDED {', '.join(sorted(drop))}")

    env = dict(os.environ, LD_LIBRARY_PATH=out_dir)
    libs = closure(binary, env)
    left = sorted(n for n in libs if PRUNE.match(n))
    if left:
        fail(f"still loaded after pruning: {', '.join(left)}")
    total = copied = 0
    for name, path in sorted(libs.items()):
        dest = os.path.join(out_dir, name)
        if name in patched:
            pass
        elif name in base:
            continue
        else:
            shutil.copyfile(os.path.realpath(path), dest)
            os.chmod(dest, 0o644)
        copied += 1
        total += os.path.getsize(dest)
    print(f"{binary}: {before} libraries before pruning, {len(libs)} after; "
          f"{copied} copied to {out_dir} ({total} bytes), {len(libs) - copied} in the base image")


if __name__ == "__main__":
    main()
