-- The demo warehouse: a small online shop (categories, products,
-- customers, orders, order_items), generated deterministically (the same
-- rows on every load), with a comment on every table and column, and the
-- read-only role mark_reader the metadata service connects as.
--
-- Plain SQL without psql meta-commands: it is loaded with psql -f by
-- scripts/run.sh and with one PQexec by the tests. Load it into an empty
-- database.

-- Pseudo-random but deterministic: hashint4 of the row number and a salt.
CREATE TABLE categories (
	id int PRIMARY KEY,
	name text NOT NULL UNIQUE,
	department text NOT NULL
);
COMMENT ON TABLE categories IS 'Product categories of the shop, grouped into departments.';
COMMENT ON COLUMN categories.id IS 'Category identifier.';
COMMENT ON COLUMN categories.name IS 'Category name as shown in the shop, e.g. Running Shoes.';
COMMENT ON COLUMN categories.department IS 'Department the category belongs to: Apparel, Footwear, Outdoor, Home or Electronics.';

INSERT INTO categories (id, name, department) VALUES
	(1, 'T-Shirts', 'Apparel'), (2, 'Jackets', 'Apparel'), (3, 'Running Shoes', 'Footwear'),
	(4, 'Hiking Boots', 'Footwear'), (5, 'Tents', 'Outdoor'), (6, 'Backpacks', 'Outdoor'),
	(7, 'Kitchen', 'Home'), (8, 'Bedding', 'Home'), (9, 'Headphones', 'Electronics'),
	(10, 'Smart Watches', 'Electronics'), (11, 'Socks', 'Apparel'), (12, 'Lamps', 'Home');

CREATE TABLE products (
	id int PRIMARY KEY,
	category_id int NOT NULL REFERENCES categories (id),
	sku text NOT NULL UNIQUE,
	name text NOT NULL,
	unit_price numeric(10, 2) NOT NULL CHECK (unit_price > 0),
	is_active boolean NOT NULL DEFAULT true,
	launched_on date NOT NULL
);
COMMENT ON TABLE products IS 'Catalog of items the shop sells, with their category and list price.';
COMMENT ON COLUMN products.id IS 'Product identifier.';
COMMENT ON COLUMN products.category_id IS 'Category of the product (categories.id).';
COMMENT ON COLUMN products.sku IS 'Stock keeping unit, unique code of the product.';
COMMENT ON COLUMN products.name IS 'Product name as shown in the shop.';
COMMENT ON COLUMN products.unit_price IS 'Current list price in EUR, before discounts.';
COMMENT ON COLUMN products.is_active IS 'Whether the product can still be bought.';
COMMENT ON COLUMN products.launched_on IS 'Date the product was first offered.';

INSERT INTO products (id, category_id, sku, name, unit_price, is_active, launched_on)
SELECT i,
       1 + abs(hashint4(i * 7 + 1)) % 12,
       'SKU-' || lpad(i::text, 5, '0'),
       (ARRAY['Classic', 'Pro', 'Lite', 'Urban', 'Trail', 'Eco', 'Max', 'Mini'])[1 + abs(hashint4(i * 7 + 2)) % 8]
           || ' ' ||
       (ARRAY['Alpha', 'Nova', 'Vista', 'Terra', 'Aero', 'Luma', 'Orbit', 'Zen', 'Flux', 'Pulse'])[1 + abs(hashint4(i * 7 + 3)) % 10]
           || ' ' || i,
       round((5 + abs(hashint4(i * 7 + 4)) % 29500 / 100.0)::numeric, 2),
       abs(hashint4(i * 7 + 5)) % 10 <> 0,
       date '2019-01-01' + abs(hashint4(i * 7 + 6)) % 1800
FROM generate_series(1, 300) AS i;

CREATE TABLE customers (
	id int PRIMARY KEY,
	first_name text NOT NULL,
	last_name text NOT NULL,
	email text NOT NULL UNIQUE,
	country text NOT NULL,
	city text NOT NULL,
	signed_up_at timestamptz NOT NULL,
	marketing_opt_in boolean NOT NULL
);
COMMENT ON TABLE customers IS 'People with an account at the shop; one row per customer.';
COMMENT ON COLUMN customers.id IS 'Customer identifier.';
COMMENT ON COLUMN customers.first_name IS 'Given name.';
COMMENT ON COLUMN customers.last_name IS 'Family name.';
COMMENT ON COLUMN customers.email IS 'Email address used to sign in; unique.';
COMMENT ON COLUMN customers.country IS 'Country of the billing address (ISO 3166-1 alpha-2 code).';
COMMENT ON COLUMN customers.city IS 'City of the billing address.';
COMMENT ON COLUMN customers.signed_up_at IS 'When the account was created.';
COMMENT ON COLUMN customers.marketing_opt_in IS 'Whether the customer agreed to receive newsletters.';

INSERT INTO customers (id, first_name, last_name, email, country, city, signed_up_at, marketing_opt_in)
SELECT i, f, l,
       lower(f) || '.' || lower(l) || i || '@example.com',
       c.country, c.city,
       timestamptz '2020-01-01 00:00:00+00' + (abs(hashint4(i * 11 + 3)) % (4 * 365 * 24 * 60)) * interval '1 minute',
       abs(hashint4(i * 11 + 4)) % 3 = 0
