set -u
umask 077
systemctl reboot
