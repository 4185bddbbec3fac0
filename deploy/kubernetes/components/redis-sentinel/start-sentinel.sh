#!/bin/sh
# The Sentinel of one pod: monitors service ad1411 (quorum 2 of 3), announces its hostname.
set -eu
domain="redis-headless.${POD_NAMESPACE}.svc.cluster.local"
self="$(hostname).${domain}"
primary="redis-0.${domain}"
for i in 0 1 2; do
  answer=$(redis-cli -h "redis-${i}.${domain}" -p 26379 --raw \
    SENTINEL get-master-addr-by-name ad1411 2>/dev/null | head -n 1 || true)
  if [ -n "${answer}" ]; then primary="${answer}"; break; fi
done
cat > /sentinel/sentinel.conf <<CONF
port 26379
dir /sentinel
sentinel resolve-hostnames yes
sentinel announce-hostnames yes
sentinel announce-ip ${self}
sentinel monitor ad1411 ${primary} 6379 2
sentinel auth-pass ad1411 ${REDIS_PASSWORD}
sentinel down-after-milliseconds ad1411 5000
sentinel failover-timeout ad1411 60000
sentinel parallel-syncs ad1411 1
CONF
exec redis-server /sentinel/sentinel.conf --sentinel
