#!/bin/sh
# Creates the Redis Cluster once; safe to run again (every `kubectl apply` after the Job's TTL
# re-runs it). If any node already knows other nodes or owns slots, it does not create anything:
# it re-introduces every node to node 0 at its current IP (CLUSTER MEET, harmless when known;
# repairs the cluster after pods came back with new IPs) and waits for cluster_state:ok.
set -eu
export REDISCLI_AUTH="$REDIS_PASSWORD"
replicas="${REDIS_NODES:-6}"
svc="${REDIS_SERVICE:-redis-cluster}"
ips=""
existing=0
i=0
while [ "$i" -lt "$replicas" ]; do
  host="$svc-$i.$svc"
  until redis-cli -h "$host" ping 2>/dev/null | grep -q PONG; do
    echo "bootstrap: waiting for $host"; sleep 2
  done
  ip="$(getent hosts "$host" | awk 'NR==1 {print $1}')"
  ips="$ips $ip"
  info="$(redis-cli -h "$ip" cluster info | tr -d '\r')"
  known="$(echo "$info" | sed -n 's/^cluster_known_nodes://p')"
  slots="$(echo "$info" | sed -n 's/^cluster_slots_assigned://p')"
  if [ "${known:-1}" -gt 1 ] || [ "${slots:-0}" -gt 0 ]; then existing=1; fi
  i=$((i + 1))
done
first="$(echo $ips | awk '{print $1}')"
if [ "$existing" -eq 1 ]; then
  echo "bootstrap: cluster already created; re-meeting nodes at their current IPs"
  for ip in $ips; do
    [ "$ip" = "$first" ] || redis-cli -h "$ip" cluster meet "$first" 6379 >/dev/null || true
  done
else
  echo "bootstrap: creating the cluster over$ips"
  # shellcheck disable=SC2086
  redis-cli --cluster create $(for ip in $ips; do printf '%s:6379 ' "$ip"; done) \
    --cluster-replicas 1 --cluster-yes
fi
tries=0
until redis-cli -h "$first" cluster info | grep -q '^cluster_state:ok'; do
  tries=$((tries + 1))
  [ "$tries" -lt 90 ] || { echo "bootstrap: cluster_state not ok after 180s" >&2; exit 1; }
  sleep 2
done
redis-cli -h "$first" cluster nodes
echo "bootstrap: cluster_state:ok"
