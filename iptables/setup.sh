#!/usr/bin/env bash
# Applies, verifies and removes the kernel rules that make Sluice the only way out (CONTRACT §8).
#
#   sluice firewall render --mode sidecar|docker … > FILE
#   setup.sh apply  FILE [OPTIONS]   guard (DROP) first, the rules atomically (--noflush), then the self-test
#   setup.sh verify [FILE] [OPTIONS] hooks first and chains complete; the self-test, and Sluice must answer
#   setup.sh remove                  take out exactly what apply added (SLUICE-* chains and their hooks)
#
# FILE is what `sluice firewall render` prints: the IPv4 part, then the IPv6 part (`-` reads stdin).
# OPTIONS:
#   --probe ADDR:PORT     a direct TCP target that must be unreachable (repeatable; [v6]:port for IPv6). Pick one that
#                         would answer without the rules. Default: the nameservers of /etc/resolv.conf, port 53.
#   --test-uid N|current  the UID the self-test connects as (default 65534); never Sluice's UID. Switching to N
#                         takes CAP_SETUID and CAP_SETGID (checked before any change; no silent fallback);
#                         `current` tests as the UID setup.sh runs as, with no switch: what the chart's init
#                         container does, which holds only NET_ADMIN and NET_RAW. The rules tell UIDs apart only
#                         by Sluice's, so any other UID proves the same (root included: root is not exempt).
#   --no-ipv6             IPv4-only node: apply the IPv4 rules only, and require that IPv6 is really absent or
#                         disabled in this network namespace (no IPv6 address on any interface, ::1 included);
#                         refused otherwise. Without it a missing or broken ip6tables fails the apply.
#   --test-netns NAME     run the self-test in this network namespace (`ip netns`), e.g. the workload's
#   --test-pid PID        …or in the network namespace of this process (docker: the workload container)
#   --require-proxy       Sluice must accept the connection (verify always requires it); otherwise "refused" is
#                         enough: the rules let the packet through and Sluice is not listening yet
#   --no-selftest         skip the self-test (loudly)
#   --timeout SECONDS     per connection attempt of the self-test (default 3)
# In docker mode the host is not behind the rules: without --test-pid/--test-netns the self-test is skipped,
# loudly; run `setup.sh verify FILE --test-pid …` once a workload runs.
# Environment: IPTABLES_BACKEND=legacy|nft|auto (default: the system's iptables), or IPTABLES, IP6TABLES,
# IPTABLES_RESTORE, IP6TABLES_RESTORE to name each tool. `auto` picks the backend the host already uses: in
# docker mode the one whose tables hold Docker's DOCKER-USER chain (a legacy-iptables Docker host and an nft
# container would otherwise miss each other's chains), else the one holding Sluice's chains, else the one with
# more rules (nft on a tie).
#
# Exit status: 0 done; 1 apply failed after the guard went in (egress stays DROPped; fix and re-run); 2 bad
# usage, input or a missing prerequisite (nothing changed); 3 verification or the self-test failed (the rules stay).
set -uo pipefail
export LC_ALL=C

die() { local code=$1; shift; echo "sluice setup: $*" >&2; exit "$code"; }
say() { echo "sluice setup: $*" >&2; }
usage() { sed -n '2,37p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

command=${1:-}
[ $# -gt 0 ] && shift
case "$command" in apply|verify|remove) ;; *) usage ;; esac

file=''; probes=(); test_uid=65534; test_netns=''; test_pid=''; require_proxy=0; selftest=1; timeout_s=3; ipv6=1
while [ $# -gt 0 ]; do
  case "$1" in
    --probe) probes+=("${2:?--probe needs ADDR:PORT}"); shift 2 ;;
    --test-uid) test_uid=${2:?--test-uid needs a UID}; shift 2 ;;
    --test-netns) test_netns=${2:?--test-netns needs a name}; shift 2 ;;
    --test-pid) test_pid=${2:?--test-pid needs a PID}; shift 2 ;;
    --require-proxy) require_proxy=1; shift ;;
    --no-selftest) selftest=0; shift ;;
    --no-ipv6) ipv6=0; shift ;;
    --timeout) timeout_s=${2:?--timeout needs seconds}; shift 2 ;;
    -*) [ "$1" = - ] && [ -z "$file" ] && { file=-; shift; continue; }; die 2 "unknown option $1 (see: setup.sh help)" ;;
    *) [ -z "$file" ] || die 2 "one rules file only"; file=$1; shift ;;
  esac
