#!/usr/bin/env python3
"""Lists import cycles between the source files of the library and of the binary (each file a
module: `src/api/file.rs` is `api::file`, `src/api/mod.rs` is `api`), ignoring unit-test code.
A file's own submodules are part of it: an edge between a module and one of its descendants
(a `mod.rs` re-exporting its children, a child using its parent's types) is structure, not a
dependency. Every other reference, by `crate::`, `super::` or `self::` paths, braces expanded,
is an edge to the deepest module the path names. Exit 1 when there is a cycle.
Usage: scripts/module-cycles.py [-v]"""
import pathlib
import re
import sys

SRC = pathlib.Path(__file__).resolve().parent.parent / "src"
BIN = ("main", "commands")  # the binary crate's files: their `crate::` is main.rs


def module_of(path):
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "mod":
        parts.pop()
    if parts in (["lib"], ["main"]):
        parts = []
    crate = "bin" if path.relative_to(SRC).parts[0] in ("main.rs", "commands") else "lib"
    return (crate, tuple(parts))


FILES = {}
for path in SRC.rglob("*.rs"):
    if path.name == "tests.rs" or "tests" in path.relative_to(SRC).parts[:-1]:
        continue
    FILES[module_of(path)] = path


def deepest(crate, parts):
    """The deepest module file that `parts` (a path from the crate root) names."""
    parts = tuple(parts)
    while parts and (crate, parts) not in FILES:
        parts = parts[:-1]
    return (crate, parts)


def is_dir_module(path):
    return path.name in ("mod.rs", "lib.rs", "main.rs")


def paths_in(text):
    """Every `crate::`/`super::`/`self::` path, with `{…}` groups expanded one level deep."""
    found = []
    for m in re.finditer(r"\b((?:crate|super|self)(?:::(?:super|\w+))*)::\{([^{}]*)\}", text):
        for item in m.group(2).split(","):
            item = item.strip().split(" as ")[0]
            if item and item != "self":
                found.append(m.group(1) + "::" + item)
            elif item == "self":
                found.append(m.group(1))
    for m in re.finditer(r"\b((?:crate|super|self)(?:::(?:super|\w+))+)", text):
        found.append(m.group(1))
    return found


edges = {}
for (crate, module), path in FILES.items():
    text = path.read_text().split("#[cfg(test)]")[0]
    # A `mod.rs` is its directory's module; a leaf file's `super` is its directory's module.
    base = list(module)
    for reference in paths_in(text):
        names = reference.split("::")
        head = names.pop(0)
        if head == "crate":
            here = []
        else:
            here = list(base)
            if head == "super":
                here = here[:-1]
            while names and names[0] == "super":
                names.pop(0)
                here = here[:-1]
        dest = deepest(crate, here + [n for n in names if n])
        if dest == (crate, module):
            continue
        a, b = module, dest[1]
        if a[: len(b)] == b or b[: len(a)] == a:
            continue  # a module and its own descendant
        edges.setdefault((crate, module), set()).add(dest)


def name(node):
    crate, parts = node
    return ("bin:" if crate == "bin" else "") + ("::".join(parts) or "crate")


def reach(start):
    seen, stack = set(), [start]
    while stack:
        for n in edges.get(stack.pop(), ()):
            if n not in seen:
                seen.add(n)
                stack.append(n)
    return seen


if "-v" in sys.argv:
    for a in sorted(edges):
        print(name(a), "->", ", ".join(sorted(name(b) for b in edges[a])))
cycles = sorted({tuple(sorted((a, b))) for a in edges for b in edges[a] if a in reach(b)})
for a, b in cycles:
    print(f"cycle: {name(a)} <-> {name(b)}")
print(f"{len(FILES)} files, {sum(len(e) for e in edges.values())} edges, {len(cycles)} cycles")
sys.exit(1 if cycles else 0)
