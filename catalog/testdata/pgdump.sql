-- pg_dump 15 --schema-only --no-owner --no-privileges of a database made from
-- testdata/app.sql, kept as pg_dump wrote it (psql \restrict lines included).
--
-- PostgreSQL database dump
--

\restrict OzAjDcW03H4H32GY6kkghgaFHsrSuQC5wPfrwHzOeWphao4jfKPKALAJITKCtJZ

-- Dumped from database version 15.18 (Debian 15.18-0+deb12u1)
-- Dumped by pg_dump version 15.18 (Debian 15.18-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- Name: Sales Dept; Type: SCHEMA; Schema: -; Owner: -
--

CREATE SCHEMA "Sales Dept";


--
-- Name: app; Type: SCHEMA; Schema: -; Owner: -
--

CREATE SCHEMA app;


--
-- Name: hr; Type: SCHEMA; Schema: -; Owner: -
--

CREATE SCHEMA hr;


--
-- Name: bump(integer); Type: FUNCTION; Schema: app; Owner: -
--

CREATE FUNCTION app.bump(x integer) RETURNS integer
    LANGUAGE plpgsql
    AS $$ BEGIN RETURN x + 1; END $$;


--
-- Name: bump(bigint); Type: FUNCTION; Schema: app; Owner: -
--

CREATE FUNCTION app.bump(x bigint) RETURNS bigint
    LANGUAGE sql
    RETURN (x + 1);


SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: customers; Type: TABLE; Schema: app; Owner: -
--

CREATE TABLE app.customers (
    id bigint NOT NULL,
    name text NOT NULL,
    email text,
    phone_number text,
    created_at timestamp with time zone DEFAULT now()
);


--
-- Name: COLUMN customers.email; Type: COMMENT; Schema: app; Owner: -
--

COMMENT ON COLUMN app.customers.email IS 'personal data';


--
-- Name: full_label(app.customers); Type: FUNCTION; Schema: app; Owner: -
--

CREATE FUNCTION app.full_label(c app.customers) RETURNS text
    LANGUAGE sql
    AS $$ SELECT c.name || ' <' || c.email || '>' $$;


--
-- Name: raise_all(numeric); Type: PROCEDURE; Schema: hr; Owner: -
--

CREATE PROCEDURE hr.raise_all(IN pct numeric)
    LANGUAGE sql
    AS $$ UPDATE hr.employees SET salary = salary * (1 + pct / 100) $$;


--
-- Name: total_sum(numeric); Type: AGGREGATE; Schema: app; Owner: -
--

CREATE AGGREGATE app.total_sum(numeric) (
    SFUNC = numeric_add,
    STYPE = numeric
);


--
-- Name: =~=; Type: OPERATOR; Schema: app; Owner: -
--

CREATE OPERATOR app.=~= (
    FUNCTION = texteq,
    LEFTARG = text,
    RIGHTARG = text
);


--
-- Name: shop_fdw; Type: FOREIGN DATA WRAPPER; Schema: -; Owner: -
--

CREATE FOREIGN DATA WRAPPER shop_fdw;


--
-- Name: shop_remote; Type: SERVER; Schema: -; Owner: -
--

CREATE SERVER shop_remote FOREIGN DATA WRAPPER shop_fdw;


--
-- Name: Leads; Type: TABLE; Schema: Sales Dept; Owner: -
--

CREATE TABLE "Sales Dept"."Leads" (
    "Lead Name" text,
    score integer
);


--
-- Name: lead_scores; Type: VIEW; Schema: Sales Dept; Owner: -
--

CREATE VIEW "Sales Dept".lead_scores AS
 SELECT "Leads"."Lead Name" AS "Lead",
    "Leads".score AS points
   FROM "Sales Dept"."Leads"
  WITH CASCADED CHECK OPTION;


--
-- Name: Orders; Type: TABLE; Schema: app; Owner: -
--

CREATE TABLE app."Orders" (
    id bigint,
    customer_id bigint,
    placed_on date NOT NULL,
    total numeric(12,2)
)
PARTITION BY RANGE (placed_on);


--
-- Name: customer_contacts; Type: VIEW; Schema: app; Owner: -
--

CREATE VIEW app.customer_contacts AS
 SELECT c.id,
    c.name AS customer,
    lower(c.email) AS lower,
    c.phone_number,
    'x'::text AS text,
    (1 + 1) AS "?column?",
        CASE
            WHEN (c.email IS NULL) THEN 'none'::text
            ELSE 'some'::text
        END AS "case",
    COALESCE(c.email, ''::text) AS "coalesce",
    ( SELECT max(o.total) AS max
           FROM app."Orders" o
          WHERE (o.customer_id = c.id)) AS max,
    (EXISTS ( SELECT 1
           FROM app."Orders" o
          WHERE (o.customer_id = c.id))) AS "exists",
    CURRENT_DATE AS "current_date",
    ARRAY[1] AS "array",
    GREATEST(1, 2) AS "greatest",
    NULLIF(c.name, ''::text) AS "nullif"
   FROM app.customers c;


--
-- Name: customer_names; Type: TABLE; Schema: app; Owner: -
--

CREATE TABLE app.customer_names (
    id bigint,
    name text
);


--
-- Name: customer_orders; Type: VIEW; Schema: app; Owner: -
--

CREATE VIEW app.customer_orders AS
 SELECT customers.id,
    customers.name,
    customers.email,
    customers.phone_number,
    customers.created_at,
    o.order_id,
    o.total
   FROM (app.customers
     JOIN ( SELECT "Orders".id AS order_id,
            "Orders".customer_id AS id,
            "Orders".total
           FROM app."Orders") o USING (id));


--
-- Name: customers_backup; Type: TABLE; Schema: app; Owner: -
--

CREATE TABLE app.customers_backup (
    id bigint,
    email text
);


--
-- Name: order_overview; Type: VIEW; Schema: app; Owner: -
--

CREATE VIEW app.order_overview AS
 WITH recent AS (
         SELECT "Orders".id,
            "Orders".customer_id,
            "Orders".placed_on,
            "Orders".total
           FROM app."Orders"
          WHERE ("Orders".placed_on > '2025-06-01'::date)
        )
 SELECT r.id,
    r.customer_id,
    r.placed_on,
    r.total,
    c.name
   FROM (recent r
     JOIN app.customers c ON ((c.id = r.customer_id)));


--
-- Name: orders_2025; Type: TABLE; Schema: app; Owner: -
--

CREATE TABLE app.orders_2025 (
    id bigint,
    customer_id bigint,
    placed_on date NOT NULL,
    total numeric(12,2)
);


--
-- Name: orders_2026; Type: TABLE; Schema: app; Owner: -
--

CREATE TABLE app.orders_2026 (
    id bigint,
    customer_id bigint,
    placed_on date NOT NULL,
    total numeric(12,2) NOT NULL
)
PARTITION BY LIST (customer_id);


--
-- Name: orders_2026_rest; Type: TABLE; Schema: app; Owner: -
--

CREATE TABLE app.orders_2026_rest (
    id bigint,
    customer_id bigint,
    placed_on date NOT NULL,
    total numeric(12,2) NOT NULL
);


--
-- Name: orders_2026_vip; Type: TABLE; Schema: app; Owner: -
--

CREATE TABLE app.orders_2026_vip (
    id bigint,
    customer_id bigint,
    placed_on date NOT NULL,
    total numeric(12,2) NOT NULL
);


--
-- Name: orders_archive; Type: TABLE; Schema: app; Owner: -
--

CREATE TABLE app.orders_archive (
    id bigint,
    customer_id bigint,
    placed_on date NOT NULL,
    total numeric(12,2),
    archived_at timestamp with time zone
);


--
-- Name: pairs; Type: TABLE; Schema: app; Owner: -
--

CREATE TABLE app.pairs (
    a integer,
    b text
);


--
-- Name: remote_stock; Type: FOREIGN TABLE; Schema: app; Owner: -
--

CREATE FOREIGN TABLE app.remote_stock (
    sku text,
    quantity integer
)
SERVER shop_remote;


--
-- Name: people; Type: TABLE; Schema: hr; Owner: -
--

CREATE TABLE hr.people (
    id integer,
    full_name text,
    birth_date date,
    nationality text
);


--
-- Name: contractors; Type: TABLE; Schema: hr; Owner: -
--

CREATE TABLE hr.contractors (
    full_name text,
    agency text
)
INHERITS (hr.people);


--
-- Name: employees; Type: TABLE; Schema: hr; Owner: -
--

CREATE TABLE hr.employees (
    salary numeric,
    iban text
)
INHERITS (hr.people);


--
-- Name: headcount; Type: MATERIALIZED VIEW; Schema: hr; Owner: -
--

CREATE MATERIALIZED VIEW hr.headcount AS
 SELECT count(*) AS n,
    p.nationality
   FROM hr.people p
  GROUP BY p.nationality
  WITH NO DATA;


--
-- Name: orders_2025; Type: TABLE ATTACH; Schema: app; Owner: -
--

ALTER TABLE ONLY app."Orders" ATTACH PARTITION app.orders_2025 FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');


--
-- Name: orders_2026; Type: TABLE ATTACH; Schema: app; Owner: -
--

ALTER TABLE ONLY app."Orders" ATTACH PARTITION app.orders_2026 FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');


--
-- Name: orders_2026_rest; Type: TABLE ATTACH; Schema: app; Owner: -
--

ALTER TABLE ONLY app.orders_2026 ATTACH PARTITION app.orders_2026_rest DEFAULT;


--
-- Name: orders_2026_vip; Type: TABLE ATTACH; Schema: app; Owner: -
--

ALTER TABLE ONLY app.orders_2026 ATTACH PARTITION app.orders_2026_vip FOR VALUES IN ('1', '2', '3');


--
-- Name: customers customers_pkey; Type: CONSTRAINT; Schema: app; Owner: -
--

ALTER TABLE ONLY app.customers
    ADD CONSTRAINT customers_pkey PRIMARY KEY (id);


--
-- Name: customers_email; Type: INDEX; Schema: app; Owner: -
--

CREATE INDEX customers_email ON app.customers USING btree (email);


--
-- Name: Orders Orders_customer_id_fkey; Type: FK CONSTRAINT; Schema: app; Owner: -
--

ALTER TABLE app."Orders"
    ADD CONSTRAINT "Orders_customer_id_fkey" FOREIGN KEY (customer_id) REFERENCES app.customers(id);


--
-- PostgreSQL database dump complete
--

\unrestrict OzAjDcW03H4H32GY6kkghgaFHsrSuQC5wPfrwHzOeWphao4jfKPKALAJITKCtJZ