done
[ "$test_uid" = current ] && test_uid=$(id -u)
[[ "$test_uid" =~ ^[0-9]+$ ]] || die 2 "--test-uid must be numeric or current"
[[ "$timeout_s" =~ ^[0-9]+$ ]] || die 2 "--timeout must be whole seconds"
families='4 6'; [ "$ipv6" = 1 ] || families='4'

# ---- the iptables backend ----
# Counts the rules a backend holds for one family (0 when the tool is missing or cannot read its tables).
rule_count() { command -v "$1" >/dev/null 2>&1 || { echo 0; return; }; "$1" -w 10 -S 2>/dev/null | grep -c -- '^-A ' || true; }
pick_backend() { # mode ('' without a rules file)
  local b best='' best_n=-1 n
  for b in nft legacy; do
    command -v "iptables-$b" >/dev/null 2>&1 || continue
    if [ "$1" = docker ]; then
      "iptables-$b" -w 10 -S DOCKER-USER >/dev/null 2>&1 && { echo "$b"; return; }
      continue
    fi
    "iptables-$b" -w 10 -S 2>/dev/null | grep -q -- '-j SLUICE-' && { echo "$b"; return; }
    n=$(rule_count "iptables-$b")
    [ "$n" -gt "$best_n" ] && { best=$b; best_n=$n; }
  done
  [ "$1" = docker ] && return 1
  [ -n "$best" ] && echo "$best"
}
set_tools() { # suffix
  IPT4=${IPTABLES:-iptables$1}
  IPT6=${IP6TABLES:-ip6tables$1}
  RESTORE4=${IPTABLES_RESTORE:-iptables$1-restore}
  RESTORE6=${IP6TABLES_RESTORE:-ip6tables$1-restore}
}
resolve_backend() { # mode
  local b
  case "${IPTABLES_BACKEND:-}" in
    '') set_tools '' ;;
    legacy|nft) set_tools "-$IPTABLES_BACKEND" ;;
    auto)
      b=$(pick_backend "$1") || die 2 "IPTABLES_BACKEND=auto: neither iptables-nft nor iptables-legacy shows Docker's DOCKER-USER chain. Start Docker first; a Docker that manages nftables directly (firewall-backend nftables) has no DOCKER-USER, and docker mode needs its iptables backend; nothing changed"
      [ -n "$b" ] || die 2 "IPTABLES_BACKEND=auto: neither iptables-nft nor iptables-legacy is installed; nothing changed"
      say "iptables backend: $b (IPTABLES_BACKEND=auto)"
      set_tools "-$b" ;;
    *) die 2 "IPTABLES_BACKEND must be legacy, nft or auto" ;;
  esac
}
ipt() { if [ "$1" = 4 ]; then "$IPT4" -w 10 "${@:2}"; else "$IPT6" -w 10 "${@:2}"; fi; }
restore() { if [ "$1" = 4 ]; then "$RESTORE4" -w 10 --noflush; else "$RESTORE6" -w 10 --noflush; fi; }
need_tools() {
  local tool
  for tool in "$IPT4" "$RESTORE4" $([ "$ipv6" = 1 ] && echo "$IPT6 $RESTORE6"); do
    command -v "$tool" >/dev/null 2>&1 || die 2 "$tool not found (install Debian's iptables package$([ "$tool" = "$IPT6" ] || [ "$tool" = "$RESTORE6" ] && echo '; on a node without IPv6, pass --no-ipv6 (chart: firewall.ipv6: false)')); nothing changed"
  done
  # A kernel without IPv6 (ipv6.disable=1) has ip6tables installed but no table to load.
  if [ "$ipv6" = 1 ] && ! ipt 6 -S OUTPUT >/dev/null 2>&1; then
    die 2 "ip6tables cannot read its filter table ($(ipt 6 -S OUTPUT 2>&1 | head -n 1)): on a node without IPv6 pass --no-ipv6 (chart: firewall.ipv6: false), which checks that IPv6 really is off; nothing changed"
  fi
}

