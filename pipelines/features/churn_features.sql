-- features.churn_features: one row per user, the inputs of the churn model.
--
-- Built from analytics.user_orders (users-orders pipeline) and weather.hourly (weather
-- pipeline). Written in DuckDB's SQL and transpiled by sqlglot for other warehouses. The
-- user id is hashed (user_key) so the feature table carries no direct identifier; weather
-- is joined per country (the demo's locations stand for DE, GB and JP).
CREATE TABLE features.churn_features AS
WITH weather_by_country AS (
    SELECT
        CASE location WHEN 'berlin' THEN 'DE' WHEN 'london' THEN 'GB' WHEN 'tokyo' THEN 'JP' END AS country,
        AVG(temperature_c) AS avg_temperature_c,
        SUM(precipitation_mm) AS total_precipitation_mm
    FROM weather.hourly
    GROUP BY 1
)
SELECT
    md5(CAST(uo.user_id AS VARCHAR)) AS user_key,
    uo.country,
    uo.plan,
    date_diff('day', CAST(uo.signup_date AS DATE), DATE '2025-01-01') AS tenure_days,
    uo.order_count,
    uo.revenue_usd,
    CASE WHEN uo.order_count > 0 THEN uo.revenue_usd / uo.order_count END AS avg_order_usd,
    date_diff('day', CAST(uo.last_order_at AS DATE), DATE '2025-01-01') AS days_since_last_order,
    w.avg_temperature_c,
    w.total_precipitation_mm
FROM analytics.user_orders AS uo
LEFT JOIN weather_by_country AS w
    ON w.country = uo.country
