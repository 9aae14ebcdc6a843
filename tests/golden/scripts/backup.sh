set -u
umask 077
cd / && for p in var/lib/rancher/k3s/storage opt/data; do [ -e "$p" ] && printf '%s\0' "$p"; done | tar -czf - --null -T -
