-- audit_append(keys=[stream], args=[maxlen, k, v, ...])
-- Append one entry to one audit stream, chained to the previous one.
audit_append(KEYS[1], ARGV[1], {unpack(ARGV, 2)})
return 1
