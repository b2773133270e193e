-- The table the compose example's connector inserts into (ClickHouse 22.2 or later for
-- effectively-once: a repeated batch carries the same insert_deduplication_token, and the
-- non-replicated deduplication window lets a MergeTree table drop it).
CREATE TABLE IF NOT EXISTS analytics.events
(
    event_id   UUID,
    ts         DateTime64(3, 'UTC'),
    user_id    UInt64,
    kind       LowCardinality(String),
    amount     Nullable(Decimal(18, 4)),
    tags       Array(String),
    source_ip  IPv6
)
ENGINE = MergeTree
ORDER BY (kind, ts)
SETTINGS non_replicated_deduplication_window = 1000;
