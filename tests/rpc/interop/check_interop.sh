#!/usr/bin/env bash
# Wire compatibility with containerd's Go ttrpc, both ways: the Go client against ferry's C
# server, ferry's C client against the Go server. Needs golang-go and
# golang-github-containerd-ttrpc-dev (Debian); without them the test is skipped (exit 77).
#   check_interop.sh PEER GO_SOURCE WORKDIR
set -euo pipefail
peer=$1 src=$2 work=$3
gocode=/usr/share/gocode
if ! command -v go >/dev/null || [ ! -d "$gocode/src/github.com/containerd/ttrpc" ]; then
	echo "skip: go or containerd's ttrpc sources are not installed"
	exit 77
fi
rm -rf "$work"
mkdir -p "$work/src/interop" "$work.gocache"
cp "$src" "$work/src/interop/"
(cd "$work/src/interop" &&
	GO111MODULE=off GOPATH="$work:$gocode" GOCACHE="$work.gocache" GOFLAGS= \
		go build -o "$work/interop" .)

# 1. Go client -> C server
# bash unsets a coproc's NAME_PID once it exits: keep the pids in plain variables
coproc SERVER { exec "$peer" serve; }
server_pid=$SERVER_PID
read -r sock <&"${SERVER[0]}"
rc=0
"$work/interop" client "$sock" || rc=1
server_in=${SERVER[1]}
exec {server_in}>&-
wait "$server_pid" || rc=1

# 2. C client -> Go server
gosock="$work/go.sock"
coproc GOSERVER { exec "$work/interop" server "$gosock"; }
goserver_pid=$GOSERVER_PID
read -r ready <&"${GOSERVER[0]}"
[ "$ready" = ready ] || { echo "Go server did not start"; exit 1; }
"$peer" call "$gosock" || rc=1
kill -TERM "$goserver_pid"
wait "$goserver_pid" || true
exit $rc