# The hooks Sluice owns: in any non-Sluice chain, a rule whose target is a SLUICE-* chain.
hook_rules() { ipt "$1" -S 2>/dev/null | grep -E -- '^-A [^ ]+ .*-j SLUICE-[A-Z0-9-]+$' | grep -Ev -- '^-A SLUICE-'; }
sluice_chains() { ipt "$1" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^SLUICE-/ { print $2 }'; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [ "$command" = remove ]; then
  [ -z "$file" ] || die 2 "remove takes no rules file: it removes every SLUICE-* chain and its hooks"
  resolve_backend ''
  need_tools
  # One atomic restore per family: unhook, flush, delete. Only what apply added, nobody else's rules.
  for fam in $families; do
    chains=$(sluice_chains "$fam")
    [ -n "$chains" ] || { say "ipv$fam: nothing to remove"; continue; }
    {
      echo '*filter'
      hook_rules "$fam" | sed 's/^-A /-D /'
      for c in $chains; do echo "-F $c"; done
      for c in $chains; do echo "-X $c"; done
      echo 'COMMIT'
    } >"$tmp/remove-v$fam"
    restore "$fam" <"$tmp/remove-v$fam" || die 1 "ipv$fam: removing the rules failed"
    say "ipv$fam: removed $(echo $chains)"
  done
  exit 0
fi

# ---- read the rules: split the families, check their shape (a bad file changes nothing) ----
if [ -z "$file" ]; then
  [ "$command" = verify ] || die 2 "apply needs the rules: sluice firewall render … > FILE; setup.sh apply FILE"
  resolve_backend ''
  need_tools
  # verify without a file: only what can be checked without one.
  found=0
  for fam in $families; do
    for c in $(sluice_chains "$fam"); do
      found=1
      while read -r rule; do
        chain=$(echo "$rule" | awk '{print $2}')
        [ "$(ipt "$fam" -S "$chain" | sed -n 2p)" = "$rule" ] || die 3 "ipv$fam: $rule is not the first rule of $chain (run apply)"
      done < <(hook_rules "$fam" | grep -- "-j $c\$")
      [ -n "$(hook_rules "$fam" | grep -- "-j $c\$")" ] || die 3 "ipv$fam: nothing jumps to $c (run apply)"
    done
  done
  [ "$found" = 1 ] || die 3 "no Sluice rules are installed"
  say "Sluice's chains are installed and hooked first (give the rules file for a full verify and self-test)"
  exit 0
fi
if [ "$file" = - ]; then cat >"$tmp/input"; else cat -- "$file" >"$tmp/input" 2>/dev/null || die 2 "cannot read $file"; fi
awk -v dir="$tmp" '/^# sluice-firewall family=/ { split($3, f, "="); out = dir "/rules-v" f[2] } out { print > out }' "$tmp/input"
[ "$ipv6" = 1 ] || [ ! -s "$tmp/rules-v6" ] || say "--no-ipv6: the file's IPv6 part is not applied"
for fam in $families; do
  r="$tmp/rules-v$fam"
  [ -s "$r" ] || die 2 "$file has no IPv$fam part (render with: sluice firewall render --mode … > FILE)"
  grep -qx '\*filter' "$r" && [ "$(grep -v '^#' "$r" | grep -v '^$' | tail -n 1)" = COMMIT ] || die 2 "$file: the IPv$fam part is not one filter table"
  if grep -v '^#' "$r" | grep -Ev '^(\*filter|COMMIT|:SLUICE-[A-Z0-9-]+ - \[0:0\]|-A SLUICE-[A-Z0-9-]+ .*|-I [A-Z-]+ 1 -j SLUICE-[A-Z0-9-]+)$' | grep -q .; then
    die 2 "$file: the IPv$fam part touches more than Sluice's own chains; refusing it"
  fi
done
meta() { sed -n "1s/.* $2=\([^ ]*\).*/\1/p" "$tmp/rules-v$1"; }
mode=$(meta 4 mode); sluice_uid=$(meta 4 uid)
case "$mode" in sidecar|docker) ;; *) die 2 "$file: not rendered by sluice firewall render (no mode)" ;; esac
proxies=$(for fam in $families; do meta "$fam" proxy; done)
resolve_backend "$mode"
need_tools
# The guard is the rules without their exceptions: every RETURN dropped, every REJECT a DROP.
for fam in $families; do
  sed -e '/ -j RETURN$/d' -e 's/ -j REJECT --reject-with [a-z0-9-]*$/ -j DROP/' -e '1s/^# sluice-firewall /# sluice-firewall stage=guard /' \
    "$tmp/rules-v$fam" >"$tmp/guard-v$fam"
