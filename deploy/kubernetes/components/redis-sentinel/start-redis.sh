#!/bin/sh
# redis-server of one pod: a replica of whoever the Sentinels say is primary (redis-0 at first).
set -eu
domain="redis-headless.${POD_NAMESPACE}.svc.cluster.local"
self="$(hostname).${domain}"
primary="redis-0.${domain}"
for i in 0 1 2; do
  answer=$(redis-cli -h "redis-${i}.${domain}" -p 26379 --raw \
    SENTINEL get-master-addr-by-name ad1411 2>/dev/null | head -n 1 || true)
  if [ -n "${answer}" ]; then primary="${answer}"; break; fi
done
set -- /data/redis.conf --port 6379 --dir /data \
  --appendonly yes --appendfsync everysec --save "" --maxmemory-policy noeviction \
  --requirepass "${REDIS_PASSWORD}" --masterauth "${REDIS_PASSWORD}" \
  --replica-announce-ip "${self}" \
  --min-replicas-to-write 1 --min-replicas-max-lag 10
touch /data/redis.conf
if [ "${primary}" != "${self}" ]; then
  set -- "$@" --replicaof "${primary}" 6379
fi
exec redis-server "$@"
