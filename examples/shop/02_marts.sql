-- Marts: one row per user, then a ranked country summary.
CREATE TABLE mart.user_revenue AS
WITH per_user AS (
    SELECT user_id, COUNT(*) AS orders, SUM(amount) AS revenue,
           MIN(ordered_at) AS first_order, MAX(ordered_at) AS last_order
    FROM paid_orders
    GROUP BY user_id
)
SELECT u.user_id, u.email_hash, u.country,
       COALESCE(p.orders, 0) AS orders,
       COALESCE(p.revenue, 0) AS revenue,
       p.first_order, p.last_order,
       CASE WHEN p.revenue > 1000 THEN 'vip' ELSE 'regular' END AS segment
FROM staging.users u
LEFT JOIN per_user p ON p.user_id = u.user_id;

INSERT INTO mart.country_summary (country, customers, revenue, revenue_rank)
SELECT country, COUNT(DISTINCT user_id), SUM(revenue),
       RANK() OVER (ORDER BY SUM(revenue) DESC)
FROM mart.user_revenue
GROUP BY country;
