set -u
umask 077
if [ -e /var/lib/umhctl/reset-pending ]; then echo PENDING; else echo "DONE $(hostname)"; fi
