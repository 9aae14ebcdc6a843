set -euo pipefail
umask 077
rm -f -- /opt/extensions/k3s/k3s-v1.32.1+k3s1-x86-64.raw
echo PRUNED
