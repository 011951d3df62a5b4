#!/usr/bin/env bash
# Builds the libFuzzer target for the ttrpc frame scanner and Request decoder
# (tests/rpc/fuzz_session.c) with clang, ASan and UBSan, and runs it for a while.
# The main build may use gcc, so the target and the code under test are compiled here.
#   run_libfuzzer.sh CLANG SRCROOT BUILDROOT WORKDIR SECONDS
set -euo pipefail
clang=$1 src=$2 build=$3 work=$4 secs=$5
mkdir -p "$work/corpus"
ragel -C -G2 "$src/src/rpc/frame.rl" -o "$work/frame.c"
ragel -C -G2 "$src/src/rpc/ident.rl" -o "$work/ident.c"
"$clang" -std=gnu11 -g -O1 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=undefined -Wno-unused-command-line-argument \
	-I"$src/src" -I"$src/src/rpc" -I"$build/proto" \
	"$src/tests/rpc/fuzz_session.c" "$src/src/rpc/session.c" "$work/frame.c" "$work/ident.c" \
	"$src/src/util/util.c" "$src/src/util/status.c" \
	"$build/proto/ttrpc.pb-c.c" "$build/proto/google_rpc_status.pb-c.c" \
	-lprotobuf-c -o "$work/fuzz-rpc-session"
# Seeds: the replay driver's built-in golden frames are in the target; a short run from an
# empty corpus still reaches deep frames within seconds. A crash exits non-zero.
"$work/fuzz-rpc-session" -max_total_time="$secs" -max_len=8192 -rss_limit_mb=2048 \
	-print_final_stats=1 "$work/corpus" 2>&1 | tail -n 12
exit "${PIPESTATUS[0]}"
