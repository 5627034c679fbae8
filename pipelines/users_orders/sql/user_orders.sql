-- analytics.user_orders: one row per user with what they ordered and when.
--
-- Written once in DuckDB's SQL; the pipeline transpiles it with sqlglot for the target
-- warehouse (PostgreSQL, BigQuery). Cancelled and refunded orders do not count. Revenue is
-- in US dollars at fixed reporting rates, so users in different currencies compare.
CREATE TABLE analytics.user_orders AS
SELECT
    u.user_id,
    u.country,
    u.plan,
    u.signup_date,
    COUNT(o.order_id) AS order_count,
    CAST(COALESCE(SUM(o.amount * CASE o.currency
        WHEN 'EUR' THEN 1.08
        WHEN 'GBP' THEN 1.27
        ELSE 1.00
    END), 0) AS DECIMAL(14, 2)) AS revenue_usd,
    MIN(o.order_ts) AS first_order_at,
    MAX(o.order_ts) AS last_order_at
FROM staging.users AS u
LEFT JOIN staging.orders AS o
    ON o.user_id = u.user_id
    AND o.status NOT IN ('cancelled', 'refunded')
GROUP BY u.user_id, u.country, u.plan, u.signup_date
