#!/usr/bin/env python3
"""openapi_json.py - docs/openapi.yaml as compact JSON on stdout.

Build tool (the Makefile runs it; mark-gateway embeds the result and serves
it at GET /openapi.json). The YAML stays the single source: JSON is made
at build time rather than parsed at run time, so the gateway needs no YAML
parser and a spec that does not parse fails the build, not a request.

Needs Debian's python3-yaml (scripts/deps.sh installs it).

    scripts/openapi_json.py docs/openapi.yaml > build/gen/openapi.json
"""
import json
import sys

try:
    import yaml
except ImportError:
    sys.exit("openapi_json.py: python3-yaml is required (make deps, or apt-get install python3-yaml)")


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: openapi_json.py docs/openapi.yaml")
    with open(sys.argv[1], encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    if not isinstance(doc, dict) or "openapi" not in doc or "paths" not in doc:
        sys.exit(f"openapi_json.py: {sys.argv[1]} is not an OpenAPI document")
    # sort_keys off: the document keeps its authored order (paths as in the route table).
    json.dump(doc, sys.stdout, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
