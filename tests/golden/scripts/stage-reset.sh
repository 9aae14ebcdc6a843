set -euo pipefail
umask 077
tmp=$(mktemp /var/tmp/umhctl-reset.XXXXXX)
trap 'rm -f "$tmp"' EXIT
printf '%s' eyJpZ25pdGlvbiI6IHsidmVyc2lvbiI6ICIzLjMuMCJ9fQ== | base64 -d > "$tmp"
flatcar-reset --keep-machine-id --ignition-file "$tmp" --keep-paths '/etc/ssh/ssh_host_.*' /var/lib/rancher
mkdir -p /var/lib/umhctl
date +%s > /var/lib/umhctl/reset-pending
echo STAGED
