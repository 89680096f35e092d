#!/usr/bin/env bash
# Applies, verifies and removes the kernel rules that make Sluice the only way out (DESIGN §8).
#
#   setup.sh apply  [SETUP OPTIONS] [RENDER OPTIONS]   render, guard (DROP), apply atomically, self-test
#   setup.sh verify [SETUP OPTIONS] [RENDER OPTIONS]   hooks first, chains complete, self-test (Sluice must answer)
#   setup.sh remove                                    take out exactly what apply added (SLUICE-* chains, their hooks)
#
# RENDER OPTIONS are those of `sluice firewall render` (--mode sidecar|docker, --uid, --workload-uid, --ports,
# --dns-port, --loopback-ports, --bridge, --proxy-ip, --proxy-ip6, --subnet, --subnet6); or pass
# --rules-dir DIR holding the files `sluice firewall render --out DIR` wrote.
# SETUP OPTIONS:
#   --rules-dir DIR       use pre-rendered rules (e.g. rendered in the Sluice image, applied on a host without Node)
#   --probe ADDR:PORT     a direct TCP target that must be unreachable (repeatable; [v6]:port for IPv6). Pick one that
#                         would answer without the rules. Default: the nameservers of /etc/resolv.conf, port 53.
#   --test-uid N          the UID the self-test connects as (default 65534); it must not be Sluice's UID
#   --test-netns NAME     docker mode: run the self-test inside this network namespace (`ip netns`) on the workload
#   --test-pid PID        docker mode: …or inside the network namespace of this process (the workload container)
#   --require-proxy       Sluice must accept the connection (verify always requires it); without it, apply also
#                         accepts "refused" (the rules let the packet through; Sluice is not listening yet)
#   --no-selftest         skip the self-test (loudly); apply then proves nothing
#   --timeout SECONDS     per connection attempt of the self-test (default 3)
# Environment: SLUICE (how to run sluice; default `sluice`), IPTABLES_BACKEND=legacy|nft (default: the system's
# iptables), or IPTABLES, IP6TABLES, IPTABLES_RESTORE, IP6TABLES_RESTORE to name each tool.
#
# Exit status: 0 done; 1 apply failed after the guard went in (egress stays DROPped; fix and re-run); 2 bad
# usage, rendering or a missing prerequisite (nothing changed); 3 the self-test failed (the rules stay in place).
set -uo pipefail
export LC_ALL=C

die() { local code=$1; shift; echo "sluice setup: $*" >&2; exit "$code"; }
say() { echo "sluice setup: $*" >&2; }

command=${1:-}
[ $# -gt 0 ] && shift
case "$command" in apply|verify|remove) ;; *) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;; esac

case "${IPTABLES_BACKEND:-}" in
  '') sfx='' ;;
  legacy|nft) sfx="-$IPTABLES_BACKEND" ;;
  *) die 2 "IPTABLES_BACKEND must be legacy or nft" ;;
esac
IPT4=${IPTABLES:-iptables$sfx}
IPT6=${IP6TABLES:-ip6tables$sfx}
RESTORE4=${IPTABLES_RESTORE:-iptables$sfx-restore}
RESTORE6=${IP6TABLES_RESTORE:-ip6tables$sfx-restore}
ipt() { if [ "$1" = 4 ]; then "$IPT4" -w 10 "${@:2}"; else "$IPT6" -w 10 "${@:2}"; fi; }
restore() { if [ "$1" = 4 ]; then "$RESTORE4" -w 10 --noflush; else "$RESTORE6" -w 10 --noflush; fi; }

rules_dir=''; probes=(); test_uid=65534; test_netns=''; test_pid=''; require_proxy=0; selftest=1; timeout_s=3
render_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --rules-dir) rules_dir=${2:?--rules-dir needs a directory}; shift 2 ;;
    --probe) probes+=("${2:?--probe needs ADDR:PORT}"); shift 2 ;;
    --test-uid) test_uid=${2:?--test-uid needs a UID}; shift 2 ;;
    --test-netns) test_netns=${2:?--test-netns needs a name}; shift 2 ;;
    --test-pid) test_pid=${2:?--test-pid needs a PID}; shift 2 ;;
    --require-proxy) require_proxy=1; shift ;;
    --no-selftest) selftest=0; shift ;;
    --timeout) timeout_s=${2:?--timeout needs seconds}; shift 2 ;;
    *) render_args+=("$1"); shift ;;
  esac
done
[[ "$test_uid" =~ ^[0-9]+$ ]] || die 2 "--test-uid must be numeric"
[[ "$timeout_s" =~ ^[0-9]+$ ]] || die 2 "--timeout must be whole seconds"

for tool in "$IPT4" "$IPT6" "$RESTORE4" "$RESTORE6"; do
  command -v "$tool" >/dev/null 2>&1 || die 2 "$tool not found (install Debian's iptables package); nothing changed"
