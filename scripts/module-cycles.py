#!/usr/bin/env python3
"""Lists import cycles between the library's modules (one level below the crate root, and the
submodules of runtime/, server/ and tools/), ignoring unit-test files. Exit 1 when there is one.
Usage: scripts/module-cycles.py"""
import pathlib
import re
import sys

SRC = pathlib.Path(__file__).resolve().parent.parent / "src"
LAYERED = {"runtime", "server", "tools"}


def module_of(path):
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "mod":
        parts.pop()
    if not parts or parts[0] in ("lib", "main", "commands"):
        return None
    return "::".join(parts[:2] if parts[0] in LAYERED and len(parts) > 1 else parts[:1])


def target(names):
    if names[0] in LAYERED and len(names) > 1 and names[1][:1].islower():
        return f"{names[0]}::{names[1]}"
    return names[0]


edges = {}
for path in SRC.rglob("*.rs"):
    if path.name == "tests.rs":
        continue
    source = module_of(path)
    if source is None:
        continue
    text = path.read_text().split("#[cfg(test)]")[0]
    for m in re.finditer(r"crate::((?:[a-z_]+::)*[a-z_A-Z]+)", text):
        dest = target(m.group(1).split("::"))
        top = source.split("::")[0]
        if dest not in (source, top) and not source.startswith(dest + "::"):
            edges.setdefault(source, set()).add(dest)
    # `super::x` inside a layered module names a sibling.
    if source.count("::") == 1:
        top = source.split("::")[0]
        for m in re.finditer(r"\bsuper::([a-z_]+)", text):
            name = m.group(1)
            dest = f"{top}::{name}"
            sibling = (SRC / top / f"{name}.rs").exists() or (SRC / top / name).is_dir()
            if dest != source and sibling:
                edges.setdefault(source, set()).add(dest)


def reach(start):
    seen, stack = set(), [start]
    while stack:
        for n in edges.get(stack.pop(), ()):
            if n not in seen:
                seen.add(n)
                stack.append(n)
    return seen


cycles = sorted({tuple(sorted((a, b))) for a in edges for b in edges[a] if a in reach(b)})
for a, b in cycles:
    print(f"cycle: {a} <-> {b}")
sys.exit(1 if cycles else 0)
