set -euo pipefail
umask 077
mkdirs() { [ -d "$1" ] && return 0; local up=${1%/*}; mkdirs "${up:-/}"; mkdir -m 0755 -- "$1"; }
mkdirs /opt/extensions/k3s
t=/opt/extensions/k3s/.umhctl-0123abcd-0.tmp
trap 'rm -f -- "$t"' EXIT
cat > "$t"
sum=$(sha256sum -- "$t" | cut -d " " -f 1)
if [ "$sum" != abababababababababababababababababababababababababababababababab ]; then echo "MISMATCH $sum"; exit 3; fi
chmod 0644 -- "$t"
sync -- "$t"
mv -f -T -- "$t" /opt/extensions/k3s/k3s-v1.32.2+k3s1-x86-64.raw
trap - EXIT
sync -- /opt/extensions/k3s || echo 'WARNING directory not synced'
echo UPLOADED