FROM generate_series(1, 5000) AS i
CROSS JOIN LATERAL (SELECT
	(ARRAY['Anna', 'Ben', 'Clara', 'David', 'Elena', 'Felix', 'Greta', 'Hugo', 'Ines', 'Jonas', 'Kim', 'Lena', 'Marco', 'Nora', 'Omar', 'Paula'])[1 + abs(hashint4(i * 11 + 1)) % 16] AS f,
	(ARRAY['Schmidt', 'Rossi', 'Dubois', 'Smith', 'Garcia', 'Novak', 'Jansen', 'Berg', 'Silva', 'Kowalski', 'Meyer', 'Moreau'])[1 + abs(hashint4(i * 11 + 2)) % 12] AS l,
	abs(hashint4(i * 11 + 5)) % 8 AS k) AS n
CROSS JOIN LATERAL (SELECT
	(ARRAY['DE', 'FR', 'IT', 'ES', 'NL', 'PL', 'GB', 'SE'])[1 + n.k] AS country,
	(ARRAY['Berlin', 'Paris', 'Milan', 'Madrid', 'Amsterdam', 'Warsaw', 'London', 'Stockholm'])[1 + n.k] AS city) AS c;

CREATE TABLE orders (
	id int PRIMARY KEY,
	customer_id int NOT NULL REFERENCES customers (id),
	ordered_at timestamptz NOT NULL,
	status text NOT NULL CHECK (status IN ('placed', 'shipped', 'delivered', 'cancelled', 'returned')),
	channel text NOT NULL CHECK (channel IN ('web', 'mobile_app', 'marketplace')),
	shipping_cost numeric(8, 2) NOT NULL
);
COMMENT ON TABLE orders IS 'Orders placed by customers; one row per checkout. Amounts are in order_items.';
COMMENT ON COLUMN orders.id IS 'Order number.';
COMMENT ON COLUMN orders.customer_id IS 'Customer who placed the order (customers.id).';
COMMENT ON COLUMN orders.ordered_at IS 'When the order was placed.';
COMMENT ON COLUMN orders.status IS 'Fulfilment status: placed, shipped, delivered, cancelled or returned.';
COMMENT ON COLUMN orders.channel IS 'Where the order was placed: web, mobile_app or marketplace.';
COMMENT ON COLUMN orders.shipping_cost IS 'Shipping fee charged in EUR (0 for free shipping).';

INSERT INTO orders (id, customer_id, ordered_at, status, channel, shipping_cost)
SELECT i,
       1 + abs(hashint4(i * 13 + 1)) % 5000,
       timestamptz '2022-01-01 00:00:00+00' + (abs(hashint4(i * 13 + 2)) % (3 * 365 * 24 * 60)) * interval '1 minute',
       (ARRAY['delivered', 'delivered', 'delivered', 'delivered', 'delivered', 'shipped', 'placed', 'cancelled', 'returned', 'delivered'])[1 + abs(hashint4(i * 13 + 3)) % 10],
       (ARRAY['web', 'web', 'mobile_app', 'mobile_app', 'marketplace'])[1 + abs(hashint4(i * 13 + 4)) % 5],
       (ARRAY[0, 0, 4.90, 4.90, 9.90])[1 + abs(hashint4(i * 13 + 5)) % 5]
FROM generate_series(1, 20000) AS i;

CREATE TABLE order_items (
	order_id int NOT NULL REFERENCES orders (id),
	line_number int NOT NULL,
	product_id int NOT NULL REFERENCES products (id),
	quantity int NOT NULL CHECK (quantity > 0),
	unit_price numeric(10, 2) NOT NULL,
	discount numeric(4, 2) NOT NULL DEFAULT 0,
	PRIMARY KEY (order_id, line_number)
);
COMMENT ON TABLE order_items IS 'Lines of an order: which product, how many, and at what price.';
COMMENT ON COLUMN order_items.order_id IS 'Order the line belongs to (orders.id).';
COMMENT ON COLUMN order_items.line_number IS 'Position of the line within its order, from 1.';
COMMENT ON COLUMN order_items.product_id IS 'Product bought (products.id).';
COMMENT ON COLUMN order_items.quantity IS 'Number of units bought.';
COMMENT ON COLUMN order_items.unit_price IS 'Price of one unit in EUR when the order was placed.';
COMMENT ON COLUMN order_items.discount IS 'Discount as a fraction of the line amount, 0 to 0.5; line revenue = quantity * unit_price * (1 - discount).';

INSERT INTO order_items (order_id, line_number, product_id, quantity, unit_price, discount)
SELECT o.id, l, p.id,
       1 + abs(hashint4(o.id * 17 + l * 3 + 2)) % 4,
       p.unit_price,
       (ARRAY[0, 0, 0, 0, 0.10, 0.15, 0.25, 0.5])[1 + abs(hashint4(o.id * 17 + l * 3 + 3)) % 8]
FROM orders o
CROSS JOIN LATERAL generate_series(1, 1 + abs(hashint4(o.id * 17)) % 4) AS l
JOIN products p ON p.id = 1 + abs(hashint4(o.id * 17 + l * 3 + 1)) % 300;

CREATE INDEX orders_customer ON orders (customer_id);
CREATE INDEX order_items_product ON order_items (product_id);

-- The role Mark queries as: may connect and read, nothing else.
DO $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mark_reader') THEN
		CREATE ROLE mark_reader LOGIN;
	END IF;
	EXECUTE format('GRANT CONNECT ON DATABASE %I TO mark_reader', current_database());
END
$$;
ALTER ROLE mark_reader SET default_transaction_read_only = on;
GRANT USAGE ON SCHEMA public TO mark_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO mark_reader;

ANALYZE;