done

# ---- self-test preconditions (checked before anything changes) ----
prefix=()
if [ -n "$test_netns" ]; then prefix=(ip netns exec "$test_netns")
elif [ -n "$test_pid" ]; then prefix=(nsenter "--net=/proc/$test_pid/ns/net")
elif [ "$mode" = docker ] && [ "$selftest" = 1 ]; then
  say "WARNING: docker mode without --test-pid/--test-netns: the host is not behind these rules, so the self-test"
  say "WARNING: cannot run from here. Once a workload runs: setup.sh verify FILE --test-pid \$(docker inspect -f '{{.State.Pid}}' WORKLOAD)"
  selftest=0
fi
# IPv6 off must be a fact of this namespace, not a hope: with no IPv6 address at all (not even ::1 or a
# link-local one) nothing can be sent over IPv6, and an unprivileged process cannot turn it back on (writing
# disable_ipv6 takes CAP_NET_ADMIN). A namespace where IPv6 is up, with no ip6tables rules, would be open.
ipv6_off() {
  local addrs
  if [ ! -e /proc/net/if_inet6 ]; then echo "the kernel has no IPv6"; return 0; fi
  addrs=$(awk '{ print $6 }' /proc/net/if_inet6 | sort -u | tr '\n' ' ')
  [ -z "$addrs" ] && { echo "no interface has an IPv6 address (IPv6 disabled)"; return 0; }
  echo "IPv6 is up on: ${addrs% }"; return 1
}
if [ "$ipv6" = 0 ] && [ "$command" = apply ]; then
  why=$("${prefix[@]}" bash -c "$(declare -f ipv6_off); ipv6_off") ||
    die 2 "--no-ipv6, but $why. Disable IPv6 in this network namespace (sysctl net.ipv6.conf.all.disable_ipv6=1 and net.ipv6.conf.default.disable_ipv6=1, or the node's ipv6.disable=1), or apply the IPv6 rules too; nothing changed"
