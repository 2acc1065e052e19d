#!/bin/sh
# `systemctl` on a lab node: a node has no systemd, so `systemctl reboot` (what the plugin's
# --restart reboot runs through nsenter into the node's PID 1 namespaces) asks the lab to reboot
# this node, through the socket the lab binds into the node. Everything else is refused.
case "$1" in
  reboot)
    exec curl -sf -X POST --unix-socket /run/cilium-migrate-lab/node.sock http://lab/reboot ;;
  *)
    echo "systemctl on a lab node only knows 'reboot'" >&2
    exit 1 ;;
esac
