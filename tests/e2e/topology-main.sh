# Shared tail of the topology scripts (sourced, not run): refuse to run without root, then
# dispatch `up | down | status` to the functions the sourcing script defined.
# Usage, last line of a topology script: . "$(dirname "$0")/topology-main.sh" "$@"
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
