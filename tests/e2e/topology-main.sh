# Shared part of the topology scripts (sourced as their last line, not run): the namespace
# life cycle and the command dispatch. The sourcing script sets ALL (its namespace names) and
# defines up(), which starts with fresh_namespaces.
# Usage, last line of a topology script: . "$(dirname "$0")/topology-main.sh" "$@"

# Remove the namespaces in ALL, ending every process still running inside them (ours only:
# found by namespace). Idempotent.
down() {
    for ns in "${ALL[@]}"; do
        if ip netns list | grep -qw "$ns"; then
            for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
            ip netns del "$ns" 2>/dev/null || true
        fi
    done
}

# Leftovers of an earlier run removed, then every namespace in ALL created with loopback up.
fresh_namespaces() {
    down
    for ns in "${ALL[@]}"; do
        ip netns add "$ns"
        ip -n "$ns" link set lo up
    done
}

status() {
    for ns in "${ALL[@]}"; do
        echo "== $ns"; ip -n "$ns" -br addr 2>/dev/null || echo "(absent)"
    done
}

if [ "$(id -u)" -ne 0 ]; then
    echo "$(basename "$0"): must run as root (creates network namespaces)" >&2
    exit 1
fi
case "${1:-}" in
    up) up ;;
    down) down ;;
    status) status ;;
    *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