fi
if [ "$selftest" = 1 ]; then
  [ "$mode" = sidecar ] && [ "$test_uid" = "$sluice_uid" ] && die 2 "--test-uid $test_uid is Sluice's UID, whose traffic is exempt: testing as it proves nothing; nothing changed"
  # Switching UID takes CAP_SETUID and CAP_SETGID. Without them setpriv fails with EPERM, which must never be
  # mistaken for "the rules blocked it": checked here, before anything changes.
  if [ "$test_uid" != "$(id -u)" ]; then
    out=$("${prefix[@]}" setpriv --reuid="$test_uid" --regid="$test_uid" --clear-groups true 2>&1) ||
      die 2 "cannot switch to --test-uid $test_uid for the self-test ($out): that takes CAP_SETUID and CAP_SETGID. Pass --test-uid current to test as this UID ($(id -u)); nothing changed"
  fi
  if [ ${#probes[@]} -eq 0 ]; then
    while read -r ns; do
      case "$ns" in 127.*|::1|'') ;; *:*) probes+=("[$ns]:53") ;; *) probes+=("$ns:53") ;; esac
    done < <(awk '$1 == "nameserver" { print $2 }' /etc/resolv.conf 2>/dev/null)
    [ ${#probes[@]} -gt 0 ] || die 2 "no direct target to test: pass --probe ADDR:PORT (one that answers when nothing blocks it); nothing changed"
  fi
fi

# ---- atomic apply with hooks kept unique and first ----
# Each hook is written `-I CHAIN 1 -j SLUICE-X`. Inside the same transaction, existing copies are deleted first,
# so applying twice leaves exactly one hook, first in its chain. Each input is built completely before its
# restore starts: the restore holds the xtables lock, which the `iptables -S` here would wait for.
with_hooks() { # family file
  local fam=$1 in=$2 line chain target n i
  grep -Ev '^(-I [A-Z-]+ 1 -j SLUICE-[A-Z0-9-]+|COMMIT)$' "$in"
  while read -r line; do
    chain=$(echo "$line" | awk '{print $2}'); target=$(echo "$line" | awk '{print $5}')
    n=$(ipt "$fam" -S "$chain" 2>/dev/null | grep -cx -- "-A $chain -j $target")
    for ((i = 0; i < n; i++)); do echo "-D $chain -j $target"; done
    echo "$line"
  done < <(grep -E '^-I [A-Z-]+ 1 -j SLUICE-[A-Z0-9-]+$' "$in")
  echo 'COMMIT'
}

if [ "$command" = apply ]; then
  if [ "$mode" = docker ]; then
    for fam in $families; do
      ipt "$fam" -S DOCKER-USER >/dev/null 2>&1 || die 2 "ipv$fam has no DOCKER-USER chain: start Docker first (for IPv6, \"ip6tables\": true in /etc/docker/daemon.json, the default since Docker 27); nothing changed"
    done
  fi
  # The DROP goes in before any step that can fail: from here on, a failure leaves egress closed.
  for fam in $families; do
    with_hooks "$fam" "$tmp/guard-v$fam" >"$tmp/apply-guard-v$fam" && restore "$fam" <"$tmp/apply-guard-v$fam" ||
      die 1 "ipv$fam: the guard (DROP) could not be applied$([ "$fam" = 6 ] && echo '; IPv4 is guarded, IPv6 is unchanged')"
  done
  for fam in $families; do
    with_hooks "$fam" "$tmp/rules-v$fam" >"$tmp/apply-rules-v$fam" && restore "$fam" <"$tmp/apply-rules-v$fam" ||
      die 1 "ipv$fam: applying the rules failed; the guard (DROP) stays in place"
  done
  say "applied ($mode mode, $([ "$ipv6" = 1 ] && echo 'IPv4 and IPv6' || echo 'IPv4 only: --no-ipv6'))"
fi

# ---- verify the installed state against the file ----
failed=0
for fam in $families; do
  for target in $(grep -E '^-I [A-Z-]+ 1 -j SLUICE-' "$tmp/rules-v$fam" | awk '{print $2 "/" $5}'); do
    chain=${target%/*}; ours=${target#*/}
    first=$(ipt "$fam" -S "$chain" 2>/dev/null | sed -n 2p)
    copies=$(ipt "$fam" -S "$chain" 2>/dev/null | grep -cx -- "-A $chain -j $ours")
    if [ "$first" != "-A $chain -j $ours" ] || [ "$copies" != 1 ]; then
      say "FAIL ipv$fam: the hook to $ours is not the single first rule of $chain"; failed=1
    fi
    want=$(grep -c -- "^-A $ours " "$tmp/rules-v$fam")
    have=$(ipt "$fam" -S "$ours" 2>/dev/null | grep -c -- "^-A $ours ")
    if [ "$want" != "$have" ]; then say "FAIL ipv$fam: $ours has $have rules, the file has $want"; failed=1; fi
  done
done
[ "$failed" = 0 ] || die 3 "the installed rules differ from $file (run apply)"

# ---- self-test: a direct connection must fail, Sluice must be reachable ----
[ "$command" = verify ] && require_proxy=1
if [ "$selftest" = 0 ]; then
  say "WARNING: no self-test ran: nothing here proves that the direct path is closed"
  exit 0
fi

# Prints open | refused | blocked | error | other, and the reason. The probe says "ready" on stderr once it
# runs as the test UID: without that line nothing was tested (setpriv refused, an exec failed), and its EPERM
# is the tool's own, never the rules' — an error, not "blocked".
PROBE='[ "$EUID" = "$2" ] || { echo "sluice-probe: running as uid $EUID, not $2" >&2; exit 97; }; echo sluice-probe-ready >&2; exec 3<>"/dev/tcp/$0/$1"'
attempt() {
  local target=$1 host port out rc as=()
  if [[ "$target" =~ ^\[(.+)\]:([0-9]+)$ ]] || [[ "$target" =~ ^([^:]+):([0-9]+)$ ]]; then
    host=${BASH_REMATCH[1]}; port=${BASH_REMATCH[2]}
  else
    echo "other (bad target $target)"; return
  fi
  [ "$test_uid" = "$(id -u)" ] || as=(setpriv --reuid="$test_uid" --regid="$test_uid" --clear-groups)
  out=$("${prefix[@]}" timeout "$timeout_s" "${as[@]}" bash -c "$PROBE" "$host" "$port" "$test_uid" 2>&1)
  rc=$?
  if [[ "$out" != *sluice-probe-ready* ]]; then echo "error (the probe did not run: $(echo "$out" | grep -v '^$' | tail -n 1); exit $rc)"
  elif [ "$rc" = 0 ]; then echo "open (connected)"
  elif [ "$rc" = 124 ]; then echo "blocked (no answer in ${timeout_s}s)"
  elif [[ "$out" == *"Connection refused"* ]]; then echo "refused (Connection refused)"
  elif [[ "$out" =~ (No route to host|Network is unreachable|Operation not permitted|Permission denied|Cannot assign requested address|Address family not supported by protocol) ]]; then echo "blocked (${BASH_REMATCH[1]})"
  else echo "other ($(echo "$out" | tail -n 1))"
  fi
}

bad=0
if [ "$ipv6" = 0 ]; then
  if why=$("${prefix[@]}" bash -c "$(declare -f ipv6_off); ipv6_off"); then say "ok   IPv6 is off: $why"; else say "FAIL --no-ipv6: $why"; bad=1; fi
fi
for p in "${probes[@]}"; do
  r=$(attempt "$p")
  # "refused" means something on the direct path answered: the rules did not stop the packet.
  if [[ "$r" == blocked* ]]; then say "ok   direct $p as uid $test_uid: $r"; else say "FAIL direct $p as uid $test_uid: $r"; bad=1; fi
done
for p in $proxies; do
  # Sidecar mode checks the IPv4 loopback only: Sluice may well listen on 127.0.0.1 alone.
  [ "$mode" = sidecar ] && [ "$p" != "${p#[}" ] && continue
  r=$(attempt "$p")
  if [[ "$r" == open* ]] || { [ "$require_proxy" = 0 ] && [[ "$r" == refused* ]]; }; then
    say "ok   Sluice $p as uid $test_uid: $r"
  else
    say "FAIL Sluice $p as uid $test_uid: $r$([ "$require_proxy" = 1 ] && echo ' (Sluice must be listening)')"; bad=1
  fi
done
[ "$bad" = 0 ] || die 3 "self-test FAILED (the rules stay in place)"
say "self-test passed"
