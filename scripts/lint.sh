#!/usr/bin/env bash
# lint.sh - `make lint`: calls Mark bans, and code that clang-format would
# change (fix with: git ls-files '*.c' '*.h' | xargs clang-format -i).
set -uo pipefail
cd "$(dirname "$0")/.."
bad=0
src=$(git ls-files '*.c' '*.h' | grep -v '^tests/doubles/')

# Unsafe or ambiguous calls, banned everywhere in production code.
if grep -nE '\b(sprintf|vsprintf|strcpy|strcat|gets|atoi|atol|system)\s*\(' $(echo "$src" | grep -v '^tests/') ; then
	echo "lint: banned call above (use snprintf, mk_buf, strtol, posix_spawn)"
	bad=1
fi
# The environment is read only by configuration code.
if grep -nE '\bgetenv\s*\(' $(echo "$src" | grep -vE '^(tests/|common/mk_cfg\.c)') ; then
	echo "lint: getenv outside common/mk_cfg.c (declare the setting in the service's config.c)"
	bad=1
fi
if command -v clang-format >/dev/null; then
	drift=$(for f in $src; do clang-format --dry-run "$f" 2>&1 | grep -c warning >/dev/null && echo "$f"; done)
	if [ -n "$drift" ]; then
		printf 'lint: clang-format would change:\n%s\n' "$drift"
		bad=1
	fi
fi
[ $bad -eq 0 ] && echo "lint: ok"
exit $bad
