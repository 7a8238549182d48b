-- The schema of a small shop, as an application's migrations leave it.
-- catalog tests apply this file to a live database and check that Load and
-- FromDDL agree on it; testdata/pgdump.sql is pg_dump's rendering of it.

CREATE SCHEMA app;
CREATE SCHEMA hr;
CREATE SCHEMA "Sales Dept";

SET search_path = app, public;

CREATE TABLE customers (
    id bigint PRIMARY KEY,
    name text NOT NULL,
    email text,
    legacy_flag boolean,
    "Phone" text
);
ALTER TABLE customers DROP COLUMN legacy_flag;
ALTER TABLE customers ADD COLUMN created_at timestamptz DEFAULT now();
ALTER TABLE customers RENAME COLUMN "Phone" TO phone_number;
COMMENT ON COLUMN customers.email IS 'personal data';
CREATE INDEX customers_email ON customers (email);

CREATE TABLE "Orders" (
    id bigint,
    customer_id bigint REFERENCES customers (id),
    placed_on date NOT NULL,
    total numeric(12, 2)
) PARTITION BY RANGE (placed_on);
CREATE TABLE orders_2025 PARTITION OF "Orders"
    FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE orders_2026 PARTITION OF "Orders" (total WITH OPTIONS NOT NULL)
    FOR VALUES FROM ('2026-01-01') TO ('2027-01-01') PARTITION BY LIST (customer_id);
CREATE TABLE orders_2026_vip PARTITION OF orders_2026 FOR VALUES IN (1, 2, 3);
CREATE TABLE orders_2026_rest PARTITION OF orders_2026 DEFAULT;
CREATE TABLE orders_archive (LIKE "Orders", archived_at timestamptz);

CREATE TABLE hr.people (id int, full_name text, birth_date date);
CREATE TABLE hr.employees (salary numeric, iban text) INHERITS (hr.people);
CREATE TABLE hr.contractors (full_name text, agency text) INHERITS (hr.people);
ALTER TABLE hr.people ADD COLUMN nationality text;

CREATE TABLE "Sales Dept"."Leads" ("Lead Name" text, score int);

CREATE FOREIGN DATA WRAPPER shop_fdw;
CREATE SERVER shop_remote FOREIGN DATA WRAPPER shop_fdw;
CREATE FOREIGN TABLE app.remote_stock (sku text, quantity int) SERVER shop_remote;

CREATE VIEW customer_contacts AS
    SELECT c.id, c.name AS customer, lower(c.email), c.phone_number::text,
           'x'::text, 1 + 1,
           CASE WHEN c.email IS NULL THEN 'none' ELSE 'some' END,
           coalesce(c.email, ''),
           (SELECT max(o.total) FROM "Orders" o WHERE o.customer_id = c.id),
           EXISTS (SELECT 1 FROM "Orders" o WHERE o.customer_id = c.id),
           current_date, ARRAY[1], greatest(1, 2), nullif(c.name, '')
    FROM customers c;

CREATE VIEW order_overview AS
    WITH recent AS (SELECT * FROM "Orders" WHERE placed_on > DATE '2025-06-01')
    SELECT r.*, c.name FROM recent r JOIN customers c ON c.id = r.customer_id;

CREATE VIEW customer_orders AS
    SELECT * FROM customers
    JOIN (SELECT id AS order_id, customer_id AS id, total FROM "Orders") o USING (id);

CREATE VIEW "Sales Dept".lead_scores ("Lead", points) AS
    SELECT * FROM "Sales Dept"."Leads" WITH CHECK OPTION;

CREATE MATERIALIZED VIEW hr.headcount AS
    SELECT count(*) AS n, p.nationality FROM hr.people p GROUP BY p.nationality
    WITH NO DATA;

CREATE TABLE customers_backup AS SELECT id, email FROM customers;
CREATE TABLE pairs (a, b) AS VALUES (1, 'x');
SELECT id, name INTO customer_names FROM customers;

CREATE FUNCTION full_label(c customers) RETURNS text
    LANGUAGE sql AS $$ SELECT c.name || ' <' || c.email || '>' $$;
CREATE FUNCTION bump(x int) RETURNS int
    LANGUAGE plpgsql AS $$ BEGIN RETURN x + 1; END $$;
CREATE FUNCTION bump(x bigint) RETURNS bigint
    LANGUAGE sql RETURN x + 1;
CREATE PROCEDURE hr.raise_all(pct numeric)
    LANGUAGE sql AS $$ UPDATE hr.employees SET salary = salary * (1 + pct / 100) $$;
CREATE OPERATOR =~= (LEFTARG = text, RIGHTARG = text, FUNCTION = texteq);
CREATE AGGREGATE total_sum(numeric) (SFUNC = numeric_add, STYPE = numeric);

GRANT USAGE ON SCHEMA app TO PUBLIC;
INSERT INTO customers (id, name) VALUES (1, 'Ada');
