-- Staging: paid orders only, users with a hashed email.
CREATE TEMP TABLE paid_orders AS
SELECT order_id, user_id, amount, ordered_at
FROM raw.orders
WHERE status = 'paid';

CREATE VIEW staging.users AS
SELECT id AS user_id, md5(lower(email)) AS email_hash, full_name, country
FROM raw.users;
