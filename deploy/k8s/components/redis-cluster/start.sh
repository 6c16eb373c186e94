#!/bin/sh
# Starts one Redis Cluster node. POD_IP and REDIS_PASSWORD come from the pod's environment.
set -eu
umask 077
printf 'requirepass "%s"\nmasterauth "%s"\n' "$REDIS_PASSWORD" "$REDIS_PASSWORD" > /tmp/auth.conf
# A rescheduled pod comes back with a new IP: put it on this node's own line of nodes.conf so
# the node announces the right address and the others take it back from its gossip.
if [ -f /data/nodes.conf ]; then
  sed -i -e "/myself/ s/ [0-9a-f.:]*:6379@16379/ ${POD_IP}:6379@16379/" /data/nodes.conf
fi
exec redis-server /etc/redis/redis.conf --cluster-announce-ip "$POD_IP"
