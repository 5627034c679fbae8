CREATE TABLE mart.daily_revenue AS
SELECT o.user_id,
       u.country,
       SUM(o.amount) AS revenue,
       COUNT(*) AS orders
FROM staging.orders AS o
JOIN crm.users AS u ON u.id = o.user_id
WHERE o.order_day = DATE '{{ ds }}'
  AND o.amount >= {{ params.min_amount }}
GROUP BY o.user_id, u.country