done

# The hooks Sluice owns: in any non-Sluice chain, a rule whose target is a SLUICE-* chain.
hook_rules() { ipt "$1" -S 2>/dev/null | grep -E -- '^-A [^ ]+ .*-j SLUICE-[A-Z0-9-]+$' | grep -Ev -- '^-A SLUICE-'; }
sluice_chains() { ipt "$1" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^SLUICE-/ { print $2 }'; }

if [ "$command" = remove ]; then
  # One atomic restore per family: unhook, flush, delete. Only what apply added, nobody else's rules.
  for fam in 4 6; do
    chains=$(sluice_chains "$fam")
    [ -n "$chains" ] || { say "ipv$fam: nothing to remove"; continue; }
    input=$({
      echo '*filter'
      hook_rules "$fam" | sed 's/^-A /-D /'
      for c in $chains; do echo "-F $c"; done
      for c in $chains; do echo "-X $c"; done
      echo 'COMMIT'
    })
    restore "$fam" <<<"$input" || die 1 "ipv$fam: removing the rules failed"
    say "ipv$fam: removed $(echo $chains)"
  done
  exit 0
fi

# ---- render (pure; a bad option changes nothing) ----
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ -z "$rules_dir" ]; then
  [ ${#render_args[@]} -gt 0 ] || die 2 "give render options (e.g. --mode sidecar --workload-uid 1000) or --rules-dir DIR"
  # shellcheck disable=SC2086 # SLUICE may be a command with arguments (node dist/proxy/cli.js)
  ${SLUICE:-sluice} firewall render --out "$tmp" "${render_args[@]}" 2>"$tmp/render.err" || {
    cat "$tmp/render.err" >&2; die 2 "rendering failed; nothing changed"; }
  rules_dir=$tmp
elif [ ${#render_args[@]} -gt 0 ]; then
  die 2 "unknown options with --rules-dir: ${render_args[*]}"
fi
for f in sluice-v4.rules sluice-v6.rules sluice-v4.guard sluice-v6.guard sluice-selftest.conf; do
  [ -r "$rules_dir/$f" ] || die 2 "$rules_dir/$f is missing (render with: sluice firewall render --out DIR …)"
done
conf() { sed -n "s/^$1=//p" "$rules_dir/sluice-selftest.conf" | head -n 1; }
mode=$(conf mode); sluice_uid=$(conf uid); proxies=$(conf proxy)
case "$mode" in sidecar|docker) ;; *) die 2 "sluice-selftest.conf: unknown mode '$mode'" ;; esac

# ---- self-test preconditions (checked before anything changes) ----
if [ "$selftest" = 1 ]; then
  [ "$mode" = sidecar ] && [ "$test_uid" = "$sluice_uid" ] && die 2 "--test-uid $test_uid is Sluice's UID, whose traffic is exempt: testing as it proves nothing; nothing changed"
  prefix=()
  if [ -n "$test_netns" ]; then prefix=(ip netns exec "$test_netns")
  elif [ -n "$test_pid" ]; then prefix=(nsenter "--net=/proc/$test_pid/ns/net")
  elif [ "$mode" = docker ]; then die 2 "docker mode: the self-test must run on the workload network: pass --test-pid \$(docker inspect -f '{{.State.Pid}}' WORKLOAD) or --test-netns NAME (or --no-selftest); nothing changed"
  fi
  if [ ${#probes[@]} -eq 0 ]; then
    while read -r ns; do
      case "$ns" in 127.*|::1|'') ;; *:*) probes+=("[$ns]:53") ;; *) probes+=("$ns:53") ;; esac
    done < <(awk '$1 == "nameserver" { print $2 }' /etc/resolv.conf 2>/dev/null)
    [ ${#probes[@]} -gt 0 ] || die 2 "no direct target to test: pass --probe ADDR:PORT (one that answers when nothing blocks it); nothing changed"
  fi
fi

# ---- atomic apply with hooks kept unique and first ----
# The generator writes each hook as `-I CHAIN 1 -j SLUICE-X`. Inside the same transaction, any existing copies
# are deleted first, so applying twice leaves exactly one hook, first in its chain.
with_hooks() { # family file
  local fam=$1 file=$2 line chain target n i
  grep -Ev '^(-I [A-Z-]+ 1 -j SLUICE-[A-Z0-9-]+|COMMIT)$' "$file"
  while read -r line; do
    chain=$(echo "$line" | awk '{print $2}'); target=$(echo "$line" | awk '{print $5}')
    n=$(ipt "$fam" -S "$chain" 2>/dev/null | grep -cx -- "-A $chain -j $target")
    for ((i = 0; i < n; i++)); do echo "-D $chain -j $target"; done
    echo "$line"
  done < <(grep -E '^-I [A-Z-]+ 1 -j SLUICE-[A-Z0-9-]+$' "$file")
  echo 'COMMIT'
}

if [ "$command" = apply ]; then
  if [ "$mode" = docker ]; then
    for fam in 4 6; do
      ipt "$fam" -S DOCKER-USER >/dev/null 2>&1 || die 2 "ipv$fam has no DOCKER-USER chain: start Docker first (for IPv6, set \"ip6tables\": true in /etc/docker/daemon.json); nothing changed"
    done
  fi
  # The DROP goes in before any step that can fail: from here on, a failure leaves egress closed.
  # Each input is built completely before its restore starts: the restore holds the xtables lock, which the
  # `iptables -S` inside with_hooks would otherwise wait for.
  for fam in 4 6; do
    with_hooks "$fam" "$rules_dir/sluice-v$fam.guard" >"$tmp/guard-v$fam" && restore "$fam" <"$tmp/guard-v$fam" || die 1 "ipv$fam: the guard (DROP) could not be applied$([ "$fam" = 6 ] && echo '; IPv4 is guarded, IPv6 is unchanged')"
  done
  for fam in 4 6; do
    with_hooks "$fam" "$rules_dir/sluice-v$fam.rules" >"$tmp/rules-v$fam" && restore "$fam" <"$tmp/rules-v$fam" || die 1 "ipv$fam: applying the rules failed; the guard (DROP) stays in place"
  done
  say "applied ($mode mode, IPv4 and IPv6)"
fi

# ---- verify the installed state ----
failed=0
for fam in 4 6; do
  for target in $(grep -E '^-I [A-Z-]+ 1 -j SLUICE-' "$rules_dir/sluice-v$fam.rules" | awk '{print $2 "/" $5}'); do
    chain=${target%/*}; ours=${target#*/}
    first=$(ipt "$fam" -S "$chain" 2>/dev/null | sed -n 2p)
    copies=$(ipt "$fam" -S "$chain" 2>/dev/null | grep -cx -- "-A $chain -j $ours")
    if [ "$first" != "-A $chain -j $ours" ] || [ "$copies" != 1 ]; then
      say "FAIL ipv$fam: the hook to $ours is not the single first rule of $chain"; failed=1
    fi
    want=$(grep -c -- "^-A $ours " "$rules_dir/sluice-v$fam.rules")
    have=$(ipt "$fam" -S "$ours" 2>/dev/null | grep -c -- "^-A $ours ")
    if [ "$want" != "$have" ]; then say "FAIL ipv$fam: $ours has $have rules, the rendered set has $want"; failed=1; fi
  done
done
[ "$failed" = 0 ] || die 3 "the installed rules differ from the rendered ones (run apply)"

# ---- self-test: a direct connection must fail, Sluice must be reachable ----
[ "$command" = verify ] && require_proxy=1
if [ "$selftest" = 0 ]; then
  say "WARNING: --no-selftest: nothing will prove that the direct path is closed"
  exit 0
fi
# Prints open | refused | blocked | other, and the reason.
attempt() {
  local target=$1 host port out rc
  if [[ "$target" =~ ^\[(.+)\]:([0-9]+)$ ]] || [[ "$target" =~ ^([^:]+):([0-9]+)$ ]]; then
    host=${BASH_REMATCH[1]}; port=${BASH_REMATCH[2]}
  else
    echo "other (bad target $target)"; return
  fi
  out=$("${prefix[@]}" timeout "$timeout_s" setpriv --reuid="$test_uid" --regid="$test_uid" --clear-groups \
    bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$host" "$port" 2>&1)
  rc=$?
  if [ "$rc" = 0 ]; then echo "open (connected)"
  elif [ "$rc" = 124 ]; then echo "blocked (no answer in ${timeout_s}s)"
  elif [[ "$out" == *"Connection refused"* ]]; then echo "refused (Connection refused)"
  elif [[ "$out" =~ (No route to host|Network is unreachable|Operation not permitted|Permission denied) ]]; then echo "blocked (${BASH_REMATCH[1]})"
  else echo "other ($(echo "$out" | tail -n 1))"
  fi
}

bad=0
for p in "${probes[@]}"; do
  r=$(attempt "$p")
  # "refused" means something on the direct path answered: the rules did not stop the packet.
  if [[ "$r" == blocked* ]]; then say "ok   direct $p as uid $test_uid: $r"; else say "FAIL direct $p as uid $test_uid: $r"; bad=1; fi
done
for p in $proxies; do
  r=$(attempt "$p")
  if [[ "$r" == open* ]] || { [ "$require_proxy" = 0 ] && [[ "$r" == refused* ]]; }; then
    say "ok   Sluice $p as uid $test_uid: $r"
  else
    say "FAIL Sluice $p as uid $test_uid: $r$([ "$require_proxy" = 1 ] && echo ' (Sluice must be listening)')"; bad=1
  fi
done
[ "$bad" = 0 ] || die 3 "self-test FAILED (the rules stay in place)"
say "self-test passed"
