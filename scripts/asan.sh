#!/usr/bin/env bash
# npm run test:asan: builds the addon (and the exec wrapper) with
# AddressSanitizer + UndefinedBehaviorSanitizer into build-asan/, then runs
# the whole vitest suite with every node process (vitest, its workers, the
# fixtures they spawn) loading that build and clang's runtime.
#
# Reports go to files under build-asan/reports (log_path), named by program:
# any from node or the exec wrapper fails the run. Three test files stay out
# (vitest.config.mts says which and why).
#
# Needs clang and its runtime (Debian: apt-get install clang). Extra
# arguments go to vitest (e.g. a test file).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${NODE_KSM_ASAN_OUT:-$ROOT/build-asan}

command -v clang >/dev/null || { echo "test:asan needs clang (Debian: apt-get install clang)" >&2; exit 1; }
ARCH=$(uname -m)
ASAN_RT=$(clang -print-file-name="libclang_rt.asan-$ARCH.so")
[ -f "$ASAN_RT" ] || { echo "no ASan runtime at $ASAN_RT (Debian: apt-get install clang libclang-rt-dev)" >&2; exit 1; }

# A separate tree: the normal build/ is never touched. node-gyp builds in
# <dir>/build; node-gyp-build loads <NODE_KSM_PREBUILD>/build/Release.
# NODE_KSM_ASAN_REUSE=1 keeps a build made from the same sources (for
# running files one by one); anything else rebuilds.
reuse=0
if [ "${NODE_KSM_ASAN_REUSE:-}" = 1 ] && [ -f "$OUT/build/Release/ksm.node" ] &&
  diff -rq "$ROOT/native" "$OUT/native" >/dev/null 2>&1 && cmp -s "$ROOT/binding.gyp" "$OUT/binding.gyp"; then
  reuse=1
fi
rm -rf "$OUT/reports"
mkdir -p "$OUT/reports"
if [ $reuse = 0 ]; then
rm -rf "$OUT/native" "$OUT/binding.gyp"
cp -r "$ROOT/native" "$OUT/native"
cp "$ROOT/binding.gyp" "$OUT/binding.gyp"
# `npm run` puts npm's own node-gyp on PATH (and its nodedir config in the
# environment); run directly, use the one npm bundles.
if command -v node-gyp >/dev/null; then
  NODE_GYP=(node-gyp)
else
  NODE_GYP=(node "$(npm root -g)/npm/node_modules/node-gyp/bin/node-gyp.js")
  npm_config_nodedir=${npm_config_nodedir:-$(npm config get nodedir 2>/dev/null || true)}
  [ "$npm_config_nodedir" = undefined ] && npm_config_nodedir=
  export npm_config_nodedir
fi
NODE_PATH=$ROOT/node_modules CC=clang CXX=clang++ LINK=clang++ \
  "${NODE_GYP[@]}" rebuild --directory="$OUT" --ksm-sanitize=1
fi
# node-gyp turns unknown options into gyp variables; make sure it did: both
# products must call into the ASan and UBSan runtimes.
for product in "$OUT/build/Release/ksm.node" "$OUT/build/Release/ksm-unmerged-exec"; do
  symbols=$(nm -D "$product")
  grep -q ' U __asan_report_' <<<"$symbols" || { echo "test:asan: $product is not instrumented by ASan" >&2; exit 1; }
  grep -q ' U __ubsan_handle_' <<<"$symbols" || { echo "test:asan: $product is not instrumented by UBSan" >&2; exit 1; }
done

if [ ! -f "$ROOT/dist/index.js" ]; then npm run build:ts; fi

export NODE_KSM_PREBUILD=$OUT
export LD_PRELOAD=$ASAN_RT${LD_PRELOAD:+:$LD_PRELOAD}
# Leaks: node and V8 keep some allocations to exit on purpose; the
# suppressions name only their allocation sites, never ours (see the file).
# LeakSanitizer only where our code runs: every program the tests start
# inherits the preload, and LSan makes cc, bash, tr... exit non-zero over
# their own deliberate leaks. %b is the program's name: node and the exec
# wrapper include a file that turns leak checking on.
mkdir -p "$OUT/options"
for program in node ksm-unmerged-exec; do echo detect_leaks=1 >"$OUT/options/$program"; done
export ASAN_OPTIONS="halt_on_error=1:abort_on_error=0:detect_leaks=0:include_if_exists=$OUT/options/%b:detect_stack_use_after_return=0:allow_user_segv_handler=1:strict_init_order=1:check_initialization_order=1:log_exe_name=1:log_path=$OUT/reports/asan"
export LSAN_OPTIONS="suppressions=$ROOT/scripts/lsan-suppressions.txt:print_suppressions=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_exe_name=1:log_path=$OUT/reports/ubsan"

# The suite must really run against the sanitized build.
node -e '
  const path = require("node:path");
  const file = require("node-gyp-build").path(process.argv[1]);
  if (!file.startsWith(process.env.NODE_KSM_PREBUILD + path.sep)) throw new Error(`loaded ${file}, not the sanitized build`);
  require(file);
  const maps = require("node:fs").readFileSync("/proc/self/maps", "utf8");
  if (!maps.includes(file) || !maps.includes("libclang_rt.asan")) throw new Error("sanitized addon or ASan runtime not mapped");
  console.log(`test:asan: ${file} with ${process.env.LD_PRELOAD.split(":")[0]}`);
' "$ROOT"

# ...and leak checking must be on in node (help=1 prints the flags in force).
ASAN_OPTIONS="$ASAN_OPTIONS:help=1" node -e 0 2>&1 | grep -A1 '^\s*detect_leaks\b' | grep -q 'Current Value: true' ||
  { echo "test:asan: LeakSanitizer is not on in node (see $OUT/options)" >&2; exit 1; }

status=0
# vitest.config.mts leaves out the two files that never load this build
# (npm pack, cmake-js): they run in the plain suite.
npx --no-install vitest run "$@" || status=$?

# Reports are named <asan|ubsan>.<program>.<pid> (log_exe_name). Our code
# runs in node (the addon) and in ksm-unmerged-exec; the tests also start
# other programs (cc, cmake, python3, sh, unshare) that inherit LD_PRELOAD,
# and what the sanitizer says of their own code is not about ours: listed,
# not counted.
shopt -s nullglob
ours=()
for report in "$OUT"/reports/*; do
  program=$(basename "$report" | cut -d. -f2)
  case "$program" in
    node|ksm-unmerged-exec)
      # A finding says ERROR (ASan, LSan) or "runtime error" (UBSan). LSan
      # also writes a bare warning when a thread exits while it stops the
      # world ("Unable to get registers from thread N"): shown, not counted.
      if grep -qE 'ERROR: |runtime error' "$report"; then
        ours+=("$report")
      else
        echo "test:asan: warning only, not a finding: $(basename "$report"): $(head -c 300 "$report" | tr '\n' ' ')" >&2
      fi
      ;;
    *) echo "test:asan: not ours, ignored: $(basename "$report") ($(grep -m1 -E 'ERROR|runtime error' "$report" || true))" >&2 ;;
  esac
done
if [ ${#ours[@]} -gt 0 ]; then
  echo "test:asan: ${#ours[@]} sanitizer report(s):" >&2
  for report in "${ours[@]}"; do echo "== $report" >&2; cat "$report" >&2; done
  exit 1
fi
exit $status
